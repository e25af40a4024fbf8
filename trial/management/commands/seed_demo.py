"""Create the demo trial, demo users of every role and a few synthetic patients (idempotent)."""

import datetime as dt

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from trial import demo_design
from trial.audit.recorder import audit_context
from trial.models import Allocation, Patient, RandomisationSecret, Site, SiteMembership, StaffProfile, Trial
from trial.roles import ROLE_LABELS, Role
from trial.services import enrolment, randomisation
from trial.services.hospital_ids import hospital_id_hash

DEMO_PROTOCOL = "CT-HN-DEMO"
# (username, first, last, role, sites); every demo password is "<username>-demo".
DEMO_USERS = [
    ("coordinator", "Clara", "Coordinator", Role.COORDINATOR, ["AAR"]),
    ("coordinator_ode", "Otto", "Coordinator", Role.COORDINATOR, ["ODE"]),
    ("physician", "Peter", "Physician", Role.PHYSICIAN, ["AAR"]),
    ("physician_ode", "Pia", "Physician", Role.PHYSICIAN, ["ODE"]),
    ("panel", "Paula", "Panel", Role.PANEL, []),
    ("panel2", "Per", "Panel", Role.PANEL, []),
    ("statistician", "Stine", "Statistician", Role.STATISTICIAN, []),
    ("datamanager", "Dan", "Datamanager", Role.DATA_MANAGER, []),
]
DEMO_EXPERIENCE_YEARS = {"physician": 12, "physician_ode": 4}  # years of head-and-neck contouring
DEMO_PATIENTS = [  # (hospital id, site, physician, subsite, T group, randomise?)
    ("DEMO-0001", "AAR", "physician", "oropharynx", "T1-2", True),
    ("DEMO-0002", "AAR", "physician", "larynx", "T3-4", True),
    ("DEMO-0003", "AAR", "physician", "oropharynx", "T3-4", True),
    ("DEMO-0004", "ODE", "physician_ode", "hypopharynx", "T1-2", True),
    ("DEMO-0005", "AAR", "physician", "oral_cavity", "T1-2", False),
    ("DEMO-0006", "ODE", "physician_ode", "oropharynx", "T1-2", False),
]


def demo_password(username: str) -> str:
    return f"{username}-demo"


class Command(BaseCommand):
    help = "Seed the demo trial with demo users of every role and synthetic patients. Safe to run again."

    def add_arguments(self, parser):
        parser.add_argument("--no-images", action="store_true", help="Skip the synthetic phantom images.")

    def handle(self, *args, **options):
        with transaction.atomic(), audit_context(None, reason="demo seed"):
            users = self._users()
            trial = self._trial()
        self._patients(trial, users)
        if not options["no_images"]:
            from imaging.demo_images import seed_demo_images

            for line in seed_demo_images(trial, self._imaged(trial)):
                self.stdout.write(line)
        self.stdout.write("\nDemo users (password = <username>-demo):")
        for username, _first, _last, role, sites in DEMO_USERS:
            where = f" at {', '.join(sites)}" if sites else ""
            line = f"  {username:<16} {demo_password(username):<22} {ROLE_LABELS[role]}{where}"
            self.stdout.write(line)

    def _imaged(self, trial) -> list[str]:
        """Hospital ids of the patients who get phantom images: the first randomised patient of each arm, so
        the demo shows an AI proposal and a manual case. The arms are drawn afresh (concealed) for every demo
        database, so when no demo patient landed in an arm, further synthetic patients are enrolled and
        randomised at AAR until one does."""
        chosen = {}
        for hospital_id, *_ in DEMO_PATIENTS:
            patient = Patient.objects.filter(trial=trial, hospital_id_hash=hospital_id_hash(hospital_id)).first()
            allocation = Allocation.objects.filter(patient=patient).first() if patient else None
            if allocation is not None:
                chosen.setdefault(allocation.arm, hospital_id)
        coordinator = get_user_model().objects.get(username="coordinator")
        physician = get_user_model().objects.get(username="physician")
        eligible = {c["code"]: c["kind"] == "inclusion" for c in demo_design.ELIGIBILITY_CRITERIA}
        for number in range(7, 40):
            if len(chosen) == 2:
                break
            hospital_id = f"DEMO-{number:04d}"
            if Patient.objects.filter(trial=trial, hospital_id_hash=hospital_id_hash(hospital_id)).exists():
                continue
            patient = enrolment.enrol(
                actor=coordinator, trial=trial, site=Site.objects.get(code="AAR"), hospital_id=hospital_id,
                physician=physician, eligibility=eligible, consent_date=timezone.now().date() - dt.timedelta(days=1),
                consent_form_version="v1.1", strata={"subsite": "oropharynx", "t_stage": "T1-2"},
            )  # fmt: skip
            allocation = randomisation.randomise(
                actor=coordinator, patient=patient, password=demo_password(coordinator.username)
            )
            chosen.setdefault(allocation.arm, hospital_id)
        return list(chosen.values())

    def _users(self):
        User = get_user_model()
        users = {}
        for username, first, last, role, _sites in DEMO_USERS:
            user, created = User.objects.get_or_create(
                username=username, defaults={"first_name": first, "last_name": last}
            )
            if created:
                user.set_password(demo_password(username))
                user.is_staff = role == Role.DATA_MANAGER  # the model registry is read in the admin
                user.save()
                user.groups.add(Group.objects.get_or_create(name=role.value)[0])
            users[username] = user
            if role == Role.PHYSICIAN and not StaffProfile.objects.filter(user=user).exists():
                StaffProfile(user=user, experience_years=DEMO_EXPERIENCE_YEARS[username]).save()
        return users

    def _trial(self):
        trial = Trial.objects.filter(protocol_id=DEMO_PROTOCOL).first()
        if trial is not None:
            return trial
        trial = new_demo_design_trial("ContourTrial demo: AI-assisted vs manual GTV delineation", DEMO_PROTOCOL, "HN")
        for username, _first, _last, _role, sites in DEMO_USERS:
            for code in sites:
                user = get_user_model().objects.get(username=username)
                if not SiteMembership.objects.filter(user=user, site__code=code).exists():
                    SiteMembership(user=user, site=Site.objects.get(code=code)).save()
        return trial

    def _patients(self, trial, users):
        coordinators = {"AAR": users["coordinator"], "ODE": users["coordinator_ode"]}
        eligible = {c["code"]: c["kind"] == "inclusion" for c in demo_design.ELIGIBILITY_CRITERIA}
        for hospital_id, site_code, physician, subsite, t_stage, do_randomise in DEMO_PATIENTS:
            coordinator = coordinators[site_code]
            try:
                patient = enrolment.find_by_hospital_id(actor=coordinator, trial=trial, hospital_id=hospital_id)
            except enrolment.NotFound:
                patient = enrolment.enrol(
                    actor=coordinator,
                    trial=trial,
                    site=Site.objects.get(code=site_code),
                    hospital_id=hospital_id,
                    physician=users[physician],
                    eligibility=eligible,
                    consent_date=timezone.now().date() - dt.timedelta(days=3),
                    consent_form_version="v1.1",
                    strata={"subsite": subsite, "t_stage": t_stage},
                )
            if do_randomise and patient.status == Patient.Status.ENROLLED:
                randomisation.randomise(
                    actor=coordinator, patient=patient, password=demo_password(coordinator.username)
                )
        count = Patient.objects.filter(trial=trial).count()
        self.stdout.write(f"Demo trial {trial.protocol_id}: {count} patients.")


def new_demo_design_trial(name: str, protocol_id: str, patient_prefix: str) -> Trial:
    """A trial with the demo's design (trial.demo_design): its sites, strata, eligibility, consent forms and a
    block randomisation secret. Also used by the load test's seed (bench/load/seed.py)."""
    trial = Trial(
        name=name,
        protocol_id=protocol_id,
        patient_prefix=patient_prefix,
        target_accrual=200,
        method=Trial.Method.BLOCKS,
        strata_factors=demo_design.STRATA_FACTORS,
        eligibility_criteria=demo_design.ELIGIBILITY_CRITERIA,
        consent_form_versions=demo_design.CONSENT_FORM_VERSIONS,
    )
    trial.save()
    for code, site_name in demo_design.SITES:
        site, _ = Site.objects.get_or_create(code=code, defaults={"name": site_name})
        trial.sites.add(site)
    RandomisationSecret(trial=trial, block_sizes=list(demo_design.BLOCK_SIZES)).save()
    return trial
