"""Build (once, then cache) a real nnU-Net v2 trained model folder from a few phantom PET/CT cases.

The nnU-Net backend must be tested against what nnU-Net itself writes, not a hand-made imitation, so this runs
nnunetv2's own `nnUNetv2_plan_and_preprocess` and `nnUNetv2_train` on a handful of small phantoms and keeps the
resulting `<Trainer>__<Plans>__<configuration>` folder. The model is trained for one epoch on CPU: tests and
demo only. The cache folder is keyed by the recipe and the nnunetv2 / torch versions, written under a temporary
name and renamed when complete, so a killed build leaves nothing that looks usable. No Django here.
"""

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import numpy as np

from imaging.dicom.volume import resample
from imaging.geometry import Grid

from .phantom_cases import phantom_case
from .preprocess import DEFAULT_CROP, body_box, sub_grid

RECIPE = {
    "dataset_id": 517,
    "dataset_name": "Dataset517_ContourTrialPhantom",
    "seeds": [11, 12, 13, 14, 15, 16],
    "rows": 96,  # 5.2 mm pixels
    "slices": 24,  # centred on the tumour
    "crop": DEFAULT_CROP,
    "configuration": "3d_fullres",
    "plans": "nnUNetPlans",
    "trainer": "nnUNetTrainer_1epoch",
    "epochs": 1,
    "folds": [0, 1],
    # Planner options keeping the build to minutes on 2 CPU cores: coarser voxels than the CT's (z, y, x) make the
    # final validation (8 mirrored passes per tile) short, and the memory target gives a 3-stage U-Net (32-128
    # features) on 8 x 20 x 40 voxel patches.
    "target_spacing_mm": [3.5, 6.5, 6.5],
    "gpu_memory_target_gb": 0.02,
    "validation_cases": [0, 1],  # fold k validates on case k only: a short final validation
}
TRAINED_SEEDS = tuple(RECIPE["seeds"])
CHANNEL_NAMES = {"0": "CT", "1": "PET"}
THREADS = 2
PROJECT_ROOT = Path(__file__).resolve().parents[1]  # the training subprocess imports this module from here
KEEP = ("dataset.json", "plans.json")


def recipe_key() -> str:
    """Short hash of the recipe and the versions that shape the trained files: a change means a rebuild."""
    text = json.dumps({"recipe": RECIPE, "nnunetv2": version("nnunetv2"), "torch": version("torch")}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def default_cache_dir() -> Path:
    return Path(os.environ.get("CONTOURTRIAL_CACHE_DIR") or Path.home() / ".cache" / "contourtrial")


def model_folder_name() -> str:
    return f"{RECIPE['trainer']}__{RECIPE['plans']}__{RECIPE['configuration']}"


def ensure_trained_model(cache_dir: Path | None = None) -> Path:
    """The trained model folder (dataset.json, plans.json, fold_k/checkpoint_final.pth), built if not cached."""
    root = Path(cache_dir or default_cache_dir())
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"nnunet-{recipe_key()}"
    if (final / "complete").exists():
        return final / model_folder_name()
    with _locked(root / f"nnunet-{recipe_key()}.lock"):  # a second process waits, then finds the build
        if not (final / "complete").exists():
            staging = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
            try:
                _build(staging)
                if final.exists():  # left by an interrupted rename; it has no 'complete' marker
                    shutil.rmtree(final)
                staging.rename(final)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return final / model_folder_name()


@contextmanager
def _locked(path: Path):
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(staging: Path) -> None:
    """Write the raw dataset, run nnU-Net's commands, keep the model folder and a model card in `staging`."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nnunet-build-") as work:
        work = Path(work)
        env = _nnunet_env(work)
        write_raw_dataset(Path(env["nnUNet_raw"]) / RECIPE["dataset_name"])
        plan, *train = commands = _commands()
        _run(plan, {**env, "nnUNet_n_proc_DA": str(THREADS)}, work / "log.txt")  # the planner sets threads from it
        for command in train:
            _run(command, env, work / "log.txt")
        trained = Path(env["nnUNet_results"]) / RECIPE["dataset_name"] / model_folder_name()
        target = staging / model_folder_name()
        _copy_model(trained, target)
        validation = _validation(trained)
        shutil.copy2(work / "log.txt", staging / "build_log.txt")
    card = {**_model_card(commands, time.perf_counter() - started), "validation": validation}
    (target / "model_card.json").write_text(json.dumps(card, indent=2))
    (staging / "complete").write_text(json.dumps({"key": recipe_key(), "build_seconds": card["build_seconds"]}))


def _nnunet_env(work: Path) -> dict:
    """nnU-Net's folders in the build directory, two threads, data augmentation in-process."""
    env = dict(os.environ)
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (work / name).mkdir()
        env[name] = str(work / name)
    env.update(
        nnUNet_n_proc_DA="0",
        nnUNet_def_n_proc=str(THREADS),
        OMP_NUM_THREADS=str(THREADS),
        MKL_NUM_THREADS=str(THREADS),
        OMP_WAIT_POLICY="PASSIVE",  # idle OpenMP threads sleep: 2-4x faster when other jobs share the cores
        nnUNet_compile="false",
    )
    return env


def _commands() -> list[list[str]]:
    """nnunetv2's own entry points from this interpreter's environment."""
    bin_dir = Path(sys.executable).parent
    dataset = str(RECIPE["dataset_id"])
    plan = [
        str(bin_dir / "nnUNetv2_plan_and_preprocess"), "-d", dataset, "-c", RECIPE["configuration"],
        "-np", "1", "-npfp", "1", "--verify_dataset_integrity", "--no_pbar",
        "-gpu_memory_target", str(RECIPE["gpu_memory_target_gb"]), "-overwrite_plans_name", RECIPE["plans"],
        "-overwrite_target_spacing", *(str(v) for v in RECIPE["target_spacing_mm"]),
    ]  # fmt: skip
    train = [
        [sys.executable, "-m", "inference.nnunet_model", "nnUNetv2_train", dataset, RECIPE["configuration"],
         str(fold), "-tr", RECIPE["trainer"], "-p", RECIPE["plans"], "-device", "cpu"]
        for fold in RECIPE["folds"]
    ]  # fmt: skip
    return [plan, *train]


def train_entry(argv: list[str]) -> None:
    """nnUNetv2_train itself (nnunetv2's run_training_entry), with the trainer lookup kept off torchvision."""
    from nnunetv2.run.run_training import run_training_entry

    from .backends.nnunet import trainer_lookup

    trainer = argv[argv.index("-tr") + 1] if "-tr" in argv else "nnUNetTrainer"
    sys.argv = ["nnUNetv2_train", *argv]
    with trainer_lookup(trainer):
        run_training_entry()


def write_splits(path: Path) -> None:
    """nnU-Net's own splits file: one validation case per fold, the others train it, so the folds differ."""
    names = [f"case_{index:03d}" for index in range(len(RECIPE["seeds"]))]
    splits = [
        {"train": [n for n in names if n != names[held_out]], "val": [names[held_out]]}
        for held_out in RECIPE["validation_cases"]
    ]
    path.write_text(json.dumps(splits, indent=2))


def _run(command: list[str], env: dict, log: Path) -> None:
    """Run one nnU-Net command; on failure raise with the tail of its output."""
    with open(log, "a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        result = subprocess.run(command, env=env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode:
        tail = log.read_text()[-4000:]
        raise RuntimeError(f"{_shown(command)} failed (exit {result.returncode}):\n{tail}")


def _copy_model(trained: Path, target: Path) -> None:
    """dataset.json, plans.json and each fold's final checkpoint: what nnUNetPredictor needs, nothing else."""
    target.mkdir(parents=True)
    for name in KEEP:
        shutil.copy2(trained / name, target / name)
    for fold in RECIPE["folds"]:
        (target / f"fold_{fold}").mkdir()
        shutil.copy2(
            trained / f"fold_{fold}" / "checkpoint_final.pth", target / f"fold_{fold}" / "checkpoint_final.pth"
        )


def _validation(trained: Path) -> dict:
    """Each fold's Dice on its held-out phantom, from nnU-Net's own final validation (validation/summary.json)."""
    dice = {}
    for fold, case in zip(RECIPE["folds"], RECIPE["validation_cases"], strict=True):
        summary = json.loads((trained / f"fold_{fold}" / "validation" / "summary.json").read_text())
        dice[f"fold_{fold}"] = {"case": f"case_{case:03d}", "dice": round(summary["foreground_mean"]["Dice"], 3)}
    return {"source": "nnU-Net's final validation of each fold (one held-out phantom, 1 epoch)", "dice": dice}


def _model_card(commands: list[list[str]], seconds: float) -> dict:
    return {
        "name": "contourtrial-phantom-nnunetv2",
        "intended_use": "tests and demo only — NOT FOR CLINICAL USE",
        "description": "nnU-Net v2 trained briefly on synthetic phantom PET/CT (imaging.phantom); meaningless on "
        "patient images.",
        "trained_by": [_shown(command) for command in commands],
        "training_note": "nnUNetv2_train ran as nnunetv2's run_training_entry inside `python -m "
        "inference.nnunet_model`, which only hides nnU-Net's Primus trainer module from the trainer lookup (it "
        "imports timm → torchvision, broken in this environment). splits_final.json: fold k validates on case k.",
        "training_cases": {
            "seeds": RECIPE["seeds"],
            "rows": RECIPE["rows"],
            "slices": RECIPE["slices"],
            "crop": "CT body box (> -500 HU, 10 mm margin); PET resampled onto it trilinearly",
        },
        "epochs": RECIPE["epochs"],
        "recipe_key": recipe_key(),
        "nnunetv2_version": version("nnunetv2"),
        "torch_version": version("torch"),
        "build_seconds": round(seconds, 1),
    }


def _shown(command: list[str]) -> str:
    """The nnU-Net command as one would type it."""
    if command[1:3] == ["-m", "inference.nnunet_model"]:
        command = command[3:]
    return " ".join([Path(command[0]).name, *command[1:]])


def write_raw_dataset(folder: Path) -> None:
    """imagesTr (CT _0000, PET _0001), labelsTr and dataset.json in nnU-Net's raw layout."""
    import SimpleITK as sitk  # nnU-Net's own default image reader writes and reads these files

    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    for index, seed in enumerate(RECIPE["seeds"]):
        hu, suv, gtv, grid = training_case(seed)
        name = f"case_{index:03d}"
        for array, path in (
            (hu, folder / "imagesTr" / f"{name}_0000.nii.gz"),
            (suv, folder / "imagesTr" / f"{name}_0001.nii.gz"),
            (gtv.astype(np.uint8), folder / "labelsTr" / f"{name}.nii.gz"),
        ):
            sitk.WriteImage(as_sitk_image(array, grid), str(path))
    dataset = {
        "channel_names": CHANNEL_NAMES,
        "labels": {"background": 0, "GTV": 1},
        "numTraining": len(RECIPE["seeds"]),
        "file_ending": ".nii.gz",
        "name": RECIPE["dataset_name"],
        "description": "ContourTrial synthetic phantom PET/CT; tests and demo only.",
    }
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))
    write_splits(folder / "splits_final.json")  # the planner copies it next to the preprocessed data


def training_case(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, Grid]:
    """(HU, SUV, GTV, grid) of one phantom cropped to the body box, PET resampled onto the CT, as at inference."""
    case = phantom_case(seed, rows=RECIPE["rows"], slices=RECIPE["slices"])
    crop = RECIPE["crop"]
    box = body_box(case.hu, case.ct_grid.spacing, crop["ct_threshold_hu"], crop["margin_mm"])
    grid = sub_grid(case.ct_grid, box)
    suv = resample(case.suv, case.pet_grid, grid, order=1, fill=0.0)
    return case.hu[box].astype(np.float32), suv.astype(np.float32), case.gtv[box], grid


def as_sitk_image(array: np.ndarray, grid: Grid):
    """A (z, y, x) array on `grid` as a SimpleITK image: spacing (x, y, z), LPS origin and direction cosines."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    columns = grid.affine[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)  # i, j, k = x, y, z
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(v) for v in grid.affine[:3, 3]))
    image.SetDirection(tuple(float(v) for v in (columns / spacing).ravel()))
    return image


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["nnUNetv2_train"]:  # the build's own subprocess
        train_entry(argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="cache folder (default: $CONTOURTRIAL_CACHE_DIR)")
    print(ensure_trained_model(parser.parse_args(argv).cache))


if __name__ == "__main__":
    main()
