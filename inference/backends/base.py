"""One small interface for every model format: CT (+ PET) in, a GTV proposal with its uncertainty out.

Every backend returns its result on the CT grid, so what is stored, shown and compared does not depend on
the model's own spacing. No Django here: the Celery task, the `run_segmentation` command and the benchmark
all call the same `Backend.propose`.
"""

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from imaging.geometry import Grid

Progress = Callable[[str, float], None]  # (stage, fraction of that stage done, 0..1)


def no_progress(stage: str, fraction: float) -> None:
    """The default progress callback: report nothing."""


class ModelFileError(ValueError):
    """The model files are incomplete, unreadable, or their weights do not match the recorded sha256."""


@dataclass(frozen=True)
class CaseImages:
    """One patient's planning images as the backends take them: CT in HU, PET in SUVbw, each on its own grid."""

    hu: np.ndarray  # (z, y, x) float32
    ct_grid: Grid
    suv: np.ndarray | None = None  # (z, y, x) float32
    pet_grid: Grid | None = None


@dataclass(frozen=True)
class Proposal:
    """The AI proposal on the CT grid."""

    probability: np.ndarray  # (z, y, x) float32, GTV probability averaged over the ensemble members
    mask: np.ndarray  # (z, y, x) bool, after the card's post-processing
    uncertainty: np.ndarray  # (z, y, x) float32, predictive entropy of the mean probability, bits (0..1)
    case_uncertainty: float  # per-case score, see inference.uncertainty.case_score
    members: int  # ensemble members averaged
    member_kind: str  # what the members are: "mc-dropout", "mirroring", "folds", or combinations
    forward_seconds: float  # time spent in the network's forward passes alone
    device: str  # "cpu" or "cuda:0"


@dataclass(frozen=True)
class WeightFile:
    """A file the model needs, relative to the model folder, with its sha256 (checked again at every load)."""

    path: str
    sha256: str
    size: int


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weight_path(folder: Path, relative: str) -> Path:
    """`relative` inside `folder`; a path leaving the folder is refused (a card or registration must not point
    at arbitrary files)."""
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise ModelFileError(f"{relative}: a model file must lie inside the model folder {folder}.")
    return path


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
    return str(device)


class Backend(ABC):
    """A loaded model. Construct with `load(folder, card, files)`; the files' sha256 are checked first."""

    kind: ClassVar[str]

    @classmethod
    @abstractmethod
    def describe(cls, folder: Path) -> tuple[dict, list[WeightFile]]:
        """(model card, weight files) of a model folder, for registration. Raises ModelFileError."""

    @classmethod
    @abstractmethod
    def load(cls, folder: Path, card: dict, files: list[WeightFile], device: str | None = None) -> "Backend":
        """The model ready to run; refuses files whose sha256 differs from `files`."""

    @abstractmethod
    def propose(self, images: CaseImages, *, progress: Progress = no_progress) -> Proposal:
        """Segment the GTV; report (stage, fraction) to `progress` as it goes."""
