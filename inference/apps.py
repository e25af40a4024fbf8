"""Model registry and Celery inference for the AI arm (issue 4).

Registered now so the layout and migrations are stable; it holds no features until its issue lands.
"""

from django.apps import AppConfig


class InferenceConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "inference"
