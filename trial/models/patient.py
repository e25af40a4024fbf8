"""A patient's enrolment, consent, allocation and later annotated corrections of strata."""

from django.conf import settings
from django.db import models

from trial.randomisation.design import ARM_LABELS, ARMS

from .audit import AuditedModel
from .trial import Site, Trial


class Patient(AuditedModel):
    class Status(models.TextChoices):
        ENROLLED = "enrolled", "Enrolled, awaiting randomisation"
        RANDOMISED = "randomised", "Randomised"

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="patients")
    trial_number = models.CharField(max_length=16)
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="patients")
    # HMAC-SHA256 of the normalised hospital id under settings.PATIENT_ID_KEY; the clear id is never stored.
    hospital_id_hash = models.CharField(max_length=64)
    physician = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="patients")
    strata = models.JSONField()
    eligibility = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ENROLLED)
    enrolled_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    enrolled_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["trial_number"]
        constraints = [
            models.UniqueConstraint(fields=["trial", "trial_number"], name="unique_trial_number"),
            models.UniqueConstraint(fields=["trial", "hospital_id_hash"], name="unique_hospital_id_per_trial"),
        ]

    def __str__(self):
        return self.trial_number

    def effective_strata(self) -> dict:
        """Strata as randomised, with data managers' corrections applied in order."""
        allocation = getattr(self, "allocation", None)
        if allocation is None:
            return dict(self.strata)
        strata = dict(allocation.strata)
        # sorted here rather than by the query, so that a prefetched list (the patients API) is used as it is
        for correction in sorted(allocation.corrections.all(), key=lambda c: (c.corrected_at, c.pk)):
            strata[correction.factor] = correction.corrected_level
        return strata


class Consent(AuditedModel):
    patient = models.OneToOneField(Patient, on_delete=models.PROTECT, related_name="consent")
    consent_date = models.DateField()
    form_version = models.CharField(max_length=32)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"consent of {self.patient} ({self.form_version}, {self.consent_date})"


class Allocation(AuditedModel):
    """Irreversible result of randomisation. Blinded users never see these rows or their audit entries."""

    audit_reveals_allocation = True
    audit_redact = frozenset({"stratum_position"})

    patient = models.OneToOneField(Patient, on_delete=models.PROTECT, related_name="allocation")
    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="allocations")
    sequence_number = models.PositiveIntegerField()
    arm = models.CharField(max_length=8, choices=[(arm, ARM_LABELS[arm]) for arm in ARMS])
    method = models.CharField(max_length=16, choices=Trial.Method.choices)
    stratum_key = models.CharField(max_length=255)
    stratum_position = models.PositiveIntegerField()
    strata = models.JSONField()  # frozen at randomisation
    randomised_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    randomised_at = models.DateTimeField(auto_now_add=True)
    signature = models.OneToOneField("trial.Signature", on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["sequence_number"]
        constraints = [
            models.UniqueConstraint(fields=["trial", "sequence_number"], name="unique_allocation_sequence"),
            models.UniqueConstraint(fields=["trial", "stratum_key", "stratum_position"], name="unique_stratum_slot"),
        ]

    def __str__(self):
        return f"allocation of {self.patient}"

    @property
    def arm_label(self) -> str:
        return ARM_LABELS[self.arm]


class StratumCorrection(AuditedModel):
    """A data manager's annotated correction of a wrong stratum; the randomised value stays as it was."""

    allocation = models.ForeignKey(Allocation, on_delete=models.PROTECT, related_name="corrections")
    factor = models.CharField(max_length=64)
    original_level = models.CharField(max_length=64)
    corrected_level = models.CharField(max_length=64)
    reason = models.TextField()
    corrected_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    corrected_at = models.DateTimeField(auto_now_add=True)
    signature = models.OneToOneField("trial.Signature", on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["corrected_at", "pk"]

    def __str__(self):
        return f"{self.allocation.patient}: {self.factor} {self.original_level} → {self.corrected_level}"
