"""The trial, its sites, who works where, and the randomisation secret."""

import secrets

from django.conf import settings
from django.db import models

from trial.randomisation import Design, Factor

from .audit import AuditedModel


class Site(AuditedModel):
    code = models.SlugField(max_length=16, unique=True)
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["code"]

    def __str__(self):
        return f"{self.code} – {self.name}"


class SiteMembership(AuditedModel):
    """A coordinator or physician works at a site; coordinators act only on their sites' patients."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="site_memberships")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="memberships")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "site"], name="unique_site_membership")]

    def __str__(self):
        return f"{self.user} @ {self.site.code}"


def default_required_modalities() -> list[str]:
    return ["CT", "PT"]


def default_gtv_segments() -> list[str]:
    return ["GTVp"]


class Trial(AuditedModel):
    class Method(models.TextChoices):
        BLOCKS = "blocks", "Stratified permuted blocks (random block sizes)"
        MINIMISATION = "minimisation", "Pocock–Simon minimisation with a random element"

    name = models.CharField(max_length=200)
    protocol_id = models.CharField(max_length=64, unique=True)
    patient_prefix = models.CharField(max_length=8, default="HN")
    target_accrual = models.PositiveIntegerField()
    ratio_ai = models.PositiveSmallIntegerField(default=1)
    ratio_manual = models.PositiveSmallIntegerField(default=1)
    method = models.CharField(max_length=16, choices=Method.choices, default=Method.BLOCKS)
    preferred_arm_probability = models.FloatField(default=0.8)
    # [{"name": "subsite", "label": "Tumour subsite", "levels": [{"code": "oropharynx", "label": "Oropharynx"}]}]
    # The factor named "site" takes its levels from the trial's sites and its value from the patient's site.
    strata_factors = models.JSONField()
    # [{"code": "I1", "text": "...", "kind": "inclusion" | "exclusion"}]
    eligibility_criteria = models.JSONField()
    consent_form_versions = models.JSONField(default=list)
    sites = models.ManyToManyField(Site, related_name="trials")
    is_open = models.BooleanField(default=True)
    # DICOM modalities a patient needs before delineation can start ("CT", "PT", "MR").
    required_modalities = models.JSONField(default=default_required_modalities)
    # The GTV segments delineated, in labelmap order (1, 2, …): ["GTVp"] or ["GTVp", "GTVn"].
    gtv_segments = models.JSONField(default=default_gtv_segments)
    # Delineation timing: gaps between interaction events longer than this are idle and not counted as active
    # time; edit events further apart than the burst gap start a new editing burst.
    idle_cutoff_seconds = models.PositiveIntegerField(default=60)
    edit_burst_seconds = models.PositiveIntegerField(default=10)
    # The GTV must be approved within this many days of enrolment (the coordinator's overdue flag).
    approval_due_days = models.PositiveSmallIntegerField(default=14)
    # Expert panel: 1 review per case, or 2 independent reviews followed by a consensus review.
    panel_reviews_per_case = models.PositiveSmallIntegerField(
        default=1, choices=[(1, "One review"), (2, "Two reviews and a consensus")]
    )
    # Set with the data manager's signed database lock and unblinding (endpoints app): after the lock no service
    # changes trial data; after unblinding statisticians see each patient's arm.
    data_locked_at = models.DateTimeField(null=True, blank=True, editable=False)
    arms_unblinded_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Roles ("data_manager", "panel", …) whose members must sign in with a TOTP second factor; empty: nobody must
    # (anyone may enrol). Roles are installation-wide, so a role listed by any trial applies on the whole site
    # (trial.security.two_factor). Changed by data managers, with a reason, on /accounts/two-factor/manage/.
    two_factor_roles = models.JSONField(default=list, blank=True)

    def __str__(self):
        return f"{self.name} ({self.protocol_id})"

    def factor_levels(self) -> dict[str, list[str]]:
        levels = {}
        for factor in self.strata_factors:
            if factor["name"] == "site":
                levels["site"] = sorted(self.sites.values_list("code", flat=True))
            else:
                levels[factor["name"]] = [level["code"] for level in factor["levels"]]
        return levels

    def design(self, block_sizes=(2, 4, 6)) -> Design:
        return Design(
            method=self.method,
            factors=tuple(Factor(name, tuple(levels)) for name, levels in self.factor_levels().items()),
            ratio=(self.ratio_ai, self.ratio_manual),
            block_sizes=tuple(block_sizes),
            preferred_arm_probability=self.preferred_arm_probability,
        )


def new_seed() -> bytes:
    return secrets.token_bytes(32)


class RandomisationSecret(AuditedModel):
    """Never serialised, never shown: only the allocation service reads it."""

    audit_redact = frozenset({"seed", "block_sizes"})

    trial = models.OneToOneField(Trial, on_delete=models.PROTECT, related_name="secret")
    seed = models.BinaryField(default=new_seed)
    block_sizes = models.JSONField(default=list)

    def __str__(self):
        return f"randomisation secret of {self.trial.protocol_id}"
