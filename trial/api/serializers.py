"""API shapes. Allocation data appears only through AllocationSerializer, gated by allocations_visible_to."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from trial.models import Allocation, AuditEntry, AuditVerification, Patient, Signature, Site, StratumCorrection, Trial
from trial.randomisation.design import ARM_LABELS, ARMS
from trial.roles import ROLE_LABELS, roles_of
from trial.services.access import allocations_visible_to


class SiteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = ["id", "code", "name"]


class UserBriefSerializer(serializers.Serializer):
    username = serializers.CharField()
    name = serializers.SerializerMethodField()

    def get_name(self, user) -> str:
        return user.get_full_name() or user.get_username()


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    name = serializers.SerializerMethodField()
    roles = serializers.SerializerMethodField()
    sites = serializers.SerializerMethodField()

    def get_name(self, user) -> str:
        return user.get_full_name() or user.get_username()

    def get_roles(self, user) -> list[dict]:
        return [{"code": role.value, "label": ROLE_LABELS[role]} for role in sorted(roles_of(user))]

    def get_sites(self, user) -> list[str]:
        return sorted(user.site_memberships.values_list("site__code", flat=True))


class TrialSerializer(serializers.ModelSerializer):
    """Public facts of the design. Method parameters, seeds and block sizes are not here."""

    arms = serializers.SerializerMethodField()
    allocation_ratio = serializers.SerializerMethodField()
    sites = SiteSerializer(many=True, read_only=True)
    randomised = serializers.SerializerMethodField()

    class Meta:
        model = Trial
        fields = [
            "id",
            "name",
            "protocol_id",
            "target_accrual",
            "arms",
            "allocation_ratio",
            "strata_factors",
            "eligibility_criteria",
            "consent_form_versions",
            "sites",
            "is_open",
            "randomised",
        ]

    def get_arms(self, trial) -> list[dict]:
        return [{"code": arm, "label": ARM_LABELS[arm]} for arm in ARMS]

    def get_allocation_ratio(self, trial) -> str:
        return f"{trial.ratio_ai}:{trial.ratio_manual}"

    def get_randomised(self, trial) -> int:
        return trial.allocations.count()


class TrialDesignSerializer(TrialSerializer):
    """For statisticians and data managers: the method and its public parameter. Never the seed or blocks."""

    randomisation_method = serializers.CharField(source="method")

    class Meta(TrialSerializer.Meta):
        fields = [*TrialSerializer.Meta.fields, "randomisation_method", "preferred_arm_probability"]


class SignatureSerializer(serializers.ModelSerializer):
    class Meta:
        model = Signature
        fields = ["signer_name", "signed_at", "meaning", "statement", "content_hash"]


class AllocationSerializer(serializers.ModelSerializer):
    arm_label = serializers.CharField(read_only=True)
    randomised_by = serializers.CharField(source="randomised_by.username")
    signature = SignatureSerializer()
    strata_as_randomised = serializers.JSONField(source="strata")

    class Meta:
        model = Allocation
        fields = [
            "sequence_number",
            "arm",
            "arm_label",
            "method",
            "strata_as_randomised",
            "randomised_by",
            "randomised_at",
            "signature",
        ]


class StratumCorrectionSerializer(serializers.ModelSerializer):
    corrected_by = serializers.CharField(source="corrected_by.username")
    signature = SignatureSerializer()

    class Meta:
        model = StratumCorrection
        fields = [
            "id",
            "factor",
            "original_level",
            "corrected_level",
            "reason",
            "corrected_by",
            "corrected_at",
            "signature",
        ]


class PatientSerializer(serializers.ModelSerializer):
    site = serializers.CharField(source="site.code")
    physician = UserBriefSerializer()
    enrolled_by = serializers.CharField(source="enrolled_by.username")
    strata = serializers.SerializerMethodField()
    consent = serializers.SerializerMethodField()
    allocation = serializers.SerializerMethodField()
    corrections = serializers.SerializerMethodField()

    class Meta:
        model = Patient
        fields = [
            "id",
            "trial",
            "trial_number",
            "site",
            "physician",
            "status",
            "strata",
            "eligibility",
            "consent",
            "enrolled_by",
            "enrolled_at",
            "allocation",
            "corrections",
        ]

    def get_strata(self, patient) -> dict:
        return patient.effective_strata()

    def get_consent(self, patient) -> dict | None:
        consent = getattr(patient, "consent", None)
        if consent is None:
            return None
        return {
            "consent_date": consent.consent_date,
            "form_version": consent.form_version,
            "recorded_by": consent.recorded_by.username,
            "recorded_at": consent.recorded_at,
        }

    @extend_schema_field(AllocationSerializer(allow_null=True))
    def get_allocation(self, patient):
        if patient.pk not in self._visible_allocations():
            return None
        return AllocationSerializer(patient.allocation).data

    def _visible_allocations(self) -> set[int]:
        """The patients whose arm the caller may see, asked once per response (a list shares the context)."""
        context = self.context
        if "visible_allocations" not in context:
            user = context["request"].user
            context["visible_allocations"] = set(allocations_visible_to(user).values_list("pk", flat=True))
        return context["visible_allocations"]

    @extend_schema_field(StratumCorrectionSerializer(many=True))
    def get_corrections(self, patient):
        allocation = getattr(patient, "allocation", None)
        if allocation is None:
            return []
        return StratumCorrectionSerializer(allocation.corrections.all(), many=True).data


class EnrolmentSerializer(serializers.Serializer):
    trial = serializers.PrimaryKeyRelatedField(
        queryset=Trial.objects.all(),
        required=False,
        help_text="Trial id; may be left out while only one trial is open.",
    )
    site = serializers.SlugRelatedField(slug_field="code", queryset=Site.objects.all())
    hospital_id = serializers.CharField(
        max_length=100, write_only=True, help_text="Hospital patient id; stored only as a keyed hash."
    )
    physician = serializers.CharField(help_text="Username of the treating radiation oncologist.")
    eligibility = serializers.DictField(
        child=serializers.BooleanField(), help_text="Answer per criterion code: true = present."
    )
    consent_date = serializers.DateField()
    consent_form_version = serializers.CharField(max_length=32)
    strata = serializers.DictField(child=serializers.CharField(), help_text="Level per stratification factor.")


class PasswordSerializer(serializers.Serializer):
    password = serializers.CharField(
        write_only=True,
        style={"input_type": "password"},
        help_text="Your password, re-entered as your electronic signature.",
    )


class StrataUpdateSerializer(serializers.Serializer):
    strata = serializers.DictField(child=serializers.CharField(), help_text="Level per stratification factor.")
    reason = serializers.CharField(help_text="Why the recorded strata change.")


class CorrectionInputSerializer(PasswordSerializer):
    factor = serializers.CharField()
    level = serializers.CharField()
    reason = serializers.CharField()


class LookupSerializer(serializers.Serializer):
    trial = serializers.PrimaryKeyRelatedField(queryset=Trial.objects.all(), required=False)
    hospital_id = serializers.CharField(max_length=100, write_only=True)


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = [
            "seq",
            "timestamp",
            "actor_username",
            "action",
            "model",
            "object_pk",
            "object_repr",
            "changes",
            "reason",
            "prev_hash",
            "entry_hash",
        ]


class AuditVerificationSerializer(serializers.ModelSerializer):
    requested_by = serializers.CharField(source="requested_by.username", read_only=True)

    class Meta:
        model = AuditVerification
        fields = ["id", "requested_by", "requested_at", "finished_at", "ok", "checked", "first_broken_seq", "problem"]
        read_only_fields = fields
