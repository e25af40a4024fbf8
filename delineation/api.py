"""Delineation API for the workstation (docs/DELINEATION.md): the physician's cases, contour versions in the
labelmap wire encoding, interaction events, timing and the signed submission.

Everything is for the patient's own physician (services.case_for). The AI proposal is answered only for an
AI-arm case; for a manual-arm case no response here names or carries anything from a model.
"""

import json
import zlib

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiTypes, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from inference.storage import read_map, read_mask
from trial.api.serializers import SignatureSerializer
from trial.services.errors import InvalidInput, NotFound

from . import interpolation, labelmap_codec, services
from .cases import fused_pet, proposal_of, reference_ct, segments_of, status_of
from .models import DELINEATION, ContourVersion, DelineationSession
from .parsers import LABELMAP_TYPE, LabelmapParser


class VersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ContourVersion
        fields = ["number", "sha256", "created_at", "based_on", "volumes_cc", "save_id"]


class WorklistItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    trial_number = serializers.CharField()
    status = serializers.CharField()
    status_label = serializers.CharField()
    waiting_since = serializers.DateTimeField()
    waiting_seconds = serializers.IntegerField()
    latest_version = serializers.IntegerField(allow_null=True)
    url = serializers.CharField()


class SubmitSerializer(serializers.Serializer):
    password = serializers.CharField(help_text="Your password: it signs the submission.")
    version = serializers.IntegerField(min_value=1, help_text="The version you submit (the latest saved).")


TimingSerializer = inline_serializer(
    "DelineationTiming",
    {
        "wall_seconds": serializers.FloatField(allow_null=True),
        "active_seconds": serializers.FloatField(),
        "editing_seconds": serializers.FloatField(),
        "sessions": serializers.IntegerField(),
        "idle_cutoff_seconds": serializers.IntegerField(),
    },
)


def worklist_item(patient, now) -> dict:
    state = status_of(patient)
    latest = services.latest_version(patient)
    return {
        "id": patient.pk,
        "trial_number": patient.trial_number,
        "status": state.code,
        "status_label": state.label,
        "waiting_since": state.since,
        "waiting_seconds": max(0, int((now - state.since).total_seconds())),
        "latest_version": latest.number if latest else None,
        "url": f"/delineation/cases/{patient.pk}/",
    }


def manifest(request, patient) -> dict:
    """What the viewer needs to open a case. `proposal` exists only in the AI arm."""
    ct, pet = reference_ct(patient), fused_pet(patient)
    latest = services.latest_version(patient)
    base = f"/api/v1/delineation/cases/{patient.pk}/"
    data = {
        "id": patient.pk,
        "trial_number": patient.trial_number,
        "status": status_of(patient).code,
        "locked": services.is_submitted(patient),
        "segments": segments_of(patient),
        "ct": _series(request, ct) if ct else None,
        "pet": _series(request, pet, suv=True) if pet else None,
        "latest_version": VersionSerializer(latest).data if latest else None,
        "idle_cutoff_seconds": patient.trial.idle_cutoff_seconds,
        "urls": {
            "labelmap": base + "labelmap/",
            "versions": base + "versions/",
            "interpolate": base + "interpolate/",
            "sessions": base + "sessions/",
            "events_template": "/api/v1/delineation/sessions/{id}/events/",
            "submit": base + "submit/",
            "timing": base + "timing/",
        },
    }
    proposal = proposal_of(patient)
    if proposal is not None:
        data["proposal"] = {
            "labelmap": base + "proposal/labelmap/",
            "uncertainty": base + "proposal/uncertainty/",
            "model": f"{proposal.model_version.name} {proposal.model_version.version}",
        }
    return data


def _series(request, series, suv=False) -> dict:
    instances = list(series.instances.order_by("slice_index").values_list("pk", "suv_factor"))
    data = {
        "series_id": series.pk,
        "shape": [series.slices, series.rows, series.columns],
        "spacing": series.spacing,
        "image_ids": [
            "wadouri:" + request.build_absolute_uri(f"/api/v1/imaging/instances/{pk}/dicom/") for pk, _ in instances
        ],
    }
    if suv:
        data["suv_factors"] = [factor for _, factor in instances]
    return data


EVENT_BATCH_HEADER = OpenApiParameter(
    "X-Event-Batch",
    str,
    OpenApiParameter.HEADER,
    description="A UUID for this batch, reused when it is retried: a batch is stored once (a beacon sends `batch_id`).",
)


def event_batch_id(request) -> str | None:
    """The batch's id: the X-Event-Batch header, or a beacon form's `batch_id` field (a beacon sends no headers)."""
    header = request.headers.get("X-Event-Batch")
    if header:
        return header
    return request.data.get("batch_id") if hasattr(request.data, "get") else None


def events_from(request):
    """The batch of events: a JSON body, or a beacon's form whose `events` field carries the JSON list as text."""
    events = request.data.get("events") if hasattr(request.data, "get") else None
    if isinstance(events, str):
        try:
            events = json.loads(events)
        except ValueError as exc:
            raise InvalidInput(f"`events` is not JSON: {exc}") from exc
    return events


def interpolated(request, patient) -> HttpResponse:
    """The posted labelmap with ?segment= filled in between its drawn slices (delineation and review alike)."""
    ct, shape = services.grid_of(patient)
    labels = services.decode_labelmap(patient, _body(request), shape)
    raw = request.query_params.get("segment", "1")
    if not raw.isdecimal() or not 1 <= int(raw) <= len(patient.trial.gtv_segments):
        raise InvalidInput(f"segment must be one of 1–{len(patient.trial.gtv_segments)}, not {raw!r}.")
    filled = interpolation.interpolate_segment(labels, int(raw), spacing_zyx=tuple(ct.spacing))
    return labelmap_response(labelmap_codec.encode(filled), shape)


def stale_response(exc) -> Response:
    return Response({"detail": exc.message, "code": exc.code, "latest_version": exc.latest}, status=409)


def labelmap_response(blob: bytes, shape, version: int | None = None) -> HttpResponse:
    response = HttpResponse(blob, content_type=LABELMAP_TYPE)
    response["X-Labelmap-Shape"] = ",".join(str(n) for n in shape)
    if version is not None:
        response["X-Contour-Version"] = str(version)
    response["Cache-Control"] = "no-store"
    return response


def _body(request) -> bytes:
    body = request.data
    if not body:
        raise InvalidInput("The request carries no labelmap (empty body).")
    if not isinstance(body, bytes):
        raise InvalidInput(f"Send the labelmap as {LABELMAP_TYPE} (docs/DELINEATION.md).")
    return body


def _int_header(request, name: str, default: int | None = None) -> int:
    raw = request.headers.get(name)
    if raw is None:
        if default is None:
            raise InvalidInput(f"Send the {name} header.")
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidInput(f"{name} must be a whole number, not {raw!r}.") from exc
    if value < 0:
        raise InvalidInput(f"{name} must not be negative.")
    return value


class CaseViewSet(viewsets.ViewSet):
    """The physician's delineation cases."""

    parser_classes = [JSONParser]
    lookup_value_regex = r"\d+"

    @extend_schema(responses=WorklistItemSerializer(many=True), summary="My delineation worklist")
    def list(self, request):
        services.require_physician(request.user)
        now = timezone.now()
        return Response([worklist_item(p, now) for p in services.cases_of(request.user).order_by("trial_number")])

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Open a case: images, segments, versions, URLs")
    def retrieve(self, request, pk=None):
        return Response(manifest(request, services.case_for(request.user, pk)))

    @extend_schema(
        parameters=[OpenApiParameter("version", int, description="A version number (default: the latest).")],
        responses={(200, LABELMAP_TYPE): OpenApiTypes.BINARY},
        summary="A saved contour version in the labelmap wire encoding",
    )
    @action(detail=True, methods=["get"])
    def labelmap(self, request, pk=None):
        patient = services.case_for(request.user, pk)
        raw = request.query_params.get("version")
        if raw is not None and not raw.isdecimal():
            raise InvalidInput(f"version must be a version number, not {raw!r}.")
        version = services.read_version(patient, int(raw) if raw else None)
        return labelmap_response(bytes(version.labelmap), version.shape, version.number)

    @extend_schema(methods=["GET"], responses=VersionSerializer(many=True), summary="The case's saved contour versions")
    @extend_schema(
        methods=["POST"],
        request={LABELMAP_TYPE: OpenApiTypes.BINARY},
        parameters=[
            OpenApiParameter(
                "X-Base-Version",
                int,
                OpenApiParameter.HEADER,
                required=True,
                description="The version this labelmap was edited from (0: none).",
            ),
            OpenApiParameter(
                "X-Save-Id",
                str,
                OpenApiParameter.HEADER,
                required=True,
                description="A UUID for this save, reused when the save is retried.",
            ),
            OpenApiParameter("X-Session", int, OpenApiParameter.HEADER, description="The delineation session."),
        ],
        responses={201: VersionSerializer, 200: VersionSerializer},
        summary="Autosave: store the labelmap as the next version (409 if edited from an older version)",
    )
    @action(detail=True, methods=["get", "post"], parser_classes=[LabelmapParser])
    def versions(self, request, pk=None):
        patient = services.case_for(request.user, pk)
        if request.method in ("GET", "HEAD"):  # HEAD is a read (and CSRF-exempt): it must never save
            versions = ContourVersion.objects.filter(patient=patient, stream=DELINEATION)
            return Response(VersionSerializer(versions.order_by("number"), many=True).data)
        try:
            version, created = services.save_version(
                actor=request.user,
                patient=patient,
                blob=_body(request),
                base_version=_int_header(request, "X-Base-Version"),
                save_id=request.headers.get("X-Save-Id", ""),
                session_id=request.headers.get("X-Session") or None,
            )
        except services.StaleSave as exc:
            return stale_response(exc)
        return Response(VersionSerializer(version).data, status=status.HTTP_201_CREATED if created else 200)

    @extend_schema(
        request={LABELMAP_TYPE: OpenApiTypes.BINARY},
        parameters=[OpenApiParameter("segment", int, description="The segment to interpolate (default 1).")],
        responses={(200, LABELMAP_TYPE): OpenApiTypes.BINARY},
        summary="Fill a segment in on the empty slices between drawn slices (nothing is saved)",
    )
    @action(detail=True, methods=["post"], parser_classes=[LabelmapParser])
    def interpolate(self, request, pk=None):
        return interpolated(request, services.case_for(request.user, pk))

    @extend_schema(request=None, responses={201: OpenApiTypes.OBJECT}, summary="Start a timed session (page load)")
    @action(detail=True, methods=["post"])
    def sessions(self, request, pk=None):
        patient = services.case_for(request.user, pk)
        session = services.open_session(
            actor=request.user, patient=patient, user_agent=request.headers.get("User-Agent", "")
        )
        return Response({"id": session.pk, "opened_at": session.opened_at}, status=status.HTTP_201_CREATED)

    @extend_schema(request=SubmitSerializer, responses=OpenApiTypes.OBJECT, summary="Sign and submit the GTV")
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        patient = services.case_for(request.user, pk)
        data = SubmitSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            submission = services.submit(
                actor=request.user,
                patient=patient,
                password=data.validated_data["password"],
                version_number=data.validated_data["version"],
            )
        except services.StaleSave as exc:
            return stale_response(exc)
        signature = submission.signature
        return Response({"version": submission.version.number, "signature": SignatureSerializer(signature).data})

    @extend_schema(responses=TimingSerializer, summary="Delineation times computed from the stored events")
    @action(detail=True, methods=["get"])
    def timing(self, request, pk=None):
        patient = services.case_for(request.user, pk)
        times = services.case_times(patient)
        return Response(
            {
                "wall_seconds": times.wall_seconds,
                "active_seconds": times.active_seconds,
                "editing_seconds": times.editing_seconds,
                "sessions": times.sessions,
                "idle_cutoff_seconds": patient.trial.idle_cutoff_seconds,
            }
        )

    @extend_schema(responses={(200, LABELMAP_TYPE): OpenApiTypes.BINARY}, summary="AI arm: the proposal as segment 1")
    @action(detail=True, methods=["get"], url_path="proposal/labelmap")
    def proposal_labelmap(self, request, pk=None):
        proposal = self._proposal(request, pk)
        return labelmap_response(labelmap_codec.encode(read_mask(proposal).astype("uint8")), proposal.shape)

    @extend_schema(
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        summary="AI arm: the uncertainty map (zlib of uint8; value/255 = entropy in bits)",
    )
    @action(detail=True, methods=["get"], url_path="proposal/uncertainty")
    def proposal_uncertainty(self, request, pk=None):
        proposal = self._proposal(request, pk)
        levels = (read_map(proposal, "uncertainty") * 255).round().astype("uint8")
        response = HttpResponse(zlib.compress(levels.tobytes(), 1), content_type="application/octet-stream")
        response["X-Labelmap-Shape"] = ",".join(str(n) for n in proposal.shape)
        response["Cache-Control"] = "private, no-store"
        return response

    def _proposal(self, request, pk):
        patient = services.case_for(request.user, pk)
        proposal = proposal_of(patient)
        if proposal is None:
            raise NotFound("Not found.")  # the same answer whatever the arm, so nothing is revealed
        return proposal


class SessionViewSet(viewsets.GenericViewSet):
    """Interaction events of a delineation session (fetch in batches, sendBeacon on page hide)."""

    queryset = DelineationSession.objects.none()
    lookup_value_regex = r"\d+"

    @extend_schema(
        request=inline_serializer("EventBatch", {"events": serializers.ListField(child=serializers.DictField())}),
        parameters=[EVENT_BATCH_HEADER],
        responses={202: OpenApiTypes.OBJECT},
        summary="Store a batch of interaction events (server stamps receipt)",
    )
    @action(detail=True, methods=["post"], parser_classes=[JSONParser, FormParser, MultiPartParser])
    def events(self, request, pk=None):
        stored = services.record_events(
            actor=request.user, session_id=pk, events=events_from(request), batch_id=event_batch_id(request)
        )
        return Response({"stored": stored}, status=status.HTTP_202_ACCEPTED)
