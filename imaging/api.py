"""Imaging API for the viewer and for senders: series, instances as application/dicom, uploads, quarantine."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from imaging import services
from imaging.access import patients_with_images_for, series_visible_to
from imaging.models import Instance, QuarantinedStudy, Series, UidMapping
from trial.api.permissions import role_required
from trial.audit.recorder import record
from trial.models import Patient
from trial.roles import Role
from trial.services.access import explain_refusal

SENDERS = (Role.COORDINATOR, Role.DATA_MANAGER)


class InstanceRefSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Instance
        fields = ["id", "sop_instance_uid", "slice_index", "url", "suv_factor"]

    def get_url(self, instance) -> str:
        return f"/api/v1/imaging/instances/{instance.pk}/dicom/"


class SeriesSerializer(serializers.ModelSerializer):
    patient = serializers.CharField(source="study.patient.trial_number")
    study_instance_uid = serializers.CharField(source="study.study_instance_uid")

    class Meta:
        model = Series
        fields = [
            "id", "patient", "study_instance_uid", "series_instance_uid", "modality", "description",
            "frame_of_reference_uid", "rows", "columns", "slices", "spacing", "affine", "received_at",
        ]  # fmt: skip


class SeriesDetailSerializer(SeriesSerializer):
    instances = InstanceRefSerializer(many=True, read_only=True)

    class Meta(SeriesSerializer.Meta):
        fields = [*SeriesSerializer.Meta.fields, "instances"]


class UploadSerializer(serializers.Serializer):
    patient = serializers.IntegerField(help_text="Patient id (from /api/v1/patients/).")
    files = serializers.ListField(child=serializers.FileField(), help_text="DICOM files and/or zip archives.")


class QuarantineSerializer(serializers.ModelSerializer):
    class Meta:
        model = QuarantinedStudy
        fields = ["id", "received_at", "calling_ae_title", "source", "file_count", "modalities", "reason", "status"]


class AssignSerializer(serializers.Serializer):
    patient = serializers.IntegerField()


class DiscardSerializer(serializers.Serializer):
    reason = serializers.CharField()


@extend_schema(parameters=[OpenApiParameter("patient", int, description="Only this patient's series.")])
class SeriesViewSet(viewsets.ReadOnlyModelViewSet):
    """Pseudonymised series the caller may see; the detail lists instance URLs in slice order (for wadouri:)."""

    def get_queryset(self):
        series = series_visible_to(self.request.user).select_related("study__patient")
        patient = self.request.query_params.get("patient")
        if patient:
            series = series.filter(study__patient_id=patient)
        return series.prefetch_related("instances") if self.action == "retrieve" else series

    def get_serializer_class(self):
        return SeriesDetailSerializer if self.action == "retrieve" else SeriesSerializer


class InstanceViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """One stored instance. `dicom/` returns the pseudonymised file as application/dicom."""

    serializer_class = InstanceRefSerializer

    def get_queryset(self):
        return Instance.objects.filter(series__in=series_visible_to(self.request.user))

    @extend_schema(responses={(200, "application/dicom"): OpenApiTypes.BINARY}, summary="The DICOM file")
    @action(detail=True, methods=["get"])
    def dicom(self, request, pk=None):
        instance = self.get_object()
        response = FileResponse(instance.file.open("rb"), content_type="application/dicom")
        response["Cache-Control"] = "private, max-age=3600"
        return response


class UploadViewSet(viewsets.GenericViewSet):
    """Upload a zip or .dcm files for an enrolled patient (coordinator of the site, data manager)."""

    parser_classes = [MultiPartParser]
    serializer_class = UploadSerializer
    permission_classes = [role_required(*SENDERS)]

    @extend_schema(request=UploadSerializer, responses={201: SeriesSerializer(many=True)},
                   summary="Upload images; all series are stored or none")  # fmt: skip
    def create(self, request):
        limit = settings.UPLOAD_MAX_BYTES
        if _content_length(request) > limit + MULTIPART_ALLOWANCE:  # refused before the body is read and spooled
            return _too_large(f"The upload is {_content_length(request):,} bytes", limit)
        try:
            patient_id = request.data.get("patient")
            files = request.FILES.getlist("files")
        except (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent) as exc:
            return Response({"detail": f"The upload is refused: {exc}", "code": "too_large"},
                            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)  # fmt: skip
        if not patient_id or not files:
            return Response({"detail": "Send `patient` and at least one file in `files`.", "code": "invalid"},
                            status=status.HTTP_400_BAD_REQUEST)  # fmt: skip
        if not str(patient_id).isdecimal():
            return Response({"detail": f"`patient` is a patient id (a whole number), not {str(patient_id)[:40]!r}.",
                             "code": "invalid"}, status=status.HTTP_400_BAD_REQUEST)  # fmt: skip
        if sum(f.size for f in files) > limit:  # before they are read into memory
            return _too_large(f"The files add up to {sum(f.size for f in files):,} bytes", limit)
        patient = _patient_for_sender(request.user, patient_id)
        stored = services.upload_images(actor=request.user, patient=patient,
                                        files=[(f.name, f.read()) for f in files])  # fmt: skip
        return Response(SeriesSerializer(stored, many=True).data, status=status.HTTP_201_CREATED)


class QuarantineViewSet(viewsets.ReadOnlyModelViewSet):
    """Arrivals that could not be filed, with the reason; coordinators assign or discard them."""

    serializer_class = QuarantineSerializer
    permission_classes = [role_required(*SENDERS)]

    def get_queryset(self):
        return QuarantinedStudy.objects.all()

    @extend_schema(request=AssignSerializer, responses={201: SeriesSerializer(many=True)},
                   summary="File a held arrival under an enrolled patient")  # fmt: skip
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        data = AssignSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        patient = _patient_for_sender(request.user, data.validated_data["patient"])
        stored = services.assign_quarantined(actor=request.user, record=self.get_object(), patient=patient)
        return Response(SeriesSerializer(stored, many=True).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=DiscardSerializer, responses={204: None}, summary="Discard a held arrival (reason)")
    @action(detail=True, methods=["post"])
    def discard(self, request, pk=None):
        data = DiscardSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.discard_quarantined(actor=request.user, record=self.get_object(), reason=data.validated_data["reason"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class UidMappingSerializer(serializers.ModelSerializer):
    class Meta:
        model = UidMapping
        fields = ["pseudonymous_uid", "original_uid"]


@extend_schema(parameters=[OpenApiParameter("patient", int, required=True)])
class UidMappingViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Original ↔ pseudonymous UIDs of one patient, for re-identification (data managers; each read is audited)."""

    serializer_class = UidMappingSerializer
    permission_classes = [role_required(Role.DATA_MANAGER)]

    def get_queryset(self):
        return UidMapping.objects.filter(patient_id=self.request.query_params.get("patient") or 0).order_by("pk")

    def list(self, request, *args, **kwargs):
        patient = get_object_or_404(Patient, pk=request.query_params.get("patient") or 0)
        record(action="uid_map_read", model="trial.patient", object_pk=patient.pk, object_repr=str(patient),
               changes={}, actor=request.user)  # fmt: skip
        return super().list(request, *args, **kwargs)


MULTIPART_ALLOWANCE = 1024**2  # the multipart framing around the files: boundaries, part headers, `patient`


def _content_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _too_large(what: str, limit: int) -> Response:
    return Response(
        {"detail": f"{what}, more than the limit of {limit:,} bytes (UPLOAD_MAX_BYTES); send the images in "
                   "several smaller uploads, a series at a time.", "code": "too_large"},
        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )  # fmt: skip


def _patient_for_sender(user, patient_id) -> Patient:
    patient = patients_with_images_for(user).filter(pk=patient_id).first()
    if patient is None:
        explain_refusal(user, get_object_or_404(Patient, pk=patient_id))
    return patient
