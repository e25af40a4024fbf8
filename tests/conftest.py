"""Shared fixtures: a demo-shaped trial on the real PostgreSQL, users of every role, API clients."""

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from trial import demo_design
from trial.audit.recorder import audit_context
from trial.models import RandomisationSecret, Site, SiteMembership, Trial
from trial.roles import Role
from trial.services import enrolment

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """PBKDF2's deliberate slowness costs minutes over the suite; hashing strength is not under test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_user(username: str, role: Role | None, sites=()):
    user = get_user_model().objects.create_user(
        username=username, password=PASSWORD, first_name=username.title(), last_name="Tester"
    )
    if role is not None:
        user.groups.add(Group.objects.get_or_create(name=role.value)[0])
    for code in sites:
        SiteMembership(user=user, site=Site.objects.get(code=code)).save()
    return user


def make_trial(method: str = "blocks", protocol_id: str = "CT-HN-TEST", block_sizes=(2, 4, 6)) -> Trial:
    with audit_context(None):
        trial = Trial(
            name="Test trial",
            protocol_id=protocol_id,
            target_accrual=200,
            method=method,
            strata_factors=demo_design.STRATA_FACTORS,
            eligibility_criteria=demo_design.ELIGIBILITY_CRITERIA,
            consent_form_versions=demo_design.CONSENT_FORM_VERSIONS,
        )
        trial.save()
        for code, name in demo_design.SITES:
            site = Site.objects.filter(code=code).first()
            if site is None:
                site = Site(code=code, name=name)
                site.save()
            trial.sites.add(site)
        RandomisationSecret(trial=trial, block_sizes=list(block_sizes)).save()
    return trial


ELIGIBLE = {c["code"]: c["kind"] == "inclusion" for c in demo_design.ELIGIBILITY_CRITERIA}


def enrol(trial, coordinator, physician, hospital_id, site="AAR", subsite="oropharynx", t_stage="T1-2"):
    return enrolment.enrol(
        actor=coordinator,
        trial=trial,
        site=Site.objects.get(code=site),
        hospital_id=hospital_id,
        physician=physician,
        eligibility=dict(ELIGIBLE),
        consent_date=dt.date(2026, 11, 30),
        consent_form_version="v1.1",
        strata={"subsite": subsite, "t_stage": t_stage},
    )


class World:
    """One trial with a user of every role (two coordinators and physicians, at AAR and ODE)."""

    def __init__(self, method="blocks"):
        self.trial = make_trial(method)
        self.coordinator = make_user("coord_aar", Role.COORDINATOR, ["AAR"])
        self.coordinator_ode = make_user("coord_ode", Role.COORDINATOR, ["ODE"])
        self.physician = make_user("phys_aar", Role.PHYSICIAN, ["AAR"])
        self.physician_ode = make_user("phys_ode", Role.PHYSICIAN, ["ODE"])
        self.panel = make_user("panel_member", Role.PANEL)
        self.statistician = make_user("stats", Role.STATISTICIAN)
        self.data_manager = make_user("dm", Role.DATA_MANAGER)

    def client(self, user) -> APIClient:
        client = APIClient()
        client.force_authenticate(user)
        return client


@pytest.fixture
def world(db):
    return World()
