"""Pseudonymised images: Study / Series / Instance, the UID map and quarantined arrivals.

Instances and UID-map rows are written in bulk with their series; the series' audit entry records the
instance count and a manifest hash, so one audited change covers one stored series.
"""

from django.conf import settings
from django.db import models

from trial.models import AuditedModel, Patient


class Study(AuditedModel):
    class Source(models.TextChoices):
        UPLOAD = "upload", "Browser or API upload"
        DICOM = "dicom", "DICOM C-STORE"

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="studies")
    study_instance_uid = models.CharField(max_length=64, unique=True)  # pseudonymous
    study_date = models.DateField(null=True, blank=True)  # shifted
    description = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=8, choices=Source.choices)
    received_at = models.DateTimeField(auto_now_add=True)
    # AES-GCM encrypted original patient identity, only for re-identified exports to the planning system.
    identity_token = models.BinaryField()

    audit_redact = frozenset({"identity_token"})

    class Meta:
        ordering = ["received_at"]
        verbose_name_plural = "studies"

    def __str__(self):
        return f"study of {self.patient} ({self.study_date or 'no date'})"


class Series(AuditedModel):
    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="series")
    series_instance_uid = models.CharField(max_length=64, unique=True)  # pseudonymous
    modality = models.CharField(max_length=16)
    description = models.CharField(max_length=200, blank=True)
    frame_of_reference_uid = models.CharField(max_length=64, blank=True)
    rows = models.PositiveIntegerField()
    columns = models.PositiveIntegerField()
    slices = models.PositiveIntegerField()
    spacing = models.JSONField()  # [slice, row, column] mm
    affine = models.JSONField()  # 4×4, (column, row, slice, 1) → LPS mm
    acquired_at = models.DateTimeField(null=True, blank=True)  # shifted
    manifest_sha256 = models.CharField(max_length=64)  # of the stored instances' hashes in slice order
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study", "modality", "received_at"]
        verbose_name_plural = "series"

    def __str__(self):
        return f"{self.get_modality_label()} ({self.slices} slices)"

    def get_modality_label(self) -> str:
        return {"CT": "CT", "PT": "PET", "MR": "MR"}.get(self.modality, self.modality)


class Instance(models.Model):
    series = models.ForeignKey(Series, on_delete=models.PROTECT, related_name="instances")
    sop_instance_uid = models.CharField(max_length=64, unique=True)  # pseudonymous
    sop_class_uid = models.CharField(max_length=64)
    slice_index = models.PositiveIntegerField()  # z order along the slice normal
    file = models.FileField(max_length=300)
    sha256 = models.CharField(max_length=64)
    suv_factor = models.FloatField(null=True, blank=True)  # PET: SUVbw per unit of the rescaled pixel value

    class Meta:
        ordering = ["series", "slice_index"]
        constraints = [models.UniqueConstraint(fields=["series", "slice_index"], name="unique_slice_index")]

    def __str__(self):
        return f"{self.series} slice {self.slice_index}"


class UidMapping(models.Model):
    """Original ↔ pseudonymous UID, readable only by data managers, for re-identified exports."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    pseudonymous_uid = models.CharField(max_length=64, unique=True)
    original_uid = models.CharField(max_length=64)

    def __str__(self):
        return f"{self.pseudonymous_uid} ← original"


class QuarantinedStudy(AuditedModel):
    """Arrivals that could not be filed: unknown patient, or a series that failed its checks.

    The files stay identified (as received) in a private folder until a coordinator assigns or discards
    them; the database holds only the keyed hash of the incoming patient id and the reason.
    """

    class Status(models.TextChoices):
        HELD = "held", "Held"
        ASSIGNED = "assigned", "Assigned to a patient"
        DISCARDED = "discarded", "Discarded"

    received_at = models.DateTimeField(auto_now_add=True)
    calling_ae_title = models.CharField(max_length=16, blank=True)
    source = models.CharField(max_length=8, choices=Study.Source.choices)
    hospital_id_hash = models.CharField(max_length=64, blank=True)
    folder = models.CharField(max_length=300)  # relative to MEDIA_ROOT
    file_count = models.PositiveIntegerField()
    modalities = models.CharField(max_length=64, blank=True)
    reason = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.HELD)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")  # fmt: skip
    resolved_patient = models.ForeignKey(Patient, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-received_at"]
        verbose_name_plural = "quarantined studies"

    def __str__(self):
        return f"quarantined arrival {self.pk} ({self.modalities}, {self.file_count} files)"


class ImagingCompletion(models.Model):
    """When a patient's required imaging first became complete (the imaging_complete event was sent)."""

    patient = models.OneToOneField(Patient, on_delete=models.PROTECT, related_name="imaging_completion")
    completed_at = models.DateTimeField(auto_now_add=True)
