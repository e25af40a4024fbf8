"""Blinded expert-panel review: review cases under random codes, the panel's corrections and approval, the
blinding guess, and the correction metrics (the trial's second endpoint)."""

from django.apps import AppConfig


class PanelReviewConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "panel_review"
    verbose_name = "Panel review"

    def ready(self):
        from . import receivers  # noqa: F401  (connects the receivers)
