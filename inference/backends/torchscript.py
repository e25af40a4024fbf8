"""The bundled model format: one TorchScript file next to its model card (model_card.json).

Ensemble members are the card's mirroring members (inference.mirror_axes) times Monte-Carlo dropout samples
(inference.mc_dropout_samples, default 4): sample 0 runs in eval mode and is the deterministic prediction, the
others run with module.train(), which for these models changes only dropout (instance norm keeps no running
statistics; the card says so). The dropout masks are drawn from a generator seeded from the card
(inference.mc_dropout_seed, default 0) inside a forked RNG state, so one case always gives the same proposal
and the caller's random state is left alone. Everything is averaged and its entropy taken on the model grid,
then brought to the CT grid. No Django here.
"""

import json
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..postprocess import binarise
from ..preprocess import ModelInput, prepare, to_ct_grid
from ..sliding_window import sliding_window
from ..uncertainty import case_score, predictive_entropy
from .base import (
    Backend,
    CaseImages,
    ModelFileError,
    Progress,
    Proposal,
    WeightFile,
    device_name,
    no_progress,
    sha256_of,
    weight_path,
)

CARD_NAME = "model_card.json"
REQUIRED_CARD_KEYS = ("input_channels", "labels", "target_spacing_mm", "patch_size", "normalisation")
DEFAULT_MC_DROPOUT_SAMPLES = 4  # eval pass + 3 dropout passes: 4× the forward time of one pass
DEFAULT_MC_DROPOUT_SEED = 0


@contextmanager
def quiet_torchscript():
    """Silence torch's TorchScript deprecation notice: the demo model's format stays TorchScript (issue 4)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit", category=DeprecationWarning)
        yield


def model_dir(folder: Path) -> Path:
    """The model folder itself, also when given the path of a file inside it (e.g. the .pt file)."""
    folder = Path(folder)
    return folder.parent if folder.is_file() else folder


def read_card(folder: Path) -> dict:
    """The model card of `folder`, checked for what inference needs. Raises ModelFileError."""
    card_path = folder / CARD_NAME
    if not card_path.is_file():
        raise ModelFileError(f"{folder}: no {CARD_NAME}; a TorchScript model folder holds its card by the weights.")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{card_path}: not a readable JSON model card ({exc}).") from exc
    if not isinstance(card, dict):
        raise ModelFileError(f"{card_path}: the model card must be a JSON object.")
    missing = [key for key in ("file", *REQUIRED_CARD_KEYS) if key not in card]
    if missing:
        raise ModelFileError(f"{card_path}: the model card lacks {', '.join(missing)}.")
    if card.get("format", "torchscript") != "torchscript":
        raise ModelFileError(f"{card_path}: the card's format is {card['format']!r}, not 'torchscript'.")
    if "GTV" not in card["labels"]:
        raise ModelFileError(f"{card_path}: the card's labels {card['labels']} have no 'GTV'.")
    if "CT" not in card["input_channels"]:
        raise ModelFileError(f"{card_path}: the card's input channels {card['input_channels']} have no 'CT'.")
    return card


@dataclass(frozen=True)
class MemberProbabilities:
    """Every member's GTV probability on the model grid, before anything goes back to the CT grid."""

    model_input: ModelInput
    probabilities: np.ndarray  # (members, z, y, x) float32 on model_input.grid; member = sample × flips + flip
    flips: tuple[tuple[int, ...], ...]  # spatial axes (0 = z) flipped, per mirroring member
    samples: int  # MC dropout samples (1: eval mode only)
    forward_seconds: float  # time in the network's forward calls alone

    @property
    def member_kind(self) -> str:
        kinds = [kind for kind, count in (("mirroring", len(self.flips)), ("mc-dropout", self.samples)) if count > 1]
        return "+".join(kinds) or "single"


class TimedModule:
    """Calls the module and adds the time spent in the call (the forward pass alone) to `seconds`.

    On CUDA the device is synchronised around the call, since kernels run asynchronously."""

    def __init__(self, module: torch.nn.Module, device: torch.device):
        self.module = module
        self.device = device
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        sync = self.device.type == "cuda"
        if sync:
            torch.cuda.synchronize(self.device)
        began = time.perf_counter()
        out = self.module(x)
        if sync:
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - began
        self.calls += 1
        return out


class TorchScriptBackend(Backend):
    """A TorchScript U-Net with the preprocessing, sliding window and post-processing its card describes."""

    kind = "torchscript"

    def __init__(self, module: torch.nn.Module, card: dict, folder: Path, device: torch.device):
        self.module = module
        self.card = card
        self.folder = folder
        self.device = device

    @classmethod
    def describe(cls, folder: Path) -> tuple[dict, list[WeightFile]]:
        """(card, [the weights file]) of a folder holding model_card.json and the file the card names; also
        accepts the path of the .pt file itself."""
        given = Path(folder)
        folder = model_dir(given)
        if not folder.is_dir():
            raise ModelFileError(f"{given}: no such model folder.")
        card = read_card(folder)
        if given.is_file() and given.name not in (card["file"], CARD_NAME):
            raise ModelFileError(f"{given}: the model card in {folder} names {card['file']}, not {given.name}.")
        weights = weight_path(folder, card["file"])
        if not weights.is_file():
            raise ModelFileError(f"{folder}: the card names {card['file']}, which is missing.")
        digest = sha256_of(weights)
        expected = card.get("weights_sha256")
        if expected and digest != expected:
            raise ModelFileError(
                f"{weights}: sha256 {digest[:12]}… differs from the card's weights_sha256 {str(expected)[:12]}…; "
                "the weights were changed or corrupted."
            )
        return card, [WeightFile(path=str(card["file"]), sha256=digest, size=weights.stat().st_size)]

    @classmethod
    def load(
        cls, folder: Path, card: dict, files: list[WeightFile], device: str | torch.device | None = None
    ) -> "TorchScriptBackend":
        """Check every file's sha256 against `files`, then load the module on `device` (default: CUDA when
        available) in eval mode."""
        folder = model_dir(folder)
        for weight in files:
            path = weight_path(folder, weight.path)
            if not path.is_file():
                raise ModelFileError(f"{weight.path} is missing from {folder}.")
            if sha256_of(path) != weight.sha256:
                raise ModelFileError(
                    f"{weight.path}: sha256 differs from the registered {weight.sha256[:12]}…; the file was changed."
                )
        if "file" not in card:
            raise ModelFileError(f"{folder}: the model card names no weights file.")
        if card["file"] not in {weight.path for weight in files}:
            raise ModelFileError(f"{card['file']}: the card's weights file is not among the verified files.")
        device = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
        try:
            with quiet_torchscript():
                module = torch.jit.load(str(weight_path(folder, card["file"])), map_location=device)
        except (RuntimeError, ValueError) as exc:
            raise ModelFileError(f"{card['file']}: not a loadable TorchScript module ({exc}).") from exc
        module.eval()
        return cls(module, card, folder, device)

    @property
    def settings(self) -> dict:
        return self.card.get("inference", {})

    @property
    def samples(self) -> int:
        return max(1, int(self.settings.get("mc_dropout_samples", DEFAULT_MC_DROPOUT_SAMPLES)))

    def _check(self, images: CaseImages) -> None:
        if np.ndim(images.hu) != 3 or tuple(np.shape(images.hu)) != tuple(images.ct_grid.shape):
            raise ValueError(f"The CT array {np.shape(images.hu)} does not match its grid {images.ct_grid.shape}.")
        if "PET_SUV" in self.card["input_channels"]:
            if images.suv is None or images.pet_grid is None:
                raise ValueError(
                    f"{self.card.get('name', 'This model')} needs CT and PET (input channels "
                    f"{', '.join(self.card['input_channels'])}); the case has no PET series (PET_SUV missing)."
                )
            if tuple(np.shape(images.suv)) != tuple(images.pet_grid.shape):
                shape = np.shape(images.suv)
                raise ValueError(f"The PET array {shape} does not match its grid {images.pet_grid.shape}.")

    def predict_members(self, images: CaseImages, *, progress: Progress = no_progress) -> MemberProbabilities:
        """Preprocess and run every member; GTV probabilities stay on the model grid."""
        self._check(images)
        progress("preprocessing", 0.0)
        model_input = prepare(images.hu, images.ct_grid, images.suv, images.pet_grid, self.card)
        progress("preprocessing", 1.0)
        settings = self.settings
        mirror_axes = tuple(int(a) for a in settings.get("mirror_axes", ()))
        foreground = list(self.card["labels"]).index("GTV")
        samples = self.samples
        timed = TimedModule(self.module, self.device)
        maps: list[torch.Tensor] = []
        flips: tuple[tuple[int, ...], ...] = ()
        progress("inference", 0.0)
        rng_devices = [self.device] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=rng_devices):
                torch.manual_seed(int(settings.get("mc_dropout_seed", DEFAULT_MC_DROPOUT_SEED)))
                for sample in range(samples):
                    self.module.train(sample > 0)  # instance norm has no running stats: only dropout changes
                    window = sliding_window(
                        timed, model_input.image, tuple(self.card["patch_size"]),
                        overlap=settings.get("overlap", 0.5), mirror_axes=mirror_axes,
                        sigma_scale=settings.get("sigma_scale", 0.125), device=self.device,
                    )  # fmt: skip
                    flips = window.flips
                    maps.append(window.members[:, foreground])
                    progress("inference", (sample + 1) / samples)
        finally:
            self.module.eval()
        probabilities = torch.cat(maps).numpy()
        return MemberProbabilities(
            model_input=model_input, probabilities=probabilities, flips=flips, samples=samples,
            forward_seconds=timed.seconds,
        )  # fmt: skip

    def assemble(
        self, images: CaseImages, members: MemberProbabilities, *, progress: Progress = no_progress
    ) -> Proposal:
        """Mean → CT grid → post-processing; entropy of the members on the model grid → CT grid."""
        progress("postprocessing", 0.0)
        grid = images.ct_grid
        probability = to_ct_grid(members.probabilities.mean(axis=0), members.model_input, grid)
        mask = binarise(probability, grid.spacing, self.card.get("postprocessing"))
        entropy = predictive_entropy(members.probabilities)
        uncertainty = np.clip(to_ct_grid(entropy, members.model_input, grid), 0.0, 1.0)
        proposal = Proposal(
            probability=np.clip(probability, 0.0, 1.0), mask=mask, uncertainty=uncertainty,
            case_uncertainty=case_score(uncertainty, mask), members=int(members.probabilities.shape[0]),
            member_kind=members.member_kind, forward_seconds=members.forward_seconds,
            device=device_name(self.device),
        )  # fmt: skip
        progress("postprocessing", 1.0)
        return proposal

    def propose(self, images: CaseImages, *, progress: Progress = no_progress) -> Proposal:
        return self.assemble(images, self.predict_members(images, progress=progress), progress=progress)
