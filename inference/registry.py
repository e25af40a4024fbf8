"""Register models (a verified copy under MODEL_ROOT), choose the one a trial uses, load it for a job."""

import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

from django.conf import settings
from django.db import transaction

from trial.audit.recorder import audit_context
from trial.models import Trial
from trial.roles import Role
from trial.services.access import require_role
from trial.services.errors import Conflict, InvalidInput, NotFound

from .backends import KINDS, Backend, ModelFileError, WeightFile, backend_class
from .models import ActiveModel, ModelVersion

REQUIRED_CARD_KEYS = ("input_channels", "labels", "target_spacing_mm", "patch_size", "normalisation")


def register(*, folder: Path, backend: str, name: str, version: str, actor=None) -> ModelVersion:
    """Check the model folder with its backend, copy its files under MODEL_ROOT and record the ModelVersion.

    The copy is what runs from then on, so a later change to the source folder cannot change the model.
    """
    if backend not in KINDS:
        raise InvalidInput(f"Unknown backend {backend!r}; choose one of {', '.join(KINDS)}.")
    if not name.strip() or not version.strip() or ":" in name:
        raise InvalidInput("A model needs a name (without ':') and a version.")
    if ModelVersion.objects.filter(name=name, version=version).exists():
        raise Conflict(f"{name}:{version} is registered already; give the new model another version.")
    folder = Path(folder)
    try:
        card, files = backend_class(backend).describe(folder)
    except ModelFileError as exc:
        raise InvalidInput(str(exc)) from exc
    missing = [key for key in REQUIRED_CARD_KEYS if key not in card]
    if missing:
        raise InvalidInput(f"{folder}: the model card lacks {', '.join(missing)}.")
    source = folder if folder.is_dir() else folder.parent
    target_rel = Path(_safe(name)) / _safe(version)
    target = Path(settings.MODEL_ROOT) / target_rel
    if target.exists():
        raise Conflict(f"{target} exists already; remove it or choose another version.")
    staging = Path(tempfile.mkdtemp(prefix=".register-", dir=_root()))
    try:
        for weight in files:
            destination = staging / weight.path
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / weight.path, destination)
        _verify(staging, files)  # the copy, not only the source, matches
        with transaction.atomic(), audit_context(actor):
            model = ModelVersion(
                name=name, version=version, backend=backend, folder=str(target_rel),
                files=[asdict(weight) for weight in files], input_channels=list(card["input_channels"]),
                labels=list(card["labels"]), target_spacing_mm=list(card["target_spacing_mm"]),
                patch_size=list(card["patch_size"]), normalisation=card["normalisation"],
                intended_use=str(card.get("intended_use", "")), validation=card.get("validation", {}),
                card=card, registered_by=actor,
            )  # fmt: skip
            model.save()
            target.parent.mkdir(parents=True, exist_ok=True)
            staging.rename(target)  # last: a failure before leaves no files and no row
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return model


def _root() -> Path:
    root = Path(settings.MODEL_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    return root


def _safe(part: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in part.strip())
    if cleaned in ("", ".", ".."):
        raise InvalidInput(f"{part!r} cannot name a model folder.")
    return cleaned


def _verify(folder: Path, files: list[WeightFile]) -> None:
    from .predict import sha256_of

    for weight in files:
        path = folder / weight.path
        if not path.is_file():
            raise ModelFileError(f"{weight.path} is missing from {folder}.")
        if sha256_of(path) != weight.sha256:
            raise ModelFileError(f"{weight.path}: sha256 differs from the registered one; the file was changed.")


def model_folder(model: ModelVersion) -> Path:
    return Path(settings.MODEL_ROOT) / model.folder


def load(model: ModelVersion, device: str | None = None) -> Backend:
    """The model ready to run; its backend refuses files whose sha256 differs from the registration."""
    files = [WeightFile(**entry) for entry in model.files]
    return backend_class(model.backend).load(model_folder(model), model.card, files, device=device)


def resolve(spec: str) -> ModelVersion:
    """NAME or NAME:VERSION; a bare name means its most recently registered version."""
    name, _, version = spec.partition(":")
    models = ModelVersion.objects.filter(name=name)
    if version:
        models = models.filter(version=version)
    model = models.order_by("-registered_at", "-pk").first()
    if model is None:
        known = ", ".join(f"{m.name}:{m.version}" for m in ModelVersion.objects.all()) or "none"
        raise NotFound(f"No registered model {spec!r}. Registered: {known}.")
    return model


def activate(*, trial: Trial, model: ModelVersion, actor, reason: str) -> ActiveModel:
    """Make `model` the one that proposes GTVs for `trial`'s AI arm from now on (data managers)."""
    if actor is not None:
        require_role(actor, Role.DATA_MANAGER, action="choose the trial's AI model")
    if not reason.strip():
        raise InvalidInput("Give a reason for choosing this model; it goes into the audit trail.")
    with transaction.atomic(), audit_context(actor, reason=reason.strip()):
        active = ActiveModel.objects.select_for_update().filter(trial=trial).first() or ActiveModel(trial=trial)
        active.model_version = model
        active.activated_by = actor
        active.save()
    return active


def active_model(trial: Trial) -> ModelVersion | None:
    active = ActiveModel.objects.select_related("model_version").filter(trial=trial).first()
    return active.model_version if active else None
