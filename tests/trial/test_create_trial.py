"""Trial set-up from a JSON definition: all or nothing, with the reason on refusal."""

import json

import pytest
from django.core.management import CommandError, call_command

from trial import demo_design
from trial.models import AuditEntry, RandomisationSecret, Trial

pytestmark = pytest.mark.django_db


def _definition(tmp_path, drop=(), **overrides):
    spec = {
        "name": "Setup test", "protocol_id": "CT-SETUP", "target_accrual": 100, "method": "blocks",
        "block_sizes": [4, 8], "sites": [{"code": "AAR", "name": "Aarhus"}, {"code": "ODE", "name": "Odense"}],
        "strata_factors": demo_design.STRATA_FACTORS, "eligibility_criteria": demo_design.ELIGIBILITY_CRITERIA,
        "consent_form_versions": ["v2.0"],
    }  # fmt: skip
    spec.update(overrides)
    for key in drop:
        del spec[key]
    path = tmp_path / "trial.json"
    path.write_text(json.dumps(spec))
    return path


def test_creates_trial_sites_and_secret_and_audits_without_the_secret(tmp_path):
    call_command("create_trial", str(_definition(tmp_path)))
    trial = Trial.objects.get(protocol_id="CT-SETUP")
    assert trial.factor_levels()["site"] == ["AAR", "ODE"]
    secret = RandomisationSecret.objects.get(trial=trial)
    assert secret.block_sizes == [4, 8] and len(bytes(secret.seed)) == 32
    entry = AuditEntry.objects.get(model="trial.randomisationsecret")
    assert entry.changes["seed"] == [None, "«redacted»"] and entry.changes["block_sizes"] == [None, "«redacted»"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"block_sizes": [3]}, "multiples of 2"),
        ({"method": "urn"}, "Unknown randomisation method"),
        ({"drop": ("name", "sites")}, "lacks: name, sites"),
        ({"gtv_segments": ["GTVp", "GTVp"]}, "distinct segment names"),
        ({"idle_cutoff_seconds": 0}, "idle_cutoff_seconds must be"),
        ({"required_modalities": ["PT"]}, "must include CT"),
    ],
)
def test_invalid_definitions_leave_nothing_behind(tmp_path, overrides, message):
    spec = _definition(tmp_path, **overrides)
    with pytest.raises(CommandError, match=message):
        call_command("create_trial", str(spec))
    assert not Trial.objects.exists() and not AuditEntry.objects.exists()


def test_delineation_settings_are_taken_from_the_definition(tmp_path):
    spec = _definition(tmp_path, gtv_segments=["GTVp", "GTVn"], idle_cutoff_seconds=90, edit_burst_seconds=5)
    call_command("create_trial", str(spec))
    trial = Trial.objects.get(protocol_id="CT-SETUP")
    assert trial.gtv_segments == ["GTVp", "GTVn"] and trial.idle_cutoff_seconds == 90 and trial.edit_burst_seconds == 5
    assert trial.required_modalities == ["CT", "PT"]
