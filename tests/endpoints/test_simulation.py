"""A simulated trial through every real stage; its endpoint data in every format read back equal."""

import pandas as pd
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from delineation.models import SessionEvent, Submission
from endpoints import dataset, formats, report, services
from inference.models import AIContour
from panel_review.models import CorrectionMetrics, ReviewCase
from tests.inference.conftest import register_demo
from trial.models import Patient, Trial

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]  # on_commit reactions run, as in use

PATIENTS = 40


@pytest.fixture
def simulated(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    call_command("seed_demo", "--no-images", verbosity=0)
    trial = Trial.objects.get(protocol_id="CT-HN-DEMO")
    world = type(
        "W",
        (),
        {
            "trial": trial,
            "data_manager": __import__("django.contrib.auth")
            .contrib.auth.get_user_model()
            .objects.get(username="datamanager"),
        },
    )()
    register_demo(world)
    call_command("simulate_trial", "--patients", str(PATIENTS), "--seed", "7", "--rows", "96", "--slices", "32",
                 verbosity=0)  # fmt: skip
    return trial


MILLISECOND = pd.Timedelta(milliseconds=1)


def _assert_within_a_millisecond(got_column, expected_column, label) -> None:
    for got, want in zip(got_column, expected_column, strict=True):
        if pd.isna(want):
            assert pd.isna(got), (label, got)
        else:
            assert abs(pd.Timestamp(got) - pd.Timestamp(want)) <= MILLISECOND, (label, got, want)


def test_forty_patients_through_every_stage_and_out_in_every_format(simulated, tmp_path):
    trial = simulated
    simulated_patients = Patient.objects.filter(
        trial=trial, trial_number__in=Submission.objects.values("patient__trial_number")
    )
    assert simulated_patients.count() == PATIENTS
    ai = [p for p in simulated_patients if p.allocation.arm == "ai"]
    assert ai and AIContour.objects.filter(patient__in=ai).count() == len(ai)  # the real model ran for each
    assert ReviewCase.objects.filter(approved_at__isnull=False).count() == PATIENTS
    assert CorrectionMetrics.objects.filter(comparison="ai_vs_submitted").count() == len(ai)
    assert SessionEvent.objects.filter(session__patient__in=simulated_patients, kind="edit").exists()
    statistician = get_user_model().objects.get(username="statistician")
    frame, book = dataset.build(trial, unblinded=False)
    for fmt in formats.FORMATS:
        path = services.export(actor=statistician, trial=trial, fmt=fmt, path=tmp_path / f"endpoints.{fmt}")
        back, expected = formats.read(fmt, path, book), frame.copy()
        for variable in book:  # Stata and SPSS keep times to the millisecond: equal within one
            if variable.kind == "datetime":
                _assert_within_a_millisecond(back[variable.name], expected[variable.name], (fmt, variable.name))
                back[variable.name] = expected[variable.name]  # (flooring both to the second failed at x.9996 s)
        pd.testing.assert_frame_equal(back, expected, check_dtype=False, check_exact=False, rtol=1e-9)
    row = frame.set_index("trial_id").loc[ai[0].trial_number]
    assert row.delin_active_s > 60 and row.sa_dice > 0.5 and row.blinding_guess in ("correct", "incorrect", "dont_know")

    # the report of the 40 patients estimates the time difference, with every plot
    html = report.build_report(trial, tmp_path / "report").read_text()
    primary = html[html.index("Hodges") :][:3000]
    assert "not estimable" not in primary and "95" in primary
    assert html.count("data:image/png;base64,") == 5
    assert (tmp_path / "report" / "report.pdf").read_bytes().startswith(b"%PDF")
