"""Electronic signatures (21 CFR 11.50/11.200): password re-entry, printed name, UTC time, meaning."""

from django.conf import settings
from django.db import models

from .audit import AuditedModel


class Signature(AuditedModel):
    class Meaning(models.TextChoices):
        RANDOMISE = "randomise", "I randomise this patient and confirm eligibility and consent"
        CORRECT = "correct", "I correct this stratum and confirm the reason given"
        SUBMIT = "submit", "I submit this GTV as my delineation"
        APPROVE = "approve", "I approve this GTV for treatment planning"
        LOCK = "lock", "I lock the trial database: the endpoint data are final"
        UNBLIND = "unblind", "I unblind the arm labels of the locked data for the analysis"

    signer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="signatures")
    signer_name = models.CharField(max_length=300)
    signed_at = models.DateTimeField(auto_now_add=True)
    meaning = models.CharField(max_length=16, choices=Meaning.choices)
    statement = models.CharField(max_length=300)
    subject = models.CharField(max_length=100)  # what was signed, e.g. "trial.patient:12"
    content_hash = models.CharField(max_length=64)  # sha256 of the canonical JSON of what was signed

    class Meta:
        ordering = ["-signed_at"]

    def __str__(self):
        return f"{self.signer_name}, {self.signed_at:%Y-%m-%d %H:%M:%S} UTC: {self.statement}"
