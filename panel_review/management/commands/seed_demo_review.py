"""Demo: one more synthetic patient whose GTV the demo physician has delineated and submitted, so the demo
panel has a blinded review case to open. Safe to run again (does nothing once a submission exists)."""

import datetime as dt
import uuid

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils import timezone

from delineation import services as delineation
from delineation.labelmap_codec import encode
from delineation.models import Submission
from imaging.demo_images import store_demo_phantom
from trial import demo_design
from trial.management.commands.seed_demo import demo_password
from trial.models import Site, Trial
from trial.services import enrolment, randomisation

HOSPITAL_ID = "DEMO-0050"
SEED = 1002  # a validation phantom of the demo model, like the other demo cases


class Command(BaseCommand):
    help = "Give the demo panel a submitted GTV to review (run after seed_demo)."

    def handle(self, *args, **options):
        trial = Trial.objects.get(protocol_id="CT-HN-DEMO")
        if Submission.objects.filter(patient__trial=trial).exists():
            return
        users = get_user_model().objects
        coordinator, physician = users.get(username="coordinator"), users.get(username="physician")
        eligible = {c["code"]: c["kind"] == "inclusion" for c in demo_design.ELIGIBILITY_CRITERIA}
        patient = enrolment.enrol(
            actor=coordinator, trial=trial, site=Site.objects.get(code="AAR"), hospital_id=HOSPITAL_ID,
            physician=physician, eligibility=eligible, consent_date=timezone.now().date() - dt.timedelta(days=2),
            consent_form_version="v1.1", strata={"subsite": "larynx", "t_stage": "T1-2"},
        )  # fmt: skip
        randomisation.randomise(actor=coordinator, patient=patient, password=demo_password(coordinator.username))
        _, truth = store_demo_phantom(patient, HOSPITAL_ID, SEED)
        drawn = truth.copy()
        drawn[drawn.any(axis=(1, 2)).nonzero()[0][-1]] = False  # the physician left out the top slice
        delineation.save_version(actor=physician, patient=patient, blob=encode(drawn.astype("uint8")), base_version=0,
                                 save_id=str(uuid.uuid4()))  # fmt: skip
        delineation.submit(actor=physician, patient=patient, password=demo_password(physician.username),
                           version_number=1)  # fmt: skip
        self.stdout.write(f"{patient.trial_number}: GTV delineated and submitted by the demo physician; "
                          "the demo panel has it as a blinded review case.")  # fmt: skip
