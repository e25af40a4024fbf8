"""Model registry and AI proposals.

ModelVersion: a registered model (card, weight files with sha256); ActiveModel: the one a trial uses.
InferenceJob: one request for an AI proposal for one patient, a small state machine run by a Celery worker.
AIContour: its result, at most one per job (the unique key is what makes a redelivered task harmless).
Jobs and contours exist only for AI-arm patients, so their audit entries reveal the allocation.
"""

import hashlib

from django.conf import settings
from django.db import models

from imaging.models import Series
from trial.models import AuditedModel, Patient, Trial


class ModelVersion(AuditedModel):
    class Backend(models.TextChoices):
        TORCHSCRIPT = "torchscript", "TorchScript"
        NNUNETV2 = "nnunetv2", "nnU-Net v2"

    name = models.CharField(max_length=100)
    version = models.CharField(max_length=50)
    backend = models.CharField(max_length=16, choices=Backend.choices)
    folder = models.CharField(max_length=300, help_text="Relative to MODEL_ROOT: a copy made at registration.")
    files = models.JSONField(help_text="[{path, sha256, size}]: checked again at every load.")
    input_channels = models.JSONField()
    labels = models.JSONField()
    target_spacing_mm = models.JSONField()
    patch_size = models.JSONField()
    normalisation = models.JSONField()
    intended_use = models.TextField()
    validation = models.JSONField(default=dict, blank=True)
    card = models.JSONField(help_text="The whole model card as registered.")
    registered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    registered_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "registered_at"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="unique_model_version")]

    def __str__(self):
        return f"{self.name}:{self.version} ({self.get_backend_display()})"

    @property
    def sha256(self) -> str:
        """The weights' sha256 for one file; for several, the sha256 of their sorted 'path sha256' lines."""
        if len(self.files) == 1:
            return self.files[0]["sha256"]
        lines = "".join(f"{f['path']} {f['sha256']}\n" for f in sorted(self.files, key=lambda f: f["path"]))
        return hashlib.sha256(lines.encode()).hexdigest()


class ActiveModel(AuditedModel):
    """The model that makes a trial's AI proposals; changing it is audited with a reason."""

    trial = models.OneToOneField(Trial, on_delete=models.PROTECT, related_name="active_model")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT)
    activated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    activated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.model_version} for {self.trial}"


class InferenceJob(AuditedModel):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Proposal ready"
        FAILED = "failed", "Failed"

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="inference_jobs")
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT)
    ct_series = models.ForeignKey(Series, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    pet_series = models.ForeignKey(Series, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    trigger = models.CharField(max_length=20)  # imaging_complete, randomised, rerun
    reason = models.TextField(blank=True)  # why a data manager asked for a re-run
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    requested_at = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)

    audit_reveals_allocation = True

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self):
        return f"AI proposal job {self.pk} for {self.patient} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)


class InferenceProgress(models.Model):
    """Stage and percent of a running job: operational, rewritten many times a minute, so not audited."""

    job = models.OneToOneField(InferenceJob, on_delete=models.CASCADE, related_name="progress")
    stage = models.CharField(max_length=40, default="queued")
    percent = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)


class AIContour(AuditedModel):
    """The AI-proposed GTV on the reference CT grid, with its probability and uncertainty maps."""

    job = models.OneToOneField(InferenceJob, on_delete=models.PROTECT, related_name="contour")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="ai_contours")
    ct_series = models.ForeignKey(Series, on_delete=models.PROTECT, related_name="+")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT)
    model_sha256 = models.CharField(max_length=64)
    shape = models.JSONField()  # (z, y, x) of the CT grid
    mask_file = models.FileField(max_length=300)
    mask_sha256 = models.CharField(max_length=64)
    probability_file = models.FileField(max_length=300)
    uncertainty_file = models.FileField(max_length=300)
    volume_ml = models.FloatField()
    case_uncertainty = models.FloatField()
    members = models.PositiveIntegerField()
    member_kind = models.CharField(max_length=40)
    device = models.CharField(max_length=20)
    forward_seconds = models.FloatField()
    total_seconds = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    audit_reveals_allocation = True

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"AI GTV for {self.patient} by {self.model_version} ({self.volume_ml:.1f} ml)"
