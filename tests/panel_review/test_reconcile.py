"""Review work that a short panel, a departing reviewer or a failed after-commit step left behind is caught up:
cases wait for a reviewer and get one when the panel grows, a data manager reassigns a review with a reason,
a member who left has their open reviews reassigned, and lost reactions (review opening, measurement) are
redone by the periodic reconciliation."""

import uuid

import numpy as np
import pytest
from django.contrib.auth.models import Group
from django.test import Client

from delineation import services as delineation
from delineation.labelmap_codec import encode
from delineation.services import Locked
from panel_review import services
from panel_review.models import CorrectionMetrics, ReviewAssignment, ReviewCase
from tests.conftest import PASSWORD, make_user
from tests.delineation.helpers import case_in_arm
from tests.panel_review.helpers import eager_tasks, submitted_case  # noqa: F401  (eager_tasks: a fixture)
from tests.panel_review.test_review_flow import save, world  # noqa: F401  (world: a fixture)
from trial.models import AuditEntry
from trial.roles import Role

pytestmark = pytest.mark.django_db


def _panel_group():
    return Group.objects.get(name=Role.PANEL.value)


def test_a_case_waits_for_a_reviewer_and_gets_one_when_the_panel_grows(
    world,  # noqa: F811
    tmp_path,
    django_capture_on_commit_callbacks,
    eager_tasks,  # noqa: F811
):
    world.panel.groups.remove(_panel_group())  # nobody on the panel
    review, _case, _ = submitted_case(world, "manual", tmp_path / "p", 51, django_capture_on_commit_callbacks)
    assert not review.assignments.exists()
    manager = Client()
    manager.force_login(world.data_manager)
    page = manager.get("/dashboards/data-manager/").content.decode()
    assert review.code in page.split('id="short-of-reviewers"')[1].split("</table>")[0]

    newcomer = make_user("panel_new", None)
    with django_capture_on_commit_callbacks(execute=True):  # joining the panel reconciles (Celery, eager here)
        _panel_group().user_set.add(newcomer)  # from the group's side, as the admin's group form does
    assignment = review.assignments.get()
    assert assignment.reviewer == newcomer and assignment.kind == "review"
    assert world.client(newcomer).get(f"/api/v1/review/cases/{review.code}/").status_code == 200
    page = manager.get("/dashboards/data-manager/").content.decode()
    assert review.code not in page.split('id="short-of-reviewers"')[1].split("</table>")[0]


def test_a_data_manager_reassigns_a_review_with_a_reason(world, tmp_path, django_capture_on_commit_callbacks):  # noqa: F811
    review, case, submitted = submitted_case(world, "manual", tmp_path / "p", 52, django_capture_on_commit_callbacks)
    first = review.assignments.get()
    away = world.client(first.reviewer)
    assert save(away, review.code, submitted, base=0).status_code == 201  # some work done before leaving
    substitute = make_user("panel_substitute", Role.PANEL)
    manager = Client()
    manager.force_login(world.data_manager)
    url = f"/review/assignments/{first.pk}/reassign/"

    coordinator = Client()
    coordinator.force_login(world.coordinator)
    assert coordinator.post(url, {"reason": "reviewer on leave for a month"}).status_code == 403
    manager.post(url, {"reason": "leave"})  # too short: refused, nothing changes
    assert review.assignments.filter(withdrawn_at__isnull=True).get() == first
    answer = manager.post(url, {"reason": "reviewer on leave for a month"}, follow=True)
    assert "reassigned to Panel_Substitute" in answer.content.decode()
    first.refresh_from_db()
    assert first.withdrawn_at is not None and first.withdrawn_reason == "reviewer on leave for a month"
    entry = AuditEntry.objects.filter(model="panel_review.reviewassignment", object_pk=str(first.pk)).last()
    assert entry.reason == "reviewer on leave for a month" and entry.actor_username == world.data_manager.username

    assert away.get(f"/api/v1/review/cases/{review.code}/").status_code == 404  # no longer theirs
    assert save(away, review.code, submitted, base=1).status_code == 404
    with pytest.raises(Locked, match="reassigned"):  # a page loaded before the reassignment cannot approve
        services.approve(actor=first.reviewer, assignment=first, password=PASSWORD, version_number=1)
    taker = world.client(substitute)
    assert taker.get(f"/api/v1/review/cases/{review.code}/").json()["latest_version"] is None  # starts afresh
    assert save(taker, review.code, case.truth.astype(np.uint8), base=0).status_code == 201
    assert manager.post(url, {"reason": "reviewer on leave for a month"}, follow=True).status_code == 200
    assert review.assignments.filter(withdrawn_at__isnull=True).count() == 1, "a second withdrawal is refused"


def test_reconciliation_catches_up_what_was_left_behind(
    world,  # noqa: F811
    tmp_path,
    django_capture_on_commit_callbacks,
    eager_tasks,  # noqa: F811
):
    capture = django_capture_on_commit_callbacks
    # 1. A submission whose after-commit reaction never ran (the callbacks are dropped): no review case.
    lost_case = case_in_arm(world, "manual", tmp_path / "lost", seed=53)
    delineation.save_version(actor=world.physician, patient=lost_case.patient, blob=encode(lost_case.truth.astype(
        np.uint8)), base_version=0, save_id=str(uuid.uuid4()))  # fmt: skip
    with capture(execute=False):
        delineation.submit(actor=world.physician, patient=lost_case.patient, password=PASSWORD, version_number=1)
    assert not ReviewCase.objects.filter(patient=lost_case.patient).exists()
    # 2. An approval whose measurement never ran.
    review, case, _ = submitted_case(world, "manual", tmp_path / "p", 54, capture)
    client = world.client(world.panel)
    assert save(client, review.code, case.truth.astype(np.uint8), base=0).status_code == 201
    with capture(execute=False):
        client.post(f"/api/v1/review/cases/{review.code}/approve/", {"password": PASSWORD, "version": 1}, format="json")
    assert not CorrectionMetrics.objects.filter(case=review).exists()
    # 3. A reviewer who left the panel with a case open.
    third, _c, _ = submitted_case(world, "manual", tmp_path / "third", 55, capture)
    other = make_user("panel_other", Role.PANEL)
    world.panel.is_active = False
    world.panel.save()

    with capture(execute=True):
        done = services.reconcile()
    assert done == {"opened": 1, "withdrawn": 1, "assigned": 1, "measurements_sent": 1}, done
    reopened = ReviewCase.objects.get(patient=lost_case.patient)
    assert reopened.assignments.get().reviewer == other
    assert CorrectionMetrics.objects.get(case=review, comparison="submitted_vs_approved").values["dice"] < 1
    taken = third.assignments.get(withdrawn_at__isnull=False)
    assert taken.reviewer == world.panel and "no longer an active panel member" in taken.withdrawn_reason
    assert third.assignments.get(withdrawn_at__isnull=True).reviewer == other
    with capture(execute=True):
        assert services.reconcile() == {"opened": 0, "withdrawn": 0, "assigned": 0, "measurements_sent": 0}
    assert ReviewAssignment.objects.filter(reviewer=other, withdrawn_at__isnull=True).count() == 2
