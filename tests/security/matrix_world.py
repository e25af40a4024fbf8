"""The world behind the authorisation matrix: one trial with real objects behind every URL parameter, and a
signed-in client for each of the matrix's roles.

Built once per module through the same helpers and services as tests/delineation and tests/panel_review:
- P1 (AAR, AI arm, physician `phys_aar`): phantom CT + PET, an AI job and proposal, two saved delineation
  versions and a timed session with events; not submitted, so its physician can still act on it.
- P2 (AAR, manual arm, `phys_aar`): submitted; review case R2 assigned to `panel_member`, who has opened a
  session and saved a version (not approved).
- P3 (AAR, manual arm, `phys_aar`): submitted after `panel_other` joined the panel, so review case R3 is theirs.
- P4 (ODE, `phys_ode`): randomised, no images; P5 (AAR): enrolled, not randomised.
- Two held quarantined arrivals, an audit verification run, the registered demo model.
"""

import uuid
from dataclasses import dataclass, field

import numpy as np
from django.db import connection
from django.test import TestCase
from rest_framework.test import APIClient

from delineation import services as delineation
from delineation.labelmap_codec import encode
from delineation.models import DelineationSession
from imaging.models import QuarantinedStudy
from inference.models import AIContour, InferenceJob
from panel_review import services as review
from panel_review.models import ReviewAssignment, ReviewCase
from tests.conftest import World, enrol, make_user
from tests.delineation.helpers import case_in_arm, store_proposal
from tests.inference.conftest import patient_in_arm, register_demo
from tests.panel_review.helpers import submitted_case
from trial.audit.recorder import audit_context
from trial.models import AuditEntry, AuditVerification, Patient, Site
from trial.roles import Role
from trial.services.audit_requests import request_verification

ROLES = (
    "anon", "coord_site", "coord_other", "phys_owner", "phys_other",
    "panel_assigned", "panel_other", "statistician", "data_manager",
)  # fmt: skip


MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


@dataclass
class MatrixWorld:
    users: dict  # role -> user (None for anon)
    targets: dict  # parameter kind -> the object the matrix's expectations are about
    superuser: object
    clients: dict = field(default_factory=dict)

    def client(self, role: str, fresh: bool = False) -> APIClient:
        """The role's signed-in client; `fresh` for a request that ends the session (logout)."""
        if fresh or role not in self.clients:
            client = APIClient()
            client.raise_request_exception = False  # a 500 is a finding to report, not a crash of the crawl
            if self.users.get(role) is not None:
                client.force_login(self.users[role], backend=MODEL_BACKEND)
            if fresh:
                return client
            self.clients[role] = client
        return self.clients[role]


def _panel_session_and_version(assignment, labels):
    session = review.open_session(actor=assignment.reviewer, assignment=assignment)
    review.save(actor=assignment.reviewer, assignment=assignment, blob=encode(labels), base_version=0,
                save_id=str(uuid.uuid4()), session_id=session.pk)  # fmt: skip
    return session


def build(folder) -> MatrixWorld:
    """Create the world inside the caller's transaction (callers roll it back)."""
    capture = TestCase.captureOnCommitCallbacks
    world = World()
    model = register_demo(world)

    p1 = case_in_arm(world, "ai", folder / "p1", seed=61)
    store_proposal(world, p1, p1.truth, model)
    labels = p1.truth.astype(np.uint8)
    for base in (0, 1):
        delineation.save_version(actor=world.physician, patient=p1.patient, blob=encode(labels), base_version=base,
                                 save_id=str(uuid.uuid4()))  # fmt: skip
    session = delineation.open_session(actor=world.physician, patient=p1.patient)
    delineation.record_events(actor=world.physician, session_id=session.pk, events=[{"t": 1, "kind": "open"}])

    r2, _case2, labels2 = submitted_case(world, "manual", folder / "p2", 62, capture)
    assignment = r2.assignments.get()
    assert assignment.reviewer == world.panel
    review_session = _panel_session_and_version(assignment, labels2)

    panel_other = make_user("panel_other", Role.PANEL)
    r3, _case3, labels3 = submitted_case(world, "manual", folder / "p3", 63, capture)
    assert r3.assignments.get().reviewer == panel_other, "the least busy member gets the new case"
    _panel_session_and_version(r3.assignments.get(), labels3)

    patient_in_arm(world, "manual", site="ODE")
    enrol(world.trial, world.coordinator, world.physician, "NOT-RANDOMISED", site="AAR")
    with audit_context(None):
        for n in (1, 2):
            QuarantinedStudy(source="dicom", calling_ae_title="PACS", folder=f"quarantine/matrix-{n}", file_count=1,
                             modalities="CT", reason="Unknown patient id").save()  # fmt: skip
    request_verification(world.data_manager)

    superuser = make_user("root", None)
    superuser.is_staff = superuser.is_superuser = True
    superuser.save()
    users = {
        "anon": None,
        "coord_site": world.coordinator,
        "coord_other": world.coordinator_ode,
        "phys_owner": world.physician,
        "phys_other": world.physician_ode,
        "panel_assigned": world.panel,
        "panel_other": panel_other,
        "statistician": world.statistician,
        "data_manager": world.data_manager,
    }
    contour = AIContour.objects.get(patient=p1.patient)
    targets = {
        "patient": p1.patient,
        "series": p1.ct,
        "instance": p1.ct.instances.order_by("slice_index").first(),
        "job": contour.job,
        "contour": contour,
        "model": model,
        "delineation_session": session,
        "review_session": review_session,
        "code": r2,
        "assignment": assignment,
        "quarantine": QuarantinedStudy.objects.order_by("pk").first(),
        "audit_entry": AuditEntry.objects.filter(reveals_allocation=True).order_by("seq").first(),
        "verification": AuditVerification.objects.get(),
        "trial": world.trial,
        "site": Site.objects.get(code="AAR"),
    }
    return MatrixWorld(users=users, targets=targets, superuser=superuser)


# --- who relates how to an object: the matrix column that describes a role's rights on it ------------------------

OWNER_OF_OTHER = {"phys_owner": "phys_other", "panel_assigned": "panel_other"}


def relation(world: MatrixWorld, role: str, obj) -> str:
    """The column of the matrix that applies to `role` acting on `obj` (the matrix describes the targets): the
    coordinator of the object's site reads as `coord_site`, its physician as `phys_owner`, a panel member
    assigned to its review case as `panel_assigned`; objects without an owner read as the role itself."""
    user = world.users[role]
    if isinstance(obj, DelineationSession):
        if obj.user_id == getattr(user, "pk", None):  # the session's own user: the target session's owner column
            return "panel_assigned" if obj.stream.startswith("review:") else "phys_owner"
        return OWNER_OF_OTHER.get(relation(world, role, obj.patient), relation(world, role, obj.patient))
    if isinstance(obj, ReviewCase):
        if role.startswith("panel"):
            mine = review.current_assignments().filter(case=obj, reviewer=user).exists()
            return "panel_assigned" if mine else "panel_other"
        return relation(world, role, obj.patient)
    if isinstance(obj, AuditEntry):
        # the target entry reveals an allocation; an entry that does not is readable to statisticians as well
        return "data_manager" if role == "statistician" and not obj.reveals_allocation else role
    patient = patient_of(obj)
    if patient is None or role in ("anon", "statistician", "data_manager"):
        return role
    if role.startswith("coord"):
        return "coord_site" if user.site_memberships.filter(site=patient.site).exists() else "coord_other"
    if role.startswith("phys"):
        return "phys_owner" if patient.physician_id == user.pk else "phys_other"
    if role.startswith("panel"):
        case = ReviewCase.objects.filter(patient=patient).first()
        return relation(world, role, case) if case else "panel_other"
    return role


def patient_of(obj) -> Patient | None:
    if isinstance(obj, Patient):
        return obj
    for path in ("patient", "study.patient", "series.study.patient"):
        value = obj
        for name in path.split("."):
            value = getattr(value, name, None)
        if isinstance(value, Patient):
            return value
    return None


# --- the database before and after a request ----------------------------------------------------------------------

SNAPSHOT_APPS = ("trial", "imaging", "inference", "delineation", "panel_review", "endpoints", "auth")


def snapshot_sql() -> str:
    """One query counting every table of the project's apps, plus the audit chain's head."""
    from django.apps import apps

    tables = sorted(
        {m._meta.db_table for label in SNAPSHOT_APPS for m in apps.get_app_config(label).get_models()}
        | {"auth_user_groups"}
    )
    counts = ", ".join(f'(SELECT count(*) FROM "{t}")' for t in tables)  # noqa: S608 (our own table names)
    return f"SELECT {counts}, (SELECT coalesce(max(last_seq), 0) FROM trial_auditchainhead)"  # noqa: S608


def snapshot(sql: str) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()


def candidates(kind: str, target) -> list:
    """Objects of `kind` to guess at: every one of the world's, beside the target."""
    from imaging.models import Instance, Series
    from inference.models import ModelVersion
    from trial.models import Trial

    models = {
        "patient": Patient, "series": Series, "job": InferenceJob, "contour": AIContour, "model": ModelVersion,
        "assignment": ReviewAssignment, "quarantine": QuarantinedStudy, "verification": AuditVerification,
        "trial": Trial, "site": Site, "code": ReviewCase,
    }  # fmt: skip
    if kind in models:
        return list(models[kind].objects.exclude(pk=target.pk))
    if kind in ("delineation_session", "review_session"):
        return list(DelineationSession.objects.exclude(pk=target.pk))
    if kind == "instance":
        near = Instance.objects.filter(pk__in=[target.pk - 1, target.pk + 1])
        firsts = [s.instances.order_by("slice_index").first() for s in Series.objects.exclude(pk=target.series_id)]
        return [*near, *[i for i in firsts if i is not None]]
    if kind == "audit_entry":
        return [AuditEntry.objects.filter(reveals_allocation=False).first(), *AuditEntry.objects.filter(
            reveals_allocation=True).exclude(seq=target.seq).order_by("-seq")[:2]]  # fmt: skip
    raise KeyError(kind)
