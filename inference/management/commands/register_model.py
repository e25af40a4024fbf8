"""Register a segmentation model: check its files, copy them under MODEL_ROOT, record the ModelVersion."""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from inference.backends import KINDS, ModelFileError, backend_class
from inference.models import ModelVersion
from inference.registry import activate, active_model, register
from trial.models import Trial
from trial.services.errors import TrialError


class Command(BaseCommand):
    help = (
        "Register a model folder (TorchScript: model_card.json + weights; nnU-Net v2: the trained model folder "
        "with dataset.json, plans.json, fold_k/checkpoint_final.pth) as NAME:VERSION, optionally active for a trial."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        # `--version V` is the model's version here, replacing Django's `--version` (the program's).
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="Model folder (or the TorchScript .pt beside its model_card.json).")
        parser.add_argument("--backend", required=True, choices=KINDS)
        parser.add_argument("--name", required=True)
        parser.add_argument("--version", required=True)
        parser.add_argument("--activate-for", metavar="PROTOCOL_ID", help="Make it the active model of this trial.")
        parser.add_argument("--reason", default="", help="Why (required with --activate-for; audited).")
        parser.add_argument("--by", metavar="USERNAME", help="The data manager registering it (audit trail).")
        parser.add_argument(
            "--exist-ok", action="store_true", help="If NAME:VERSION is registered with the same files, keep it."
        )

    def handle(self, *args, path, backend, name, version, activate_for, reason, by, exist_ok, **options):
        actor = None
        if by:
            actor = get_user_model().objects.filter(username=by).first()
            if actor is None:
                raise CommandError(f"No user {by!r}.")
        try:
            model = ModelVersion.objects.filter(name=name, version=version).first() if exist_ok else None
            if model is not None:
                _, files = backend_class(backend).describe(path)
                if sorted((f.path, f.sha256) for f in files) != sorted((f["path"], f["sha256"]) for f in model.files):
                    raise CommandError(f"{name}:{version} is registered with other files; give this one a new version.")
                trial = Trial.objects.filter(protocol_id=activate_for).first() if activate_for else None
                if trial is not None and active_model(trial) == model:
                    activate_for = None  # nothing to change
            else:
                model = register(folder=path, backend=backend, name=name, version=version, actor=actor)
            if activate_for:
                trial = Trial.objects.filter(protocol_id=activate_for).first()
                if trial is None:
                    raise CommandError(f"No trial with protocol id {activate_for!r}.")
                activate(trial=trial, model=model, actor=actor, reason=reason)
        except TrialError as exc:
            raise CommandError(exc.message) from exc
        except ModelFileError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(
            f"Registered {model} — sha256 {model.sha256}, {len(model.files)} file(s), channels "
            f"{', '.join(model.input_channels)}" + (f"; active for {activate_for}" if activate_for else "")
        ))  # fmt: skip
