"""Blinded expert-panel review and correction metrics (issue 6).

Registered now so the layout and migrations are stable; it holds no features until its issue lands.
"""

from django.apps import AppConfig


class PanelReviewConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "panel_review"
