"""AI proposal API: registered models (data managers), jobs with progress, the stored proposal and its exports.

Everything here reveals the arm, so it is filtered through jobs_visible_to: never the blinded panel, a
physician only for their own patients, a coordinator for their site's.
"""

import io

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from imaging.contours.seg import mask_to_seg, probability_to_seg
from imaging.export import load_series_datasets
from trial.api.permissions import role_required
from trial.models import Patient
from trial.roles import Role
from trial.services.access import explain_refusal, patients_visible_to

from . import services
from .models import AIContour, InferenceJob, ModelVersion
from .storage import read_map, read_mask


class ModelVersionSerializer(serializers.ModelSerializer):
    sha256 = serializers.CharField(read_only=True)

    class Meta:
        model = ModelVersion
        fields = ["id", "name", "version", "backend", "sha256", "files", "input_channels", "labels",
                  "target_spacing_mm", "patch_size", "normalisation", "intended_use", "validation",
                  "registered_at"]  # fmt: skip


class ContourSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model_version.__str__")

    class Meta:
        model = AIContour
        fields = ["id", "job", "ct_series", "model", "model_version", "model_sha256", "shape", "mask_sha256",
                  "volume_ml", "case_uncertainty", "members", "member_kind", "device", "forward_seconds",
                  "total_seconds", "created_at"]  # fmt: skip


class JobSerializer(serializers.ModelSerializer):
    patient = serializers.CharField(source="patient.trial_number")
    model = serializers.SerializerMethodField()
    stage = serializers.CharField(source="progress.stage", default="")
    percent = serializers.IntegerField(source="progress.percent", default=0)
    contour = serializers.SerializerMethodField()

    class Meta:
        model = InferenceJob
        fields = ["id", "patient", "status", "stage", "percent", "trigger", "reason", "model", "requested_at",
                  "started_at", "finished_at", "attempts", "failure_reason", "contour"]  # fmt: skip

    def get_model(self, job) -> str:
        return str(job.model_version) if job.model_version else ""

    def get_contour(self, job) -> dict | None:
        contour = AIContour.objects.filter(job=job).first()
        return ContourSerializer(contour).data if contour else None


class RerunSerializer(serializers.Serializer):
    patient = serializers.IntegerField(help_text="Patient id.")
    reason = serializers.CharField(help_text="Why a new proposal is needed (audited).")


class ModelVersionViewSet(viewsets.ReadOnlyModelViewSet):
    """Registered models with their model cards and weight hashes (data managers)."""

    serializer_class = ModelVersionSerializer
    permission_classes = [role_required(Role.DATA_MANAGER)]
    queryset = ModelVersion.objects.all()


@extend_schema(parameters=[OpenApiParameter("patient", int, description="Only this patient's jobs.")])
class JobViewSet(viewsets.ReadOnlyModelViewSet):
    """AI proposal jobs with their stage, percent and failure reason; data managers re-run with a reason."""

    serializer_class = JobSerializer

    def get_queryset(self):
        jobs = services.jobs_visible_to(self.request.user).select_related("patient", "model_version", "progress")
        patient = self.request.query_params.get("patient")
        return jobs.filter(patient_id=patient) if patient else jobs

    @extend_schema(request=RerunSerializer, responses={201: JobSerializer}, summary="Re-run the AI proposal (reason)")
    @action(detail=False, methods=["post"], permission_classes=[role_required(Role.DATA_MANAGER)])
    def rerun(self, request):
        data = RerunSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        patient = patients_visible_to(request.user).filter(pk=data.validated_data["patient"]).first()
        if patient is None:
            explain_refusal(request.user, get_object_or_404(Patient, pk=data.validated_data["patient"]))
        job = services.rerun(actor=request.user, patient=patient, reason=data.validated_data["reason"])
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)


class ContourViewSet(mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Stored AI proposals: the mask, probability and uncertainty on the CT grid, and DICOM SEG exports."""

    serializer_class = ContourSerializer

    def get_queryset(self):
        return services.contours_visible_to(self.request.user).select_related("model_version")

    @extend_schema(
        parameters=[OpenApiParameter("kind", str, enum=["mask", "probability", "uncertainty"], required=True)],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        summary="A map as raw little-endian bytes in (z, y, x) C order: mask uint8 0/1, maps float32",
    )
    @action(detail=True, methods=["get"])
    def volume(self, request, pk=None):
        contour = self.get_object()
        kind = request.query_params.get("kind", "")
        if kind == "mask":
            data = read_mask(contour).astype("uint8").tobytes()
        elif kind in ("probability", "uncertainty"):
            data = read_map(contour, kind).astype("<f4").tobytes()
        else:
            return Response({"detail": "kind must be mask, probability or uncertainty.", "code": "invalid"},
                            status=status.HTTP_400_BAD_REQUEST)  # fmt: skip
        response = HttpResponse(data, content_type="application/octet-stream")
        response["X-Shape"] = ",".join(str(n) for n in contour.shape)
        return response

    @extend_schema(
        parameters=[OpenApiParameter("kind", str, enum=["mask", "probability"], description="binary or fractional")],
        responses={(200, "application/dicom"): OpenApiTypes.BINARY},
        summary="DICOM SEG of the proposal: BINARY mask, or FRACTIONAL probability",
    )
    @action(detail=True, methods=["get"])
    def seg(self, request, pk=None):
        contour = self.get_object()
        kind = request.query_params.get("kind", "mask")
        ct = load_series_datasets(contour.ct_series)
        model = contour.model_version
        if kind == "probability":
            seg = probability_to_seg(read_map(contour, "probability"), ct, algorithm_name=model.name,
                                     algorithm_version=model.version)  # fmt: skip
        elif kind == "mask":
            seg = mask_to_seg(read_mask(contour), ct, "GTV", algorithm_name=model.name, algorithm_version=model.version)
        else:
            return Response({"detail": "kind must be mask or probability.", "code": "invalid"},
                            status=status.HTTP_400_BAD_REQUEST)  # fmt: skip
        buffer = io.BytesIO()
        seg.save_as(buffer, enforce_file_format=True)
        response = HttpResponse(buffer.getvalue(), content_type="application/dicom")
        response["Content-Disposition"] = f'attachment; filename="ai-{kind}-{contour.patient.trial_number}.dcm"'
        return response
