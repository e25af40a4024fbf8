"""Timed physician delineation: sessions with raw interaction events, contour versions, signed submission."""

from django.apps import AppConfig


class DelineationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "delineation"
    verbose_name = "Delineation"
