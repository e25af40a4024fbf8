"""Synthetic phantom images for demo patients, filed through the real ingest pipeline."""

import tempfile
from pathlib import Path

import numpy as np

from imaging.contours.maskio import read_mask
from imaging.export import load_series_datasets
from imaging.geometry import grid_from_datasets
from imaging.ingest.parse import parse_file
from imaging.ingest.pipeline import store_images
from imaging.models import Series, Study
from imaging.phantom.writer import write_phantom
from trial.models import Patient
from trial.services.hospital_ids import hospital_id_hash


def store_demo_phantom(
    patient: Patient, hospital_id: str, seed: int, rows: int = 512, slices: int | None = None
) -> tuple[list[Series], np.ndarray]:
    """File phantom `seed` as this demo patient's CT and PET; return the series and the phantom's true GTV on
    the stored CT grid (the demo's stand-in for a physician's delineation)."""
    with tempfile.TemporaryDirectory() as folder:
        files = write_phantom(Path(folder), seed=seed, rows=rows, slices=slices)
        datasets = []
        for path in sorted(files.ct_dir.glob("*.dcm")) + sorted(files.pet_dir.glob("*.dcm")):
            ds = parse_file(path)  # its pixel data is copied from the file when stored
            ds.PatientID = hospital_id  # the phantom stands in for this demo patient
            datasets.append(ds)
        stored = store_images(patient=patient, datasets=datasets, source=Study.Source.UPLOAD)
        ct = next(s for s in stored if s.modality == "CT")
        grid, _ = grid_from_datasets(load_series_datasets(ct))
        truth = read_mask(files.gtv_nifti, grid).astype(bool)
    return stored, truth


def seed_demo_images(trial, hospital_ids: list[str], first_seed: int = 1000) -> list[str]:
    lines = []
    # Seeds 1000… are phantoms the demo GTV model was validated on, never trained on (inference/demo_model).
    for seed, hospital_id in enumerate(hospital_ids, start=first_seed):
        patient = Patient.objects.filter(trial=trial, hospital_id_hash=hospital_id_hash(hospital_id)).first()
        if patient is None or Series.objects.filter(study__patient=patient).exists():
            continue
        stored, _ = store_demo_phantom(patient, hospital_id, seed)
        lines.append(f"Phantom images for {patient.trial_number}: " + ", ".join(f"{s.modality} {s.slices} slices"
                                                                              for s in stored))  # fmt: skip
    return lines
