"""A submitted GTV ready for review: a phantom case delineated and signed through the real services."""

import uuid

import numpy as np
import pytest

from config.celery import app as celery_app
from delineation import services as delineation
from delineation.labelmap_codec import encode
from panel_review.models import ReviewCase
from tests.conftest import PASSWORD
from tests.delineation.helpers import case_in_arm, store_proposal


@pytest.fixture
def eager_tasks():
    """Run Celery tasks in-process for API tests (the browser test uses a real worker)."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def submitted_case(world, arm, folder, seed, capture, edit=True):
    """(review case, delineation Case, submitted labels). AI arm: the proposal is the true GTV and the
    physician trims two slices; manual arm: the physician draws the true GTV less two slices."""
    case = case_in_arm(world, arm, folder, seed=seed)
    if arm == "ai":
        store_proposal(world, case, case.truth)
    labels = case.truth.astype(np.uint8)
    if edit:
        slices = np.flatnonzero(labels.any(axis=(1, 2)))
        labels[slices[-2:]] = 0
    delineation.save_version(actor=world.physician, patient=case.patient, blob=encode(labels), base_version=0,
                             save_id=str(uuid.uuid4()))  # fmt: skip
    with capture(execute=True):
        delineation.submit(actor=world.physician, patient=case.patient, password=PASSWORD, version_number=1)
    return ReviewCase.objects.get(patient=case.patient), case, labels
