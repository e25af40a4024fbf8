"""What the endpoint analysis needs to know about the people who delineate: their clinical experience."""

from django.conf import settings
from django.db import models

from .audit import AuditedModel


class StaffProfile(AuditedModel):
    """Years of head-and-neck contouring experience (a covariate of delineation time), kept by the data manager."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="staff_profile")
    experience_years = models.PositiveSmallIntegerField(null=True, blank=True)

    def __str__(self):
        return f"{self.user}: {self.experience_years if self.experience_years is not None else '?'} years"
