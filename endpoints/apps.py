"""Endpoint exports and analysis for statisticians (issue 7).

Registered now so the layout and migrations are stable; it holds no features until its issue lands.
"""

from django.apps import AppConfig


class EndpointsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "endpoints"
