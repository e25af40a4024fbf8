"""Thin API views: parse, call a service, serialise. Querysets come from trial.services.access."""

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from trial.models import AuditVerification, Patient, Site, Trial
from trial.roles import Role, has_role, is_blinded
from trial.services import corrections, enrolment, randomisation
from trial.services.access import explain_refusal, patients_visible_to
from trial.services.audit_requests import audit_entries_visible_to, request_verification
from trial.services.errors import InvalidInput
from trial.services.trials import default_trial

from . import serializers as s
from .permissions import role_required

STAFF = (Role.COORDINATOR, Role.PHYSICIAN, Role.STATISTICIAN, Role.DATA_MANAGER)


class MeView(APIView):
    @extend_schema(responses=s.MeSerializer, summary="The signed-in user, their roles and sites")
    def get(self, request):
        return Response(s.MeSerializer(request.user).data)


class TrialViewSet(viewsets.ReadOnlyModelViewSet):
    """The trial's public design (arms, ratio, strata, eligibility, consent versions). No randomisation secrets."""

    queryset = Trial.objects.prefetch_related("sites").order_by("pk")

    def get_serializer_class(self):
        if has_role(self.request.user, Role.STATISTICIAN, Role.DATA_MANAGER) and not is_blinded(self.request.user):
            return s.TrialDesignSerializer
        return s.TrialSerializer


class SiteViewSet(viewsets.ReadOnlyModelViewSet):
    """Sites taking part in trials (codes are the site stratum's levels)."""

    queryset = Site.objects.all()
    serializer_class = s.SiteSerializer

    @extend_schema(responses=s.UserBriefSerializer(many=True), summary="Physicians who work at this site")
    @action(detail=True, methods=["get"], permission_classes=[role_required(Role.COORDINATOR, Role.DATA_MANAGER)])
    def physicians(self, request, pk=None):
        return Response(s.UserBriefSerializer(enrolment.physicians_at(self.get_object()), many=True).data)


class PatientViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Patients visible to the caller: coordinators their sites', physicians their own, data managers and
    statisticians all. Panel members see none (they are blinded)."""

    serializer_class = s.PatientSerializer
    permission_classes = [role_required(Role.COORDINATOR, Role.DATA_MANAGER, safe_roles=STAFF)]

    def get_queryset(self):
        return (
            patients_visible_to(self.request.user)
            .select_related(
                "site",
                "physician",
                "enrolled_by",
                "consent__recorded_by",
                "allocation__randomised_by",
                "allocation__signature",
            )
            .prefetch_related("allocation__corrections__corrected_by", "allocation__corrections__signature")
            .order_by("trial_id", "trial_number")
        )

    @extend_schema(
        request=s.EnrolmentSerializer,
        responses={201: s.PatientSerializer},
        summary="Enrol a consented, eligible patient (coordinator of the site)",
    )
    def create(self, request):
        data = self._valid(s.EnrolmentSerializer)
        physician = get_user_model().objects.filter(username=data["physician"]).first()
        if physician is None:
            raise InvalidInput(f"No user {data['physician']!r}: name the physician by username.")
        patient = enrolment.enrol(
            actor=request.user,
            trial=default_trial(data.get("trial")),
            site=data["site"],
            hospital_id=data["hospital_id"],
            physician=physician,
            eligibility=data["eligibility"],
            consent_date=data["consent_date"],
            consent_form_version=data["consent_form_version"],
            strata=data["strata"],
        )
        return Response(self._out(patient), status=status.HTTP_201_CREATED)

    @extend_schema(
        request=s.PasswordSerializer,
        responses={201: s.PatientSerializer},
        summary="Randomise (irreversible; the password is the electronic signature)",
    )
    @action(detail=True, methods=["post"], permission_classes=[role_required(Role.COORDINATOR)])
    def randomise(self, request, pk=None):
        patient = self._patient(pk)  # who may act on the patient is answered before what the body says
        data = self._valid(s.PasswordSerializer)
        allocation = randomisation.randomise(actor=request.user, patient=patient, password=data["password"])
        return Response(self._out(allocation.patient), status=status.HTTP_201_CREATED)

    @extend_schema(
        request=s.CorrectionInputSerializer,
        responses={201: s.StratumCorrectionSerializer},
        summary="Annotated correction of a stratum after randomisation (data manager, reason, signature)",
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="strata-corrections",
        permission_classes=[role_required(Role.DATA_MANAGER)],
    )
    def strata_corrections(self, request, pk=None):
        data = self._valid(s.CorrectionInputSerializer)
        correction = corrections.correct_stratum(
            actor=request.user,
            patient=self._patient(pk),
            factor=data["factor"],
            level=data["level"],
            reason=data["reason"],
            password=data["password"],
        )
        return Response(s.StratumCorrectionSerializer(correction).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=s.LookupSerializer,
        responses=s.PatientSerializer,
        summary="Find a patient by hospital id (sent in the body, never in the URL)",
    )
    @action(detail=False, methods=["post"], permission_classes=[role_required(Role.COORDINATOR, Role.DATA_MANAGER)])
    def lookup(self, request):
        data = self._valid(s.LookupSerializer)
        patient = enrolment.find_by_hospital_id(
            actor=request.user, trial=default_trial(data.get("trial")), hospital_id=data["hospital_id"]
        )
        return Response(self._out(patient))

    def _valid(self, serializer_class) -> dict:
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    @extend_schema(
        request=s.StrataUpdateSerializer,
        responses=s.PatientSerializer,
        summary="Change recorded strata before randomisation (coordinator, with a reason)",
    )
    @action(detail=True, methods=["post"], permission_classes=[role_required(Role.COORDINATOR)])
    def strata(self, request, pk=None):
        patient = self._patient(pk)
        data = self._valid(s.StrataUpdateSerializer)
        patient = enrolment.update_strata(
            actor=request.user, patient=patient, strata=data["strata"], reason=data["reason"]
        )
        return Response(self._out(patient))

    def _patient(self, pk):
        """Object permission for actions: a patient the caller may not act on gets a 403 that says why."""
        patient = patients_visible_to(self.request.user).filter(pk=pk).first()
        if patient is None:
            explain_refusal(self.request.user, get_object_or_404(Patient, pk=pk))
        return patient

    def _out(self, patient) -> dict:
        patient.refresh_from_db()
        return s.PatientSerializer(patient, context={"request": self.request}).data


@extend_schema(parameters=[OpenApiParameter("model", str), OpenApiParameter("object_pk", str)])
@extend_schema_view(retrieve=extend_schema(parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)]))
class AuditEntryViewSet(viewsets.ReadOnlyModelViewSet):
    """The audit trail, newest first (data managers and statisticians)."""

    serializer_class = s.AuditEntrySerializer
    permission_classes = [role_required(safe_roles=(Role.DATA_MANAGER, Role.STATISTICIAN))]

    def get_queryset(self):
        entries = audit_entries_visible_to(self.request.user).order_by("-seq")
        for name in ("model", "object_pk"):
            if self.request.query_params.get(name):
                entries = entries.filter(**{name: self.request.query_params[name]})
        return entries


class AuditVerificationViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Background re-computation of the audit hash chain (data managers)."""

    queryset = AuditVerification.objects.select_related("requested_by")
    serializer_class = s.AuditVerificationSerializer
    permission_classes = [role_required(Role.DATA_MANAGER)]

    @extend_schema(request=None, responses={202: s.AuditVerificationSerializer})
    def create(self, request):
        run = request_verification(request.user)
        return Response(s.AuditVerificationSerializer(run).data, status=status.HTTP_202_ACCEPTED)
