"""Data managers record each physician's experience (an endpoint covariate) on a page, with a reason; the change
is audited and reaches the endpoint data; other roles are refused."""

import pytest
from django.test import Client

from tests.conftest import World
from trial.models import AuditEntry, StaffProfile

pytestmark = pytest.mark.django_db


def test_data_manager_records_experience_with_a_reason():
    world = World()
    manager = Client()
    manager.force_login(world.data_manager)
    page = manager.get("/staff/experience/").content.decode()
    assert "Phys_Aar Tester" in page and "not recorded" in page

    answer = manager.post("/staff/experience/", {"user": world.physician.pk, "years": "9", "reason": ""}, follow=True)
    assert "Give the reason" in answer.content.decode() and not StaffProfile.objects.exists()
    answer = manager.post(
        "/staff/experience/", {"user": world.physician.pk, "years": "-2", "reason": "CV"}, follow=True
    )
    assert not StaffProfile.objects.exists()
    manager.post("/staff/experience/", {"user": world.physician.pk, "years": "9", "reason": "CV received"})
    manager.post("/staff/experience/", {"user": world.physician.pk, "years": "10", "reason": "CV corrected"})
    assert StaffProfile.objects.get(user=world.physician).experience_years == 10
    entry = AuditEntry.objects.filter(model="trial.staffprofile").order_by("-seq").first()
    assert entry.reason == "CV corrected" and entry.changes["experience_years"] == [9, 10]
    assert entry.actor_username == world.data_manager.username
    assert (
        manager.post("/staff/experience/", {"user": world.statistician.pk, "years": "3", "reason": "n/a x"}).status_code
        == 404
    )

    for user in (world.statistician, world.coordinator, world.physician, world.panel):
        other = Client()
        other.force_login(user)
        assert other.get("/staff/experience/").status_code == 403
        assert (
            other.post(
                "/staff/experience/", {"user": world.physician.pk, "years": "1", "reason": "because"}
            ).status_code
            == 403
        )
    assert StaffProfile.objects.get(user=world.physician).experience_years == 10
