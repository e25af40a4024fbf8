"""DICOM intake, pseudonymisation, volumes and contour conversions (issue 3).

Registered now so the layout and migrations are stable; it holds no features until its issue lands.
"""

from django.apps import AppConfig


class ImagingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "imaging"
