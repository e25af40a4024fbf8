"""The whole AI path for one study: CT + PET → model input → sliding window → probability and GTV on the CT grid.

Also loads a TorchScript model with its model card and checks the weights against the card's sha256, so a
swapped or corrupted file is refused rather than silently used. No Django here.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from imaging.geometry import Grid

from .backends.base import ModelFileError
from .backends.torchscript import CARD_NAME, TorchScriptBackend, quiet_torchscript, sha256_of
from .postprocess import binarise
from .preprocess import ModelInput, prepare, to_ct_grid
from .sliding_window import WindowResult, sliding_window

DEMO_MODEL_DIR = Path(__file__).resolve().parent / "demo_model"
__all__ = ["CARD_NAME", "DEMO_MODEL_DIR", "ModelFileError", "Segmentation", "load_model", "quiet_torchscript",
           "segment", "sha256_of"]  # fmt: skip


@dataclass(frozen=True)
class Segmentation:
    probability: np.ndarray  # (z, y, x) float32 GTV probability on the CT grid (mean over TTA members)
    mask: np.ndarray  # (z, y, x) bool on the CT grid, after post-processing
    model_input: ModelInput
    window: WindowResult  # per-member probabilities on the model grid, for uncertainty


def load_model(directory: Path = DEMO_MODEL_DIR, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """(TorchScript module in eval mode, model card) from a folder holding model_card.json and the weights.

    The same checks as TorchScriptBackend (card keys, weights sha256 against the card), which does the loading."""
    card, files = TorchScriptBackend.describe(Path(directory))
    return TorchScriptBackend.load(Path(directory), card, files, device=device).module, card


def segment(
    model: torch.nn.Module,
    card: dict,
    hu: np.ndarray,
    ct_grid: Grid,
    suv: np.ndarray,
    pet_grid: Grid,
    *,
    overlap: float | None = None,
    mirror_axes: tuple[int, ...] | None = None,
    device: str | torch.device | None = None,
) -> Segmentation:
    """Run the card's preprocessing, sliding window and post-processing; overlap/mirroring default to the card's."""
    model_input = prepare(hu, ct_grid, suv, pet_grid, card)
    settings = card.get("inference", {})
    window = sliding_window(
        model, model_input.image, tuple(card["patch_size"]),
        overlap=settings.get("overlap", 0.5) if overlap is None else overlap,
        mirror_axes=tuple(settings.get("mirror_axes", ())) if mirror_axes is None else tuple(mirror_axes),
        sigma_scale=settings.get("sigma_scale", 0.125), device=device,
    )  # fmt: skip
    foreground = card["labels"].index("GTV")
    probability = to_ct_grid(window.mean[foreground].numpy(), model_input, ct_grid)
    mask = binarise(probability, ct_grid.spacing, card.get("postprocessing"))
    return Segmentation(probability=probability, mask=mask, model_input=model_input, window=window)
