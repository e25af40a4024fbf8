"""The blinded review API (`/api/v1/review/`): a panel member's cases by code only.

Every response is built here from the review case, its code and the images and contours of the case; none
carries the arm, the physician, the trial id, AI data, a model or any time of the delineation. The images are
served under the code too, with the DICOM patient name and id replaced by the code.
"""

import io

import pydicom
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiTypes, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from delineation import services as delineation
from delineation.api import (
    EVENT_BATCH_HEADER,
    _body,
    _int_header,
    event_batch_id,
    events_from,
    interpolated,
    labelmap_response,
    stale_response,
)
from delineation.cases import fused_pet, reference_ct, segments_of
from delineation.parsers import LABELMAP_TYPE, LabelmapParser
from imaging.export import encode as encode_dataset
from imaging.export import send_to_planning_system
from imaging.models import Series
from trial.api.permissions import role_required
from trial.api.serializers import SignatureSerializer
from trial.models import Patient
from trial.roles import Role, is_blinded
from trial.services.errors import NotAllowed, NotFound

from . import services
from .export import approved_rtstruct
from .models import ReviewAssignment

SIGNATURE = {
    "button": "Approve GTV…",
    "statement": "Electronic signature. By entering your password you state: “I approve this GTV for treatment "
    "planning”. This review is locked afterwards.",
    "done": "Approved and locked",
}


class ApproveSerializer(serializers.Serializer):
    password = serializers.CharField(help_text="Your password: it signs the approval.")
    version = serializers.IntegerField(min_value=1, help_text="The version of your review you approve.")


class GuessSerializer(serializers.Serializer):
    guess = serializers.ChoiceField(choices=ReviewAssignment.Guess.choices)


def _version(version) -> dict | None:
    if version is None:
        return None
    return {"number": version.number, "volumes_cc": version.volumes_cc}


def _series(request, code: str, kind: str, series: Series | None) -> dict | None:
    if series is None:
        return None
    base = f"/api/v1/review/cases/{code}/images/{kind}/"
    factors = list(series.instances.order_by("slice_index").values_list("suv_factor", flat=True))
    data = {
        "shape": [series.slices, series.rows, series.columns],
        "spacing": series.spacing,
        "image_ids": ["wadouri:" + request.build_absolute_uri(f"{base}{i}/") for i in range(len(factors))],
    }
    if kind == "pet":
        data["suv_factors"] = factors
    return data


def review_manifest(request, assignment: ReviewAssignment) -> dict:
    case, patient = assignment.case, assignment.case.patient
    code = case.code
    base = f"/api/v1/review/cases/{code}/"
    latest = delineation.latest_version(patient, assignment.stream)
    return {
        "code": code,
        "title": code,
        "mode": "review",
        "status": services.status_of(assignment),
        "locked": assignment.approved_at is not None,
        "segments": segments_of(patient),
        "ct": _series(request, code, "ct", reference_ct(patient)),
        "pet": _series(request, code, "pet", fused_pet(patient)),
        "latest_version": _version(latest),
        "signature": SIGNATURE,
        "guess": assignment.guess,
        "urls": {
            "labelmap": base + "labelmap/",
            "start_labelmap": base + "start/",
            "versions": base + "versions/",
            "interpolate": base + "interpolate/",
            "sessions": base + "sessions/",
            "events_template": "/api/v1/review/sessions/{id}/events/",
            "submit": base + "approve/",
            "guess": base + "guess/",
        },
    }


class ReviewCaseViewSet(viewsets.ViewSet):
    """The panel member's review cases, by code."""

    parser_classes = [JSONParser]
    lookup_field = "code"
    lookup_value_regex = r"R-[A-Z0-9]{4}-[A-Z0-9]{4}"

    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        summary="My review cases, in my own random order",
        operation_id="v1_review_cases_list",  # a list that answers an object: not named ..._retrieve
    )
    def list(self, request):
        return Response(
            [
                {
                    "code": a.case.code,
                    "kind": a.kind,
                    "status": services.status_of(a),
                    "url": f"/review/cases/{a.case.code}/",
                }
                for a in services.assignments_of(request.user)
            ]
        )

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Open a review case: images, segments, my versions")
    def retrieve(self, request, code=None):
        return Response(review_manifest(request, services.assignment_for(request.user, code)))

    @extend_schema(responses={(200, "application/dicom"): OpenApiTypes.BINARY}, summary="One image of the case")
    @action(detail=True, methods=["get"], url_path=r"images/(?P<kind>ct|pet)/(?P<index>\d+)")
    def image(self, request, code=None, kind=None, index=None):
        assignment = services.assignment_for(request.user, code)
        patient = assignment.case.patient
        series = reference_ct(patient) if kind == "ct" else fused_pet(patient)
        instance = series.instances.filter(slice_index=int(index)).first() if series else None
        if instance is None:
            raise NotFound("There is no such image in this case.")
        with instance.file.open("rb") as handle:
            dataset = pydicom.dcmread(handle)
        for element in dataset.iterall():  # the panel knows the case by its code only, nested items included
            if element.keyword in ("PatientName", "PatientID"):
                element.value = code
        buffer = io.BytesIO()
        dataset.save_as(buffer, enforce_file_format=True)
        response = HttpResponse(buffer.getvalue(), content_type="application/dicom")
        response["Cache-Control"] = "private, max-age=3600"
        return response

    @extend_schema(responses={(200, LABELMAP_TYPE): OpenApiTypes.BINARY}, summary="My latest saved version")
    @action(detail=True, methods=["get"])
    def labelmap(self, request, code=None):
        assignment = services.assignment_for(request.user, code)
        version = delineation.read_version(assignment.case.patient, None, assignment.stream)
        return labelmap_response(bytes(version.labelmap), version.shape, version.number)

    @extend_schema(responses={(200, LABELMAP_TYPE): OpenApiTypes.BINARY}, summary="The GTV this review starts from")
    @action(detail=True, methods=["get"])
    def start(self, request, code=None):
        version = services.start_version(services.assignment_for(request.user, code))
        return labelmap_response(bytes(version.labelmap), version.shape)

    @extend_schema(
        request={LABELMAP_TYPE: OpenApiTypes.BINARY},
        responses={201: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT},
        summary="Autosave my review (409 if edited from an older version)",
    )
    @action(detail=True, methods=["post"], parser_classes=[LabelmapParser])
    def versions(self, request, code=None):
        assignment = services.assignment_for(request.user, code)
        try:
            version, created = services.save(
                actor=request.user,
                assignment=assignment,
                blob=_body(request),
                base_version=_int_header(request, "X-Base-Version"),
                save_id=request.headers.get("X-Save-Id", ""),
                session_id=request.headers.get("X-Session") or None,
            )
        except delineation.StaleSave as exc:
            return stale_response(exc)
        data = {"number": version.number, "volumes_cc": version.volumes_cc, "save_id": version.save_id}
        return Response(data, status=status.HTTP_201_CREATED if created else 200)

    @extend_schema(
        request={LABELMAP_TYPE: OpenApiTypes.BINARY},
        responses={(200, LABELMAP_TYPE): OpenApiTypes.BINARY},
        summary="Interpolate a segment between drawn slices (nothing is saved)",
    )
    @action(detail=True, methods=["post"], parser_classes=[LabelmapParser])
    def interpolate(self, request, code=None):
        return interpolated(request, services.assignment_for(request.user, code).case.patient)

    @extend_schema(request=None, responses={201: OpenApiTypes.OBJECT}, summary="Start a timed review session")
    @action(detail=True, methods=["post"])
    def sessions(self, request, code=None):
        assignment = services.assignment_for(request.user, code)
        session = services.open_session(
            actor=request.user, assignment=assignment, user_agent=request.headers.get("User-Agent", "")
        )
        return Response({"id": session.pk}, status=status.HTTP_201_CREATED)

    @extend_schema(request=ApproveSerializer, responses=OpenApiTypes.OBJECT, summary="Sign and approve the GTV")
    @action(detail=True, methods=["post"])
    def approve(self, request, code=None):
        assignment = services.assignment_for(request.user, code)
        data = ApproveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            assignment = services.approve(
                actor=request.user,
                assignment=assignment,
                password=data.validated_data["password"],
                version_number=data.validated_data["version"],
            )
        except delineation.StaleSave as exc:
            return stale_response(exc)
        signature = assignment.signature
        return Response(
            {"version": assignment.approved_version.number, "signature": SignatureSerializer(signature).data}
        )

    @extend_schema(
        request=GuessSerializer, responses=OpenApiTypes.OBJECT, summary="Which arm do you think this case was?"
    )
    @action(detail=True, methods=["post"])
    def guess(self, request, code=None):
        assignment = services.assignment_for(request.user, code)
        data = GuessSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assignment = services.record_guess(
            actor=request.user, assignment=assignment, guess=data.validated_data["guess"]
        )
        return Response({"guess": assignment.guess})


class ReviewSessionViewSet(viewsets.GenericViewSet):
    """Interaction events of a review session, timed exactly like delineation sessions."""

    queryset = ReviewAssignment.objects.none()
    lookup_value_regex = r"\d+"

    @extend_schema(
        request=inline_serializer("ReviewEventBatch", {"events": serializers.ListField(child=serializers.DictField())}),
        parameters=[EVENT_BATCH_HEADER],
        responses={202: OpenApiTypes.OBJECT},
        summary="Store a batch of interaction events of a review session",
    )
    @action(detail=True, methods=["post"], parser_classes=[JSONParser, FormParser, MultiPartParser])
    def events(self, request, pk=None):
        services.require_panel(request.user)
        stored = delineation.record_events(
            actor=request.user, session_id=pk, events=events_from(request), batch_id=event_batch_id(request)
        )
        return Response({"stored": stored}, status=status.HTTP_202_ACCEPTED)


class ApprovedGtvViewSet(viewsets.ViewSet):
    """The panel-approved GTV for the planning system: re-identified RTSTRUCT, download or C-STORE (data managers)."""

    permission_classes = [role_required(Role.DATA_MANAGER)]
    lookup_value_regex = r"\d+"

    def _patient(self, pk):
        if is_blinded(self.request.user):
            raise NotAllowed("Panel members are blinded and do not export patients' contours.")
        patient = Patient.objects.filter(pk=pk).first()
        if patient is None:
            raise NotFound("There is no such patient.")
        return patient

    @extend_schema(responses={(200, "application/dicom"): OpenApiTypes.BINARY}, summary="Download the RTSTRUCT")
    @action(detail=True, methods=["get"])
    def rtstruct(self, request, pk=None):
        patient = self._patient(pk)
        response = HttpResponse(encode_dataset(approved_rtstruct(actor=request.user, patient=patient)),
                                content_type="application/dicom")  # fmt: skip
        response["Content-Disposition"] = f'attachment; filename="{patient.trial_number}-approved-GTV-RTSTRUCT.dcm"'
        return response

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT, summary="Send the RTSTRUCT to the planning system")
    @action(detail=True, methods=["post"])
    def send(self, request, pk=None):
        send_to_planning_system(approved_rtstruct(actor=request.user, patient=self._patient(pk)))
        return Response({"detail": "Sent to the planning system."})
