"""Review cases, the panel's assignments (edit, approve, guess) and the correction metrics stored as endpoints.

A ReviewCase is known to the panel only by its random code. Panel-facing code reads ReviewCase.code and the
images and contours through the review services; nothing here that reaches the panel holds the arm, the
physician, AI data or times.
"""

from django.conf import settings
from django.db import models

from delineation.models import ContourVersion, Submission
from trial.models import Patient, Signature
from trial.models.audit import AuditedModel


class ReviewCase(AuditedModel):
    code = models.CharField(max_length=16, unique=True)
    patient = models.OneToOneField(Patient, on_delete=models.PROTECT, related_name="review_case")
    submission = models.OneToOneField(Submission, on_delete=models.PROTECT, related_name="review_case")
    created_at = models.DateTimeField(auto_now_add=True)
    # The approval that counts: the single review's, or the consensus after two independent reviews.
    approved_version = models.OneToOneField(
        ContourVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self):
        return f"Review case {self.code}"


class ReviewAssignment(AuditedModel):
    class Kind(models.TextChoices):
        REVIEW = "review", "Review"
        CONSENSUS = "consensus", "Consensus"

    class Guess(models.TextChoices):
        AI = "ai", "AI-assisted"
        MANUAL = "manual", "Manual"
        DONT_KNOW = "dont_know", "Don't know"

    case = models.ForeignKey(ReviewCase, on_delete=models.PROTECT, related_name="assignments")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.REVIEW)
    order_key = models.CharField(max_length=64)  # codes.order_key: the reviewer's own random order
    assigned_at = models.DateTimeField(auto_now_add=True)
    approved_version = models.OneToOneField(
        ContourVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    signature = models.OneToOneField(Signature, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    approved_at = models.DateTimeField(null=True, blank=True)
    guess = models.CharField(max_length=16, choices=Guess.choices, blank=True)
    guessed_at = models.DateTimeField(null=True, blank=True)
    # An unapproved assignment taken back (the reviewer left the panel, or a data manager reassigned it with a
    # reason); the case gets another reviewer and the withdrawn stream of versions stays as it was.
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["order_key"]
        constraints = [models.UniqueConstraint(fields=["case", "reviewer", "kind"], name="one_assignment_per_kind")]

    def __str__(self):
        return f"{self.get_kind_display()} of {self.case.code} by {self.reviewer}"

    @property
    def stream(self) -> str:
        return f"review:{self.pk}"


class CorrectionMetrics(AuditedModel):
    """One comparison of two contours of a case (endpoint data; never shown to the panel)."""

    class Comparison(models.TextChoices):
        SUBMITTED_APPROVED = "submitted_vs_approved", "Submitted vs approved"
        AI_SUBMITTED = "ai_vs_submitted", "AI vs submitted"
        AI_APPROVED = "ai_vs_approved", "AI vs approved"

    case = models.ForeignKey(ReviewCase, on_delete=models.PROTECT, related_name="metrics")
    comparison = models.CharField(max_length=32, choices=Comparison.choices)
    before_sha256 = models.CharField(max_length=64)
    after_sha256 = models.CharField(max_length=64)
    values = models.JSONField()
    computed_at = models.DateTimeField(auto_now_add=True)

    audit_reveals_allocation = True  # the AI comparisons exist only in the AI arm

    class Meta:
        constraints = [models.UniqueConstraint(fields=["case", "comparison"], name="one_metrics_per_comparison")]

    def __str__(self):
        return f"{self.get_comparison_display()} for {self.case.code}"
