"""Timed physician delineation sessions and contour versions (issue 5).

Registered now so the layout and migrations are stable; it holds no features until its issue lands.
"""

from django.apps import AppConfig


class DelineationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "delineation"
