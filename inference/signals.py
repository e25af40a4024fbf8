"""Receivers: an AI proposal is requested when an AI-arm patient's imaging is complete, whichever of
randomisation and the last image comes first; a restarted worker re-sends the jobs it died with."""

import logging

from celery.signals import worker_ready
from django.dispatch import receiver

from imaging.signals import imaging_complete
from trial.signals import patient_randomised

from .services import request_proposal

log = logging.getLogger(__name__)


def _request(patient, trigger: str) -> None:
    # Runs after the images or the allocation committed: a failure here must not turn their success into an
    # error for the sender. It is logged; a data manager can re-run the proposal from the patient's AI page.
    try:
        request_proposal(patient, trigger=trigger)
    except Exception:
        log.exception("could not request the AI proposal for %s (%s)", patient, trigger)


@receiver(imaging_complete, dispatch_uid="inference-on-imaging-complete")
def on_imaging_complete(sender, patient, **kwargs):
    _request(patient, "imaging_complete")


@receiver(patient_randomised, dispatch_uid="inference-on-randomised")
def on_randomised(sender, patient, **kwargs):
    _request(patient, "randomised")


@worker_ready.connect(dispatch_uid="inference-recover-orphans")
def on_worker_ready(sender, **kwargs):
    """A worker that starts under a name still marked on running jobs was killed while running them: send
    those jobs again (the runner makes a second delivery harmless)."""
    from .tasks import resend_orphaned

    resend_orphaned(getattr(sender, "hostname", "") or "")
