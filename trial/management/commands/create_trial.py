"""Set up a trial from a JSON definition (sites, strata, eligibility, consent versions, method).

The randomisation seed is generated here and never printed; block sizes are stored beside it.
"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from trial.audit.recorder import audit_context
from trial.models import RandomisationSecret, Site, Trial
from trial.randomisation import DesignError

REQUIRED = ("name", "protocol_id", "target_accrual", "sites", "strata_factors", "eligibility_criteria",
            "consent_form_versions")  # fmt: skip


class Command(BaseCommand):
    help = "Create a trial from a JSON file (see docs/TRIAL_SETUP.md for the format)."

    def add_arguments(self, parser):
        parser.add_argument("definition", type=Path)

    def handle(self, *args, definition: Path, **options):
        try:
            spec = json.loads(definition.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CommandError(f"Cannot read trial definition {definition}: {exc}") from exc
        missing = [key for key in REQUIRED if key not in spec]
        if missing:
            raise CommandError(f"The trial definition lacks: {', '.join(missing)}.")
        if Trial.objects.filter(protocol_id=spec["protocol_id"]).exists():
            raise CommandError(f"A trial with protocol id {spec['protocol_id']!r} exists already.")
        ratio = spec.get("allocation_ratio", [1, 1])
        delineation = _delineation_settings(spec)
        with transaction.atomic(), audit_context(None, reason=f"trial set up from {definition.name}"):
            trial = Trial(
                name=spec["name"],
                protocol_id=spec["protocol_id"],
                patient_prefix=spec.get("patient_prefix", "HN"),
                target_accrual=spec["target_accrual"],
                ratio_ai=ratio[0],
                ratio_manual=ratio[1],
                method=spec.get("method", "blocks"),
                preferred_arm_probability=spec.get("preferred_arm_probability", 0.8),
                strata_factors=spec["strata_factors"],
                eligibility_criteria=spec["eligibility_criteria"],
                consent_form_versions=spec["consent_form_versions"],
                **delineation,
            )
            trial.save()
            for site_spec in spec["sites"]:
                site = Site.objects.filter(code=site_spec["code"]).first()
                if site is None:
                    site = Site(code=site_spec["code"], name=site_spec["name"])
                    site.save()
                trial.sites.add(site)
            block_sizes = spec.get("block_sizes", [2, 4, 6])
            try:
                trial.design(block_sizes)
            except (DesignError, KeyError, TypeError) as exc:
                raise CommandError(f"Invalid randomisation design: {exc}") from exc
            RandomisationSecret(trial=trial, block_sizes=block_sizes).save()
        self.stdout.write(self.style.SUCCESS(f"Trial {trial.protocol_id} created with {len(spec['sites'])} site(s)."))


def _delineation_settings(spec: dict) -> dict:
    """Optional delineation settings: segments, required modalities and the timing cut-offs, checked."""
    settings = {}
    segments = spec.get("gtv_segments", ["GTVp"])
    if (
        not isinstance(segments, list)
        or not 1 <= len(segments) <= 4
        or len(set(segments)) != len(segments)
        or not all(isinstance(name, str) and name.strip() for name in segments)
    ):
        raise CommandError('gtv_segments must list 1–4 distinct segment names, e.g. ["GTVp", "GTVn"].')
    settings["gtv_segments"] = segments
    modalities = spec.get("required_modalities", ["CT", "PT"])
    if "CT" not in modalities or not set(modalities) <= {"CT", "PT", "MR"}:
        raise CommandError("required_modalities must include CT and may add PT and MR.")
    settings["required_modalities"] = modalities
    reviews = spec.get("panel_reviews_per_case", 1)
    if reviews not in (1, 2):
        raise CommandError("panel_reviews_per_case must be 1 (one review) or 2 (two independent reviews + consensus).")
    settings["panel_reviews_per_case"] = reviews
    for key, default, lowest in (
        ("idle_cutoff_seconds", 60, 5),
        ("edit_burst_seconds", 10, 1),
        ("approval_due_days", 14, 1),
    ):
        value = spec.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < lowest:
            raise CommandError(f"{key} must be a whole number of seconds, at least {lowest}.")
        settings[key] = value
    return settings
