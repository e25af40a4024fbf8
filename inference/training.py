"""Train, evaluate and export the bundled demo GTV model on phantom PET/CT cases (issue 4).

Everything is seeded: phantom seeds fix the data, `seed` fixes initialisation and patch sampling, and
deterministic algorithms with a fixed thread count make a rerun on the same machine give the same weights.
Training data go through exactly the preprocessing used at inference (preprocess.prepare) from phantoms
imaged at mixed matrix sizes, so the model does not learn one scanner's noise. Patches are centred on the
tumour with probability `foreground_fraction`, on physiological uptake (brain, tonsils: the false positives a
PET-driven model makes) with probability `hot_fraction`, elsewhere uniformly in the body box. No Django here.
"""

import json
import math
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .phantom_cases import phantom_case
from .postprocess import dice
from .predict import CARD_NAME, Segmentation, quiet_torchscript, segment, sha256_of
from .preprocess import mask_to_model_grid, prepare
from .unet import UNet3d

WEIGHTS_NAME = "gtv_unet.pt"
INTENDED_USE = "Demo and tests only — NOT FOR CLINICAL USE"


@dataclass(frozen=True)
class TrainingConfig:
    training_seeds: tuple[int, ...] = tuple(range(32))
    validation_seeds: tuple[int, ...] = tuple(range(1000, 1010))
    training_rows: tuple[int, ...] = (256, 384, 512)  # CT matrix drawn per training seed
    validation_rows: int = 512
    spacing_mm: tuple[float, float, float] = (3.0, 2.0, 2.0)
    patch_size: tuple[int, int, int] = (32, 64, 64)
    channels: tuple[int, ...] = (8, 16, 32, 64)
    dropout: float = 0.1
    dropout_from: int = 2
    steps: int = 1000
    batch_size: int = 2
    learning_rate: float = 3e-3
    foreground_fraction: float = 0.5  # patches centred on the GTV
    hot_fraction: float = 0.25  # patches centred on non-GTV uptake above hot_suv (brain, tonsils): hard negatives
    hot_suv: float = 3.0
    seed: int = 0
    threads: int = 2
    workers: int = 2  # processes generating phantoms
    normalisation: dict = field(
        default_factory=lambda: {
            "CT": {"clip": [-200.0, 300.0], "subtract": 50.0, "divide": 250.0},
            "PET_SUV": {"clip": [0.0, 15.0], "subtract": 0.0, "divide": 15.0},
        }
    )


def base_card(config: TrainingConfig) -> dict:
    """The model card fields known before training: everything inference needs to reproduce preprocessing."""
    return {
        "name": "contourtrial-demo-gtv-unet",
        "version": "1.0",
        "intended_use": INTENDED_USE,
        "description": (
            "Small 3-D U-Net segmenting the head-and-neck GTV (primary + nodes) on synthetic phantom PET/CT "
            "(imaging.phantom). Trained on phantoms only; meaningless on patient images."
        ),
        "format": "torchscript",
        "file": WEIGHTS_NAME,
        "input_channels": ["CT", "PET_SUV"],
        "labels": ["background", "GTV"],
        "output": "logits (N, 2, z, y, x); softmax over classes",
        "axis_order": "z, y, x (slice, row, column); grid axes follow the CT's orientation, LPS",
        "target_spacing_mm": list(config.spacing_mm),
        "patch_size": list(config.patch_size),
        "normalisation": config.normalisation,
        "body_crop": {
            "ct_threshold_hu": -500.0,
            "margin_mm": 10.0,
            "method": "bounding box of CT > threshold HU (the couch is kept), grown by the margin; the model grid "
            "has the CT's orientation at target spacing and is centred on that box",
        },
        "resampling": "Gaussian anti-aliasing σ = (factor − 1)/2 source voxels when coarsening, then trilinear; "
        "CT outside the scan = −1024 HU, PET outside = 0; the probability goes back to the CT grid trilinearly",
        "inference": {
            "overlap": 0.25,
            "sigma_scale": 0.125,
            "blending": "gaussian",
            "mirror_axes": [],
            "allowed_mirror_axes": [2],
        },
        "postprocessing": {"threshold": 0.5, "max_components": 3, "min_component_ml": 0.5},
        "uncertainty": f"Dropout3d p={config.dropout} in levels ≥ {config.dropout_from}; instance norm has no "
        "running statistics, so module.train() changes only dropout (MC dropout) and eval() is deterministic",
        "architecture": {
            "class": "inference.unet.UNet3d",
            "channels": list(config.channels),
            "dropout": config.dropout,
            "dropout_from": config.dropout_from,
            "norm": "InstanceNorm3d(affine)",
            "activation": "LeakyReLU(0.01)",
        },
        "torch_version": torch.__version__,
    }


# ------------------------------------------------------------------------------------------------ data


def rows_for(seed: int, choices: tuple[int, ...]) -> int:
    return int(choices[np.random.default_rng([seed, 97]).integers(len(choices))])


def training_case(seed: int, rows: int, card: dict) -> tuple[np.ndarray, np.ndarray]:
    """Phantom `seed` on the model grid: (2, z, y, x) float32 input and (z, y, x) uint8 GTV label."""
    case = phantom_case(seed, rows=rows)
    model_input = prepare(case.hu, case.ct_grid, case.suv, case.pet_grid, card)
    label = mask_to_model_grid(case.gtv, case.ct_grid, model_input) >= 0.5
    return model_input.image, label.astype(np.uint8)


def _training_case_job(job):
    return training_case(*job)


def in_workers(function, jobs: list, workers: int) -> list:
    """map() in `workers` spawned processes (fresh interpreters: no forked torch threads), order kept."""
    if workers <= 1:
        return [function(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        return list(pool.map(function, jobs))


def pad_to(image: np.ndarray, label: np.ndarray, patch: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Pad a case up to the patch size (input with each channel's minimum, label with background)."""
    short = [max(0, p - s) for p, s in zip(patch, label.shape, strict=True)]
    if not any(short):
        return image, label
    widths = [(d // 2, d - d // 2) for d in short]
    floors = image.reshape(image.shape[0], -1).min(axis=1)
    image = np.stack([np.pad(c, widths, constant_values=f) for c, f in zip(image, floors, strict=True)])
    return image, np.pad(label, widths)


def sample_patch(image, label, centres, patch, rng: np.random.Generator):
    """One (input, label) patch around a random voxel of `centres` (jittered by a quarter patch), or anywhere
    when `centres` is None or empty."""
    shape = np.array(label.shape)
    size = np.array(patch)
    if centres is not None and len(centres):
        centre = centres[rng.integers(len(centres))] + rng.integers(-(size // 4), size // 4 + 1)
        start = np.clip(centre - size // 2, 0, shape - size)
    else:
        start = np.array([rng.integers(0, n - p + 1) for n, p in zip(shape, size, strict=True)])
    box = tuple(slice(int(s), int(s + p)) for s, p in zip(start, size, strict=True))
    return image[(slice(None), *box)], label[box]


def make_batch(cases, rng: np.random.Generator, config: TrainingConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """A random batch; each patch mirrored left–right with probability 0.5 (the anatomy is nearly symmetric)."""
    images, labels = [], []
    for _ in range(config.batch_size):
        image, label, foreground, hot = cases[rng.integers(len(cases))]
        draw = rng.random()
        centres = foreground if draw < config.foreground_fraction else None
        if config.foreground_fraction <= draw < config.foreground_fraction + config.hot_fraction:
            centres = hot
        x, y = sample_patch(image, label, centres, config.patch_size, rng)
        if rng.random() < 0.5:
            x, y = x[..., ::-1], y[..., ::-1]
        images.append(np.ascontiguousarray(x))
        labels.append(np.ascontiguousarray(y))
    return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(labels)).long()


# ------------------------------------------------------------------------------------------------ training


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy plus soft Dice of the foreground over the whole batch (stable when a patch has no GTV)."""
    ce = F.cross_entropy(logits, target)
    foreground = torch.softmax(logits, dim=1)[:, 1]
    truth = (target == 1).float()
    soft_dice = (2 * (foreground * truth).sum() + 1.0) / (foreground.sum() + truth.sum() + 1.0)
    return ce + (1 - soft_dice)


def learning_rate(step: int, config: TrainingConfig) -> float:
    """Short linear warm-up, then cosine decay to 2 % of the peak."""
    warmup = max(1, config.steps // 50)
    if step < warmup:
        return config.learning_rate * (step + 1) / warmup
    progress = (step - warmup) / max(1, config.steps - warmup)
    return config.learning_rate * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


def seed_everything(seed: int, threads: int) -> None:
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def load_cases(config: TrainingConfig, card: dict, log: Callable[[str], None] = print) -> list:
    """Generate the training phantoms (in worker processes) as (image, label, GTV voxels, hot non-GTV voxels)."""
    started = time.monotonic()
    jobs = [(seed, rows_for(seed, config.training_rows), card) for seed in config.training_seeds]
    rule = card["normalisation"]["PET_SUV"]
    hot_level = (config.hot_suv - rule.get("subtract", 0.0)) / rule["divide"]
    cases = []
    for image, label in in_workers(_training_case_job, jobs, config.workers):
        image, label = pad_to(image, label, config.patch_size)
        cases.append((image, label, np.argwhere(label), np.argwhere((image[1] > hot_level) & (label == 0))))
    log(f"generated {len(cases)} training phantoms in {time.monotonic() - started:.0f} s")
    return cases


def train(config: TrainingConfig, card: dict, log: Callable[[str], None] = print) -> tuple[UNet3d, dict]:
    """Train a UNet3d on the config's phantom seeds; returns the eager model (eval mode) and a summary."""
    cases = load_cases(config, card, log)
    seed_everything(config.seed, config.threads)
    rng = np.random.default_rng(config.seed)
    model = UNet3d(2, 2, config.channels, config.dropout, config.dropout_from)
    model = model.to(memory_format=torch.channels_last_3d)  # about twice as fast for Conv3d on the CPU
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    model.train()
    started, recent = time.monotonic(), []
    for step in range(config.steps):
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(step, config)
        x, y = make_batch(cases, rng, config)
        loss = dice_ce_loss(model(x.to(memory_format=torch.channels_last_3d)), y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        recent.append(float(loss.detach()))
        if (step + 1) % 50 == 0 or step + 1 == config.steps:
            log(f"step {step + 1}/{config.steps}  loss {np.mean(recent):.4f}  {time.monotonic() - started:.0f} s")
            recent = []
    model = model.to(memory_format=torch.contiguous_format).eval()
    return model, {"steps": config.steps, "train_seconds": round(time.monotonic() - started, 1)}


# ------------------------------------------------------------------------------------------------ evaluation


def evaluate(
    model: torch.nn.Module, card: dict, seeds, rows: int = 512, workers: int = 2, log: Callable[[str], None] = print
) -> list[dict]:
    """Dice of the full inference path (segment) against the true GTV on each seed's CT grid."""
    results = []
    jobs = [(seed, rows) for seed in seeds]
    for case in _cases(jobs, workers):
        started = time.monotonic()
        result: Segmentation = segment(model, card, case.hu, case.ct_grid, case.suv, case.pet_grid, device="cpu")
        voxel_ml = float(np.prod(case.ct_grid.spacing)) / 1000
        row = {
            "seed": case.seed, "dice": round(dice(result.mask, case.gtv), 4),
            "true_ml": round(float(case.gtv.sum()) * voxel_ml, 2),
            "predicted_ml": round(float(result.mask.sum()) * voxel_ml, 2),
            "seconds": round(time.monotonic() - started, 1),
        }  # fmt: skip
        log(f"seed {case.seed}: Dice {row['dice']:.3f} (true {row['true_ml']} ml, predicted {row['predicted_ml']} ml)")
        results.append(row)
    return results


def _phantom_job(job):
    return phantom_case(*job)


def _cases(jobs, workers: int):
    """Phantoms generated `workers` at a time, yielded in order, without holding all of them in memory."""
    for first in range(0, len(jobs), max(1, workers)):
        yield from in_workers(_phantom_job, jobs[first : first + max(1, workers)], workers)


def summarise(results: list[dict], seeds, rows: int) -> dict:
    scores = [r["dice"] for r in results]
    return {
        "seeds": list(seeds), "ct_rows": rows, "metric": "Dice vs true GTV on the CT grid, full inference path",
        "mean_dice": round(float(np.mean(scores)), 4), "min_dice": round(float(np.min(scores)), 4),
        "per_seed": results,
    }  # fmt: skip


# ------------------------------------------------------------------------------------------------ export


def export(model: torch.nn.Module, card: dict, out_dir: Path, patch_size) -> Path:
    """TorchScript-save the eval-mode model after checking the script matches eager; write the card with its sha256."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    with quiet_torchscript():
        scripted = torch.jit.script(model)
    generator = torch.Generator().manual_seed(1)
    probe = torch.randn((1, 2, *patch_size), generator=generator)
    weights = out_dir / card["file"]
    scripted.save(str(weights))
    with quiet_torchscript():
        reloaded = torch.jit.load(str(weights)).eval()
    with torch.no_grad():
        eager = model(probe)
        difference = max(float((scripted(probe) - eager).abs().max()), float((reloaded(probe) - eager).abs().max()))
    if difference > 1e-4:
        raise RuntimeError(f"TorchScript output differs from the eager model by {difference:g}.")
    card = {**card, "weights_sha256": sha256_of(weights), "weights_bytes": weights.stat().st_size}
    card["export_check"] = {"torchscript_vs_eager_max_abs_logit_difference": difference}
    (out_dir / CARD_NAME).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    return weights


def config_summary(config: TrainingConfig) -> dict:
    summary = asdict(config)
    summary.pop("normalisation")
    return {k: list(v) if isinstance(v, tuple) else v for k, v in summary.items()}


def train_and_export(config: TrainingConfig, out_dir: Path, log: Callable[[str], None] = print) -> dict:
    """The whole recipe: train, evaluate on held-out seeds through the inference path, export; returns the card."""
    overlap = set(config.training_seeds) & set(config.validation_seeds)
    if overlap:
        raise ValueError(f"Validation seeds {sorted(overlap)} are also training seeds.")
    started = time.monotonic()
    card = base_card(config)
    model, info = train(config, card, log)
    log(f"validating on {len(config.validation_seeds)} held-out phantoms ({config.validation_rows}² CT) …")
    results = evaluate(model, card, config.validation_seeds, config.validation_rows, config.workers, log)
    card["training"] = {
        "data": "imaging.phantom seeds (in memory), CT matrix drawn per seed from training_rows, through "
        "inference.preprocess.prepare; label = true GTV covering ≥ 50 % of a model voxel",
        "sampling": f"{config.foreground_fraction:.0%} of patches on the GTV, {config.hot_fraction:.0%} on non-GTV "
        f"SUV > {config.hot_suv:g}, the rest anywhere in the body box",
        "loss": "cross-entropy + batch soft Dice (foreground)",
        "optimiser": "Adam, warm-up then cosine decay",
        "augmentation": "left–right mirroring",
        "deterministic": f"torch.use_deterministic_algorithms(True), {config.threads} threads, numpy default_rng(seed)",
        "config": config_summary(config),
        **info,
        "total_seconds": round(time.monotonic() - started, 1),
    }
    card["validation"] = summarise(results, config.validation_seeds, config.validation_rows)
    weights = export(model, card, out_dir, config.patch_size)
    card = json.loads((Path(out_dir) / CARD_NAME).read_text())
    log(f"wrote {weights} ({card['weights_bytes'] / 1e6:.2f} MB, sha256 {card['weights_sha256'][:12]}…)")
    return card
