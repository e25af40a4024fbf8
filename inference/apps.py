"""Model registry and Celery inference for the AI arm: registered models propose a GTV with an uncertainty map."""

from django.apps import AppConfig


class InferenceConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "inference"
    verbose_name = "AI proposals"

    def ready(self):
        from . import signals  # noqa: F401  (connects the receivers)
