"""Synthetic phantom images for demo patients, filed through the real ingest pipeline."""

import tempfile
from pathlib import Path

import pydicom

from imaging.ingest.pipeline import store_images
from imaging.models import Series, Study
from imaging.phantom.writer import write_phantom
from trial.models import Patient
from trial.services.hospital_ids import hospital_id_hash


def seed_demo_images(trial, hospital_ids: list[str]) -> list[str]:
    lines = []
    # Seeds 1000… are phantoms the demo GTV model was validated on, never trained on (inference/demo_model).
    for seed, hospital_id in enumerate(hospital_ids, start=1000):
        patient = Patient.objects.filter(trial=trial, hospital_id_hash=hospital_id_hash(hospital_id)).first()
        if patient is None or Series.objects.filter(study__patient=patient).exists():
            continue
        with tempfile.TemporaryDirectory() as folder:
            files = write_phantom(Path(folder), seed=seed)
            datasets = []
            for path in sorted(files.ct_dir.glob("*.dcm")) + sorted(files.pet_dir.glob("*.dcm")):
                ds = pydicom.dcmread(path)
                ds.PatientID = hospital_id  # the phantom stands in for this demo patient
                datasets.append(ds)
            stored = store_images(patient=patient, datasets=datasets, source=Study.Source.UPLOAD)
        lines.append(f"Phantom images for {patient.trial_number}: " + ", ".join(f"{s.modality} {s.slices} slices"
                                                                              for s in stored))  # fmt: skip
    return lines
