"""Delineation data: who opened which case when, every interaction event as received, every saved contour.

Contour versions and submissions are trial data (audited, append-only). Interaction events are raw
measurements kept exactly as received (append-only, not audited one by one): the endpoint times are
computed from them and can be recomputed at any time.
"""

import uuid

from django.conf import settings
from django.db import models

from imaging.models import Series
from trial.models import Patient, Signature
from trial.models.audit import AppendOnlyError, AuditedModel

DELINEATION = "delineation"  # the physician's stream of work; a panel review has "review:<assignment id>"


class DelineationSession(AuditedModel):
    """One opening of a case's workstation page (one monotonic event clock), by the physician delineating or
    by a panel member reviewing (`stream`)."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="delineation_sessions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    stream = models.CharField(max_length=40, default=DELINEATION)
    opened_at = models.DateTimeField(auto_now_add=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["opened_at", "pk"]

    def __str__(self):
        return f"Delineation session {self.pk} on {self.patient}"


class SessionEvent(models.Model):
    """An interaction event: the page's monotonic time (ms) for ordering, the server's receipt time."""

    session = models.ForeignKey(DelineationSession, on_delete=models.PROTECT, related_name="events")
    t_ms = models.FloatField()
    kind = models.CharField(max_length=16)
    detail = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["session_id", "t_ms", "pk"]
        indexes = [models.Index(fields=["session", "t_ms"])]

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AppendOnlyError("Interaction events are raw measurements and are never changed.")
        super().save(*args, **kwargs)


class EventBatch(models.Model):
    """A batch of interaction events the page sent with an id (X-Event-Batch): a retry of a batch whose answer was
    lost (the database restarted, the network dropped) finds it here and stores nothing twice, since duplicated
    events would lengthen the measured times."""

    batch_id = models.UUIDField(unique=True)
    session = models.ForeignKey(DelineationSession, on_delete=models.PROTECT, related_name="event_batches")
    events = models.PositiveIntegerField()
    received_at = models.DateTimeField()


class ContourVersion(AuditedModel):
    """A saved labelmap on the CT grid. Numbers count up per patient and stream (the physician's delineation,
    or one panel member's review); rows never change."""

    class Source(models.TextChoices):
        PHYSICIAN = "physician", "Physician"
        PANEL = "panel", "Expert panel"

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="contour_versions")
    source = models.CharField(max_length=16, choices=Source.choices)
    stream = models.CharField(max_length=40, default=DELINEATION)
    number = models.PositiveIntegerField()
    based_on = models.PositiveIntegerField(default=0)  # the version the editor started from (0: none)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    session = models.ForeignKey(DelineationSession, null=True, blank=True, on_delete=models.PROTECT)
    ct_series = models.ForeignKey(Series, on_delete=models.PROTECT, related_name="+")
    shape = models.JSONField()  # (z, y, x) of the CT grid
    segments = models.PositiveSmallIntegerField()
    labelmap = models.BinaryField()  # the wire encoding (zlib of run lengths): kilobytes
    sha256 = models.CharField(max_length=64)  # of the labelmap content (delineation.labelmap_codec)
    volumes_cc = models.JSONField()  # {"1": cm³, …}
    save_id = models.UUIDField(default=uuid.uuid4, unique=True)  # a retried save finds its version
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["patient_id", "stream", "number"]
        constraints = [
            models.UniqueConstraint(fields=["patient", "stream", "number"], name="unique_contour_version_number"),
        ]

    def __str__(self):
        return f"{self.patient} {self.get_source_display().lower()} contour v{self.number}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AppendOnlyError("A contour version is never changed; save a new version instead.")
        super().save(*args, **kwargs)

    @property
    def total_cc(self) -> float:
        return round(sum(self.volumes_cc.values()), 3)


class Submission(AuditedModel):
    """The physician's signed GTV: points at one version, which is locked from then on."""

    patient = models.OneToOneField(Patient, on_delete=models.PROTECT, related_name="submission")
    version = models.OneToOneField(ContourVersion, on_delete=models.PROTECT, related_name="submission")
    signature = models.OneToOneField(Signature, on_delete=models.PROTECT, related_name="+")
    submitted_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.patient} submitted v{self.version.number}"
