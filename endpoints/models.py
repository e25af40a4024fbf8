"""The statisticians' side of a trial: how the arms are coded while blinded, the database lock, unblinding."""

import secrets

from django.conf import settings
from django.db import models

from trial.models import Signature, Trial
from trial.models.audit import AuditedModel


def draw_ai_code() -> str:
    return secrets.choice(["A", "B"])


class ArmCoding(AuditedModel):
    """Which letter the AI-assisted arm has in blinded exports: drawn at random once per trial, never shown before
    unblinding (redacted in the audit trail)."""

    trial = models.OneToOneField(Trial, on_delete=models.PROTECT, related_name="arm_coding")
    ai_code = models.CharField(max_length=1, default=draw_ai_code)

    audit_redact = frozenset({"ai_code"})

    def code_of(self, arm: str) -> str:
        return self.ai_code if arm == "ai" else ("B" if self.ai_code == "A" else "A")

    def __str__(self):
        return f"Arm coding of {self.trial.protocol_id}"


class DataLock(AuditedModel):
    """The signed database lock, with the endpoint export made at that moment and its sha256."""

    trial = models.OneToOneField(Trial, on_delete=models.PROTECT, related_name="data_lock")
    locked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    signature = models.OneToOneField(Signature, on_delete=models.PROTECT, related_name="+")
    locked_at = models.DateTimeField(auto_now_add=True)
    export_file = models.FileField(max_length=300)
    export_sha256 = models.CharField(max_length=64)
    # The full frame (arms named, every column) as Parquet: what every export and report is derived from after
    # the lock. Not readable through the app until unblinding.
    sealed_file = models.FileField(max_length=300)
    sealed_sha256 = models.CharField(max_length=64)
    rows = models.PositiveIntegerField()

    def __str__(self):
        return f"Database lock of {self.trial.protocol_id}"


class Unblinding(AuditedModel):
    """After the lock, a data manager unblinds the arm labels for the analysis, with a reason."""

    trial = models.OneToOneField(Trial, on_delete=models.PROTECT, related_name="unblinding")
    unblinded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    signature = models.OneToOneField(Signature, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    unblinded_at = models.DateTimeField(auto_now_add=True)

    audit_reveals_allocation = True

    def __str__(self):
        return f"Unblinding of {self.trial.protocol_id}"
