"""nnU-Net v2 trained model folders (`<Trainer>__<Plans>__<configuration>`), the format hospitals most often bring.

Preprocessing, sliding window and resampling back are nnunetv2's own (nnUNetPredictor and its export code), so
the model sees exactly what it saw in training. The folds run one by one instead of nnU-Net's averaged logits:
their disagreement is the uncertainty. The CT is first cropped to the body box and the PET resampled onto that
crop, so nnU-Net works on the CT's own voxels and its probabilities land on them. No Django here.
"""

import importlib.util
import json
import re
import sys
import time
import types
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from imaging.dicom.volume import resample

from ..postprocess import DEFAULT_POSTPROCESSING, binarise
from ..preprocess import DEFAULT_CROP, body_box, sub_grid
from ..sliding_window import cpu_threads
from ..uncertainty import binary_entropy, case_score
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

CHECKPOINT = "checkpoint_final.pth"
CARD_NAME = "model_card.json"
CHANNELS = {"CT": "CT", "PET": "PET_SUV", "PT": "PET_SUV"}  # nnU-Net channel name → ContourTrial channel
GTV_LABELS = ("GTV", "GTVp", "GTVn")
DEFAULT_INFERENCE = {"mirroring": False, "tile_step_size": 0.5}  # mirroring costs 8× the forward passes on CPU
PRIMUS_TRAINERS = "nnunetv2.training.nnUNetTrainer.primus.primus_trainers"


@contextmanager
def trainer_lookup(trainer_name: str):
    """Let nnU-Net find `trainer_name` without importing torchvision where torchvision is broken.

    nnU-Net finds a checkpoint's trainer class by importing every module under nnunetv2.training.nnUNetTrainer
    until one defines it. The Primus module comes first and imports timm, hence torchvision, which crashes when
    torchvision does not match torch ("operator torchvision::nms does not exist"). While looking up a trainer that
    module does not define, an empty placeholder stands in for it; nothing else changes."""
    spec = importlib.util.find_spec(PRIMUS_TRAINERS)
    if spec is None or spec.origin is None or PRIMUS_TRAINERS in sys.modules:
        yield
        return
    source = Path(spec.origin).read_text(encoding="utf-8")
    if trainer_name and re.search(rf"^class {re.escape(trainer_name)}\b", source, flags=re.MULTILINE):
        yield
        return
    placeholder = types.ModuleType(PRIMUS_TRAINERS)
    sys.modules[PRIMUS_TRAINERS] = placeholder
    try:
        yield
    finally:
        if sys.modules.get(PRIMUS_TRAINERS) is placeholder:
            del sys.modules[PRIMUS_TRAINERS]


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: not readable JSON ({exc}).") from exc
    if not isinstance(value, dict):
        raise ModelFileError(f"{path}: must hold a JSON object.")
    return value


def _refuse_v1(folder: Path) -> None:
    """nnU-Net v1 results (fold_k/model_final_checkpoint.model + .pkl, plans.pkl) cannot be run by v2."""
    v1 = [p for pattern in ("*.model", "*.model.pkl", "plans.pkl") for p in folder.glob(f"**/{pattern}")]
    if v1 and not (folder / "plans.json").is_file():
        raise ModelFileError(
            f"{folder}: this is an nnU-Net v1 model folder ({v1[0].relative_to(folder)}); nnU-Net v1 is not "
            "supported. Retrain with nnU-Net v2 or convert the dataset with nnUNetv2_convert_old_nnUNet_dataset."
        )


def _folds(folder: Path) -> list[int]:
    """Fold numbers k with fold_k/checkpoint_final.pth; names a fold that only has other checkpoints."""
    folds, incomplete = [], []
    for path in sorted(folder.glob("fold_*")):
        number = path.name.removeprefix("fold_")
        if not (path.is_dir() and number.isdigit()):
            continue
        (folds if (path / CHECKPOINT).is_file() else incomplete).append(int(number))
    if incomplete:
        names = ", ".join(f"fold_{k}/{CHECKPOINT}" for k in incomplete)
        raise ModelFileError(f"{folder}: {names} missing (training unfinished, or only checkpoint_best.pth copied).")
    if not folds:
        raise ModelFileError(f"{folder}: no fold_k/{CHECKPOINT}; not a trained nnU-Net v2 model folder.")
    return sorted(folds)


def _input_channels(dataset: dict, where: Path) -> list[str]:
    """dataset.json channel_names in channel order, as ContourTrial channels."""
    names = dataset.get("channel_names") or dataset.get("modality")
    if not isinstance(names, dict) or not names:
        raise ModelFileError(f"{where}: dataset.json has no channel_names.")
    if not all(str(key).isdigit() for key in names):
        raise ModelFileError(f"{where}: dataset.json channel_names keys {list(names)} must be channel numbers.")
    channels = []
    for key in sorted(names, key=int):
        name = str(names[key])
        if name.upper() not in CHANNELS:
            raise ModelFileError(f"{where}: input channel {key} is {name!r}; ContourTrial supplies CT and PET only.")
        channels.append(CHANNELS[name.upper()])
    if "CT" not in channels or len(set(channels)) != len(channels):
        raise ModelFileError(f"{where}: input channels {list(names.values())} must be CT, optionally with PET.")
    return channels


def _labels(dataset: dict, where: Path) -> list[str]:
    """Label names by value, background first; every other label must be a GTV (their union is the GTV)."""
    labels = dataset.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise ModelFileError(f"{where}: dataset.json has no labels.")
    if any(not isinstance(value, int) for value in labels.values()):
        raise ModelFileError(f"{where}: region-based labels {labels} are not supported; one value per label.")
    names = sorted(labels, key=labels.get)
    if labels[names[0]] != 0 or len(names) < 2:
        raise ModelFileError(f"{where}: labels {labels} need background 0 and a GTV label.")
    others = [name for name in names[1:] if name not in GTV_LABELS]
    if others:
        raise ModelFileError(f"{where}: labels {others} are not GTV labels ({', '.join(GTV_LABELS)}).")
    return names


def _numpy_data_globals() -> list:
    """Besides tensors, nnU-Net checkpoints pickle numpy scalars (the training log): data types, not code, so
    allowed in torch's weights-only unpickler; registration never runs code from an unverified checkpoint."""
    core = getattr(np, "_core", None) or np.core
    dtypes = [getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith("DType")]
    return [core.multiarray.scalar, np.dtype, *dtypes]


def _training_setup(folder: Path, fold: int) -> tuple[str, str, str]:
    """(trainer, plans, configuration) the checkpoints were trained with: the checkpoint's own record when it
    reads without unpickling code, else the folder name `Trainer__Plans__configuration`."""
    parts = folder.name.split("__")
    named = tuple(parts) if len(parts) == 3 and all(parts) else None
    try:
        with torch.serialization.safe_globals(_numpy_data_globals()):
            checkpoint = torch.load(folder / f"fold_{fold}" / CHECKPOINT, map_location="cpu", weights_only=True)
        recorded = (checkpoint["trainer_name"], checkpoint["init_args"]["plans"]["plans_name"],
                    checkpoint["init_args"]["configuration"])  # fmt: skip
    except Exception:  # unreadable without running pickled code, or laid out otherwise: use the folder name
        recorded = None
    if recorded is None and named is None:
        raise ModelFileError(
            f"{folder}: cannot tell the trainer and configuration (neither the checkpoint nor a folder name "
            "Trainer__Plans__configuration says)."
        )
    return recorded or named


def _in_input_order(values, plans: dict) -> list:
    """A per-axis plans value (given in nnU-Net's transposed order) in the input array's (z, y, x) order."""
    backward = plans.get("transpose_backward", [0, 1, 2])
    return [values[axis] for axis in backward]


def _merge_card(card: dict, extra: dict) -> dict:
    """A model_card.json adds to the card (intended use, validation, …) and may tune the inference, crop and
    post-processing settings; what the model files themselves say cannot be overridden."""
    merged = {**extra, **card}
    for key in ("inference", "postprocessing", "body_crop"):
        if isinstance(extra.get(key), dict):
            merged[key] = {**card[key], **extra[key]}
    return merged


class ForwardTimer:
    """Forward pre/post hooks on the network adding up the time inside its forward passes (CUDA synchronised)."""

    def __init__(self, network: torch.nn.Module, device: torch.device):
        self.seconds = 0.0
        self.calls = 0
        self._sync = device.type == "cuda"
        self._began = 0.0
        self._handles = [network.register_forward_pre_hook(self._start), network.register_forward_hook(self._stop)]

    def _start(self, module, args) -> None:
        if self._sync:
            torch.cuda.synchronize()
        self._began = time.perf_counter()

    def _stop(self, module, args, output) -> None:
        if self._sync:
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - self._began
        self.calls += 1

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


class NnUNetBackend(Backend):
    """An nnU-Net v2 trained model folder run with nnunetv2's own predictor, one fold at a time."""

    kind = "nnunetv2"

    def __init__(self, predictor, card: dict, folder: Path, device: torch.device):
        self.predictor = predictor
        self.card = card
        self.folder = folder
        self.device = device

    @classmethod
    def describe(cls, folder: Path) -> tuple[dict, list[WeightFile]]:
        """(card, files) of `<Trainer>__<Plans>__<configuration>/` holding dataset.json, plans.json and
        fold_k/checkpoint_final.pth; a model_card.json there adds intended use, validation etc."""
        folder = Path(folder)
        if not folder.is_dir():
            raise ModelFileError(f"{folder}: no such model folder.")
        _refuse_v1(folder)
        missing = [name for name in ("dataset.json", "plans.json") if not (folder / name).is_file()]
        if missing:
            hint = [p.name for p in folder.glob("*__*__*") if (p / "plans.json").is_file()]
            raise ModelFileError(
                f"{folder}: {' and '.join(missing)} missing; give the nnU-Net trained model folder"
                + (f" (e.g. {folder / hint[0]})." if hint else " (<Trainer>__<Plans>__<configuration>).")
            )
        dataset, plans = _read_json(folder / "dataset.json"), _read_json(folder / "plans.json")
        folds = _folds(folder)
        trainer, plans_name, configuration = _training_setup(folder, folds[0])
        settings = plans.get("configurations", {}).get(configuration)
        if not isinstance(settings, dict) or "patch_size" not in settings or "spacing" not in settings:
            raise ModelFileError(f"{folder}: plans.json has no configuration {configuration!r} with spacing.")
        channels = _input_channels(dataset, folder)
        schemes = settings.get("normalization_schemes", [])
        card = {
            "format": "nnunetv2",
            "input_channels": channels,
            "labels": _labels(dataset, folder),
            "axis_order": "z, y, x (slice, row, column) of the CT; nnU-Net's transposed order is undone",
            "target_spacing_mm": [float(v) for v in _in_input_order(settings["spacing"], plans)],
            "patch_size": [int(v) for v in _in_input_order(settings["patch_size"], plans)],
            "normalisation": dict(zip(channels, schemes, strict=False)),
            "folds": folds,
            "trainer": trainer,
            "plans": plans_name,
            "configuration": configuration,
            "inference": dict(DEFAULT_INFERENCE),
            "postprocessing": dict(DEFAULT_POSTPROCESSING),
            "body_crop": dict(DEFAULT_CROP),
        }
        if (folder / CARD_NAME).is_file():
            card = _merge_card(card, _read_json(folder / CARD_NAME))
        names = ["dataset.json", "plans.json", *(f"fold_{k}/{CHECKPOINT}" for k in folds)]
        files = [WeightFile(path=n, sha256=sha256_of(folder / n), size=(folder / n).stat().st_size) for n in names]
        return card, files

    @classmethod
    def load(
        cls, folder: Path, card: dict, files: list[WeightFile], device: str | torch.device | None = None
    ) -> "NnUNetBackend":
        """Check every file's sha256 against `files`, then build nnUNetPredictor from the folder with the card's
        folds (default device: CUDA when available)."""
        folder = Path(folder)
        for weight in files:
            path = weight_path(folder, weight.path)
            if not path.is_file():
                raise ModelFileError(f"{weight.path} is missing from {folder}.")
            if sha256_of(path) != weight.sha256:
                raise ModelFileError(
                    f"{weight.path}: sha256 differs from the registered {weight.sha256[:12]}…; the file was changed."
                )
        folds = [int(k) for k in card.get("folds", [])]
        needed = {"dataset.json", "plans.json", *(f"fold_{k}/{CHECKPOINT}" for k in folds)}
        unverified = sorted(needed - {weight.path for weight in files})
        if not folds or unverified:
            raise ModelFileError(f"{folder}: {', '.join(unverified) or 'no folds'} not among the verified files.")
        device = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
        if device.type == "cpu":
            torch.set_num_threads(cpu_threads())
        return cls(_predictor(folder, card, folds, device), card, folder, device)

    def propose(self, images: CaseImages, *, progress: Progress = no_progress) -> Proposal:
        """Body box → nnU-Net preprocessing once → each fold's probabilities on the box → mean, entropy, mask."""
        progress("preprocessing", 0.0)
        crop = {**DEFAULT_CROP, **self.card.get("body_crop", {})}
        box = body_box(images.hu, images.ct_grid.spacing, crop["ct_threshold_hu"], crop["margin_mm"])
        data, properties = self._preprocess(self._input(images, box), images.ct_grid.spacing)
        progress("preprocessing", 1.0)
        timer = ForwardTimer(self.predictor.network, self.device)
        try:
            mean, folds = self._mean_fold_probability(data, properties, progress)
        finally:
            timer.remove()
        progress("postprocessing", 0.0)
        spacing = images.ct_grid.spacing
        probability = np.zeros(images.ct_grid.shape, dtype=np.float32)
        uncertainty = np.zeros(images.ct_grid.shape, dtype=np.float32)
        mask = np.zeros(images.ct_grid.shape, dtype=bool)
        probability[box] = np.clip(mean, 0.0, 1.0)
        uncertainty[box] = binary_entropy(probability[box])  # = predictive_entropy of the folds: H(their mean)
        mask[box] = binarise(probability[box], spacing, self.card.get("postprocessing"))
        mirrors = self._mirrors()
        proposal = Proposal(
            probability=probability, mask=mask, uncertainty=uncertainty, case_uncertainty=case_score(uncertainty, mask),
            members=folds * mirrors, member_kind="folds+mirroring" if mirrors > 1 else "folds",
            forward_seconds=timer.seconds, device=device_name(self.device),
        )  # fmt: skip
        progress("postprocessing", 1.0)
        return proposal

    def _input(self, images: CaseImages, box) -> np.ndarray:
        """(channels, z, y, x) float32 on the CT box in the card's channel order; PET resampled onto the box."""
        if np.ndim(images.hu) != 3 or tuple(np.shape(images.hu)) != tuple(images.ct_grid.shape):
            raise ValueError(f"The CT array {np.shape(images.hu)} does not match its grid {images.ct_grid.shape}.")
        channels = {"CT": np.asarray(images.hu[box], dtype=np.float32)}
        if "PET_SUV" in self.card["input_channels"]:
            if images.suv is None or images.pet_grid is None:
                raise ValueError(
                    f"{self.card.get('name', 'This nnU-Net model')} needs CT and PET (input channels "
                    f"{', '.join(self.card['input_channels'])}); the case has no PET series (PET_SUV missing)."
                )
            if tuple(np.shape(images.suv)) != tuple(images.pet_grid.shape):
                shape = np.shape(images.suv)
                raise ValueError(f"The PET array {shape} does not match its grid {images.pet_grid.shape}.")
            target = sub_grid(images.ct_grid, box)
            channels["PET_SUV"] = resample(images.suv, images.pet_grid, target, order=1, fill=0.0).astype(np.float32)
        return np.stack([channels[name] for name in self.card["input_channels"]])

    def _preprocess(self, image: np.ndarray, spacing) -> tuple[torch.Tensor, dict]:
        """nnU-Net's own preprocessing (transpose, crop, normalise, resample to the plans' spacing), done once."""
        predictor = self.predictor
        preprocessor = predictor.configuration_manager.preprocessor_class(verbose=False)
        data, _, properties = preprocessor.run_case_npy(
            image, None, {"spacing": [float(s) for s in spacing]}, predictor.plans_manager,
            predictor.configuration_manager, predictor.dataset_json,
        )  # fmt: skip
        return torch.from_numpy(np.ascontiguousarray(data)), properties

    def _mean_fold_probability(self, data: torch.Tensor, properties: dict, progress: Progress) -> tuple:
        """(mean GTV probability over the folds on the CT box (z, y, x), folds). Each fold runs on its own
        (nnU-Net's sliding window, then its inference nonlinearity, softmax) and the fold probabilities are
        averaged on nnU-Net's grid. Only the mean goes back to the input voxels, once, through nnU-Net's own
        export, passed as log-probabilities: the export resamples "logits" and applies the softmax, and the
        softmax of log(mean) is the mean itself, so each fold costs its forward passes and nothing more.
        GTV = all non-background classes."""
        from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

        predictor = self.predictor
        network = getattr(predictor.network, "_orig_mod", predictor.network)  # torch.compile wraps it
        parameters = predictor.list_of_parameters
        total = None
        progress("inference", 0.0)
        for index, weights in enumerate(parameters):
            network.load_state_dict(weights)
            logits = predictor.predict_sliding_window_return_logits(data).to("cpu")
            probabilities = predictor.label_manager.apply_inference_nonlin(logits.float())
            total = probabilities if total is None else total + probabilities
            progress("inference", (index + 1) / len(parameters))
        log_mean = torch.log((total / len(parameters)).clamp_min(1e-12))
        _, probabilities = convert_predicted_logits_to_segmentation_with_correct_shape(
            log_mean, predictor.plans_manager, predictor.configuration_manager, predictor.label_manager,
            properties, return_probabilities=True, num_threads_torch=cpu_threads(),
        )  # fmt: skip
        return np.asarray(probabilities[1:], dtype=np.float32).sum(axis=0), len(parameters)

    def _mirrors(self) -> int:
        """Forward passes nnU-Net averages per tile: 2^axes with mirroring, else 1."""
        axes = self.predictor.allowed_mirroring_axes
        return 2 ** len(axes) if self.predictor.use_mirroring and axes else 1


def _predictor(folder: Path, card: dict, folds: list[int], device: torch.device):
    """nnUNetPredictor initialised from the (verified) folder by nnunetv2 itself."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    settings = {**DEFAULT_INFERENCE, **card.get("inference", {})}
    predictor = nnUNetPredictor(
        tile_step_size=float(settings["tile_step_size"]), use_gaussian=True, use_mirroring=bool(settings["mirroring"]),
        perform_everything_on_device=device.type == "cuda", device=device, verbose=False, allow_tqdm=False,
    )  # fmt: skip
    try:
        with trainer_lookup(card.get("trainer", "")):
            predictor.initialize_from_trained_model_folder(
                str(folder), use_folds=tuple(folds), checkpoint_name=CHECKPOINT
            )
    except (RuntimeError, KeyError, ValueError, FileNotFoundError) as exc:
        raise ModelFileError(f"{folder}: nnU-Net could not load the model ({exc}).") from exc
    return predictor
