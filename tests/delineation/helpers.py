"""Delineation cases for tests: a randomised patient of a chosen arm with phantom CT + PET stored through the
real pipeline, and (AI arm) a stored AI proposal made from the phantom's true GTV."""

import uuid
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from delineation import labelmap_codec
from imaging.contours.maskio import read_mask
from imaging.export import load_series_datasets
from imaging.geometry import grid_from_datasets
from imaging.ingest.pipeline import check_imaging_complete
from inference.backends.base import Proposal
from inference.models import InferenceJob
from inference.runner import store
from tests.inference.conftest import patient_in_arm, register_demo, store_phantom


@dataclass
class Case:
    patient: object
    truth: np.ndarray  # the phantom's true GTV on the stored CT grid
    ct: object  # the stored CT Series
    grid: object


def case_in_arm(world, arm: str, folder, seed: int = 21, rows: int = 128, slices: int = 40) -> Case:
    patient = patient_in_arm(world, arm)
    files = store_phantom(patient, folder, seed=seed, rows=rows, slices=slices)
    check_imaging_complete(patient.pk)  # what the pipeline runs on commit (idempotent)
    ct = patient.studies.get().series.get(modality="CT")
    grid, _ = grid_from_datasets(load_series_datasets(ct))
    return Case(patient, read_mask(files.gtv_nifti, grid).astype(bool), ct, grid)


def store_proposal(world, case: Case, mask: np.ndarray, model=None):
    """An AI proposal as the inference runner stores it (the model's own pipeline is tested in inference)."""
    model = model or register_demo(world)
    job = InferenceJob.objects.create(patient=case.patient, model_version=model, ct_series=case.ct, trigger="test")
    uncertainty = np.zeros(mask.shape, np.float32)
    uncertainty[mask] = 0.2
    proposal = Proposal(
        probability=mask.astype(np.float32), mask=mask, uncertainty=uncertainty, case_uncertainty=0.1,
        members=1, member_kind="test", forward_seconds=0.0, device="cpu",
    )  # fmt: skip
    assert store(job, SimpleNamespace(ct_grid=case.grid), proposal, seconds=0.0) == "stored"
    return job.contour


def post_labelmap(client, patient, labels, base: int, save_id=None, session=None):
    headers = {"HTTP_X_BASE_VERSION": str(base), "HTTP_X_SAVE_ID": str(save_id or uuid.uuid4())}
    if session is not None:
        headers["HTTP_X_SESSION"] = str(session)
    return client.post(
        f"/api/v1/delineation/cases/{patient.pk}/versions/",
        data=labelmap_codec.encode(labels),
        content_type="application/vnd.contourtrial.labelmap",
        **headers,
    )
