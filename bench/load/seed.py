"""Seed the load test's database through the app's own services: a trial, physicians who each own a randomised
case on a phantom PET/CT, panel members who each hold a blinded review case, and coordinators.

Run by run_load.py in the load environment (`python bench/load/seed.py --plan PLAN.json ...`); writes the plan the
locust users follow (accounts, case ids, review codes) and the phantom's true GTV that they "draw" from.
One phantom is written once and filed for every patient under fresh DICOM UIDs: the de-identification maps UIDs
deterministically, so the same files twice would be refused as the same series.
"""

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
import pydicom  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

from delineation import services as delineation  # noqa: E402
from delineation.labelmap_codec import encode  # noqa: E402
from imaging.contours.maskio import read_mask  # noqa: E402
from imaging.export import load_series_datasets  # noqa: E402
from imaging.geometry import grid_from_datasets  # noqa: E402
from imaging.ingest.pipeline import store_images  # noqa: E402
from imaging.models import Study  # noqa: E402
from imaging.phantom.writer import write_phantom  # noqa: E402
from panel_review.models import ReviewAssignment  # noqa: E402
from trial import demo_design  # noqa: E402
from trial.audit.recorder import audit_context  # noqa: E402
from trial.management.commands.seed_demo import new_demo_design_trial  # noqa: E402
from trial.models import Site, SiteMembership, StaffProfile, Trial  # noqa: E402
from trial.roles import Role  # noqa: E402
from trial.services import enrolment, randomisation  # noqa: E402

PASSWORD = "load-test-password"  # noqa: S105 (a throwaway database on loopback)
SITE = "AAR"
PHANTOM_SEED = 1000
# pydicom's generate_uid() root: every UID the phantom writer made, and nothing else, starts with it.
GENERATED_ROOT = "1.2.826.0.1.3680043.8.498."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plan", type=Path, required=True, help="Where to write the plan (JSON).")
    parser.add_argument("--physicians", type=int, default=30)
    parser.add_argument("--panel", type=int, default=5)
    parser.add_argument("--coordinators", type=int, default=5)
    parser.add_argument("--rows", type=int, default=512, help="CT rows and columns of the phantom.")
    parser.add_argument("--slices", type=int, default=None, help="CT slices (default: the phantom's own).")
    args = parser.parse_args()
    started = time.perf_counter()
    plan = seed(args.physicians, args.panel, args.coordinators, args.rows, args.slices, args.plan.parent)
    plan["seed_seconds"] = round(time.perf_counter() - started, 1)
    args.plan.write_text(json.dumps(plan, indent=1))
    print(f"seeded in {plan['seed_seconds']} s: {plan['phantom']}")


def seed(n_physicians: int, n_panel: int, n_coordinators: int, rows: int, slices, folder: Path) -> dict:
    password_hash = make_password(PASSWORD)  # hashed once: PBKDF2 per user would cost seconds each
    coordinators = [_user(f"load_coord_{i:02d}", Role.COORDINATOR, password_hash) for i in range(1, n_coordinators + 1)]
    physicians = [_user(f"load_phys_{i:02d}", Role.PHYSICIAN, password_hash) for i in range(1, n_physicians + 1)]
    panel = [_user(f"load_panel_{i:02d}", Role.PANEL, password_hash) for i in range(1, n_panel + 1)]
    submitter = _user("load_phys_reviewed", Role.PHYSICIAN, password_hash)  # delineated the panel's cases
    enroller = coordinators[0] if coordinators else _user("load_coord_seed", Role.COORDINATOR, password_hash)
    trial = _trial([*coordinators, enroller, *physicians, submitter])

    with tempfile.TemporaryDirectory() as scratch:
        files = write_phantom(Path(scratch), seed=PHANTOM_SEED, rows=rows, slices=slices)
        paths = sorted(files.ct_dir.glob("*.dcm")) + sorted(files.pet_dir.glob("*.dcm"))
        cases = []
        for number, physician in enumerate(physicians, start=1):
            patient = _randomised(trial, enroller, physician, f"LOAD-{number:04d}")
            _store(patient, f"LOAD-{number:04d}", paths)
            cases.append({"username": physician.username, "case_id": patient.pk, "trial_number": patient.trial_number})
        reviewed = []
        for number in range(1, n_panel + 1):
            patient = _randomised(trial, enroller, submitter, f"LOAD-R{number:03d}")
            _store(patient, f"LOAD-R{number:03d}", paths)
            reviewed.append(patient)
        ct = Study.objects.filter(patient__trial=trial).first().series.get(modality="CT")  # all on one grid
        grid, _ = grid_from_datasets(load_series_datasets(ct))
        truth = read_mask(files.gtv_nifti, grid).astype(np.uint8)
        ct_bytes = sum(p.stat().st_size for p in files.ct_dir.glob("*.dcm"))
    truth_path = folder / "truth.npy"
    np.save(truth_path, truth)

    for patient in reviewed:  # the panel starts from the submitted GTV: the truth less its top slice
        drawn = truth.copy()
        drawn[np.flatnonzero(drawn.any(axis=(1, 2)))[-1]] = 0
        delineation.save_version(actor=submitter, patient=patient, blob=encode(drawn), base_version=0,
                                 save_id=str(uuid.uuid4()))  # fmt: skip
        delineation.submit(actor=submitter, patient=patient, password=PASSWORD, version_number=1)
    reviews = []
    for member in panel:
        assignment = ReviewAssignment.objects.filter(reviewer=member, withdrawn_at__isnull=True).first()
        if assignment is None:
            raise SystemExit(f"{member.username} got no review case; the panel has more members than cases")
        reviews.append({"username": member.username, "code": assignment.case.code})

    return {
        "password": PASSWORD,
        "physicians": cases,
        "panel": reviews,
        "coordinators": [{"username": c.username} for c in coordinators],
        "truth": str(truth_path),
        "shape": list(truth.shape),
        "phantom": f"phantom {PHANTOM_SEED}: CT {truth.shape[0]} slices of {truth.shape[1]}×{truth.shape[2]} "
        f"({ct_bytes / 1e6:.1f} MB), PET {len(paths) - truth.shape[0]} slices; GTV {int(truth.sum()):,} voxels",
        "patients": len(cases) + len(reviewed),
    }


def _user(username: str, role: Role, password_hash: str):
    user = get_user_model().objects.create(
        username=username, first_name=username.split("_")[1].title(), last_name=username.rsplit("_", 1)[1],
        password=password_hash,
    )  # fmt: skip
    user.groups.add(Group.objects.get_or_create(name=role.value)[0])
    if role == Role.PHYSICIAN:
        with audit_context(None, reason="load test seed"):
            StaffProfile(user=user, experience_years=8).save()
    return user


def _trial(site_staff) -> Trial:
    with audit_context(None, reason="load test seed"):
        trial = new_demo_design_trial("ContourTrial load test", "CT-HN-LOAD", "LD")
        site = Site.objects.get(code=SITE)
        for user in {u.pk: u for u in site_staff}.values():
            SiteMembership(user=user, site=site).save()
    return trial


def _randomised(trial, coordinator, physician, hospital_id: str):
    eligible = {c["code"]: c["kind"] == "inclusion" for c in demo_design.ELIGIBILITY_CRITERIA}
    patient = enrolment.enrol(
        actor=coordinator, trial=trial, site=Site.objects.get(code=SITE), hospital_id=hospital_id,
        physician=physician, eligibility=eligible, consent_date=dt.date.today() - dt.timedelta(days=2),
        consent_form_version="v1.1", strata={"subsite": "oropharynx", "t_stage": "T1-2"},
    )  # fmt: skip
    randomisation.randomise(actor=coordinator, patient=patient, password=PASSWORD)
    patient.refresh_from_db()
    return patient


def _store(patient, hospital_id: str, paths) -> None:
    """File the phantom's files as this patient's study, every generated UID replaced by a fresh one."""
    fresh: dict[str, str] = {}

    def renew(uid: str) -> str:
        if not uid.startswith(GENERATED_ROOT):
            return uid
        return fresh.setdefault(uid, generate_uid())

    datasets = []
    for path in paths:
        ds = pydicom.dcmread(path)
        for element in ds.iterall():
            if element.VR == "UI" and isinstance(element.value, str):
                element.value = renew(element.value)
        ds.file_meta.MediaStorageSOPInstanceUID = renew(ds.file_meta.MediaStorageSOPInstanceUID)
        ds.PatientID = hospital_id  # the phantom stands in for this patient's hospital export
        datasets.append(ds)
    store_images(patient=patient, datasets=datasets, source=Study.Source.UPLOAD)


if __name__ == "__main__":
    main()
