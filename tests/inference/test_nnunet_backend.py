"""The nnU-Net v2 backend against a real trained model folder made by nnunetv2's own commands (cached).

The model is trained for one epoch on six phantoms, so these tests check geometry, integrity and that the fold
ensemble really yields an uncertainty, not segmentation quality.
"""

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from inference.backends.base import CaseImages, ModelFileError
from inference.backends.nnunet import PRIMUS_TRAINERS, NnUNetBackend
from inference.nnunet_model import RECIPE, TRAINED_SEEDS, ensure_trained_model
from inference.phantom_cases import phantom_case
from inference.preprocess import DEFAULT_CROP, body_box

pytestmark = pytest.mark.slow

TEST_SEED = 1001  # not a training seed
assert TEST_SEED not in TRAINED_SEEDS


@pytest.fixture(scope="session")
def model_folder() -> Path:
    return ensure_trained_model()


@pytest.fixture(scope="session")
def registered(model_folder):
    return NnUNetBackend.describe(model_folder)


@pytest.fixture(scope="session")
def case():
    return phantom_case(TEST_SEED, rows=RECIPE["rows"], slices=RECIPE["slices"])


@pytest.fixture(scope="session")
def loaded(model_folder, registered):
    """(backend, modules of the broken timm/torchvision stack that loading imported)."""
    before = set(sys.modules)
    backend = NnUNetBackend.load(model_folder, *registered)
    return backend, {name for name in set(sys.modules) - before if name.split(".")[0] in ("timm", "torchvision")}


@pytest.fixture(scope="session")
def run(loaded, case):
    """(proposal, seconds for propose, progress reports, expected GTV voxels (softmax sum) of each network call)
    on the test phantom; the folds run one after the other over the same tiles: the calls split into one half
    per fold."""
    backend, _ = loaded
    reports, calls = [], []
    hook = backend.predictor.network.register_forward_hook(
        lambda module, args, output: calls.append(float(output.float().softmax(1)[:, 1:].sum()))
    )
    images = CaseImages(hu=case.hu.astype(np.float32), ct_grid=case.ct_grid, suv=case.suv, pet_grid=case.pet_grid)
    started = time.perf_counter()
    try:
        proposal = backend.propose(images, progress=lambda stage, fraction: reports.append((stage, fraction)))
    finally:
        hook.remove()
    return proposal, time.perf_counter() - started, reports, calls


def copy_model(model_folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / model_folder.name
    shutil.copytree(model_folder, target)
    return target


def test_describe_reads_the_model_folder(model_folder, registered):
    card, files = registered
    plans = json.loads((model_folder / "plans.json").read_text())
    settings = plans["configurations"]["3d_fullres"]
    backward = plans["transpose_backward"]
    assert card["format"] == "nnunetv2"
    assert card["input_channels"] == ["CT", "PET_SUV"]
    assert card["labels"] == ["background", "GTV"]
    assert card["folds"] == [0, 1]
    assert card["trainer"] == RECIPE["trainer"] and card["configuration"] == "3d_fullres"
    assert card["target_spacing_mm"] == pytest.approx([settings["spacing"][a] for a in backward])
    assert card["patch_size"] == [settings["patch_size"][a] for a in backward]
    assert card["normalisation"] == {"CT": "CTNormalization", "PET_SUV": "ZScoreNormalization"}
    assert card["inference"] == {"mirroring": False, "tile_step_size": 0.5}
    assert "NOT FOR CLINICAL USE" in card["intended_use"]  # merged from model_card.json, as is:
    assert set(card["validation"]["dice"]) == {"fold_0", "fold_1"}
    assert [f.path for f in files] == [
        "dataset.json", "plans.json", "fold_0/checkpoint_final.pth", "fold_1/checkpoint_final.pth",
    ]  # fmt: skip
    assert all(len(f.sha256) == 64 and f.size == (model_folder / f.path).stat().st_size for f in files)


def test_loads_from_a_copy_of_the_registered_files(model_folder, registered, tmp_path):
    """The registry copies only the listed files, under a folder named by the version: that must be enough."""
    card, files = registered
    copy = tmp_path / "1.0"
    for weight in files:
        (copy / weight.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model_folder / weight.path, copy / weight.path)
    backend = NnUNetBackend.load(copy, card, files)
    assert (
        backend.predictor.configuration_manager.patch_size
        == json.loads((copy / "plans.json").read_text())["configurations"]["3d_fullres"]["patch_size"]
    )


def test_changed_checkpoint_is_refused(model_folder, registered, tmp_path):
    card, files = registered
    folder = copy_model(model_folder, tmp_path)
    checkpoint = folder / "fold_1" / "checkpoint_final.pth"
    data = bytearray(checkpoint.read_bytes())
    data[len(data) // 2] ^= 0xFF
    checkpoint.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"fold_1/checkpoint_final\.pth"):
        NnUNetBackend.load(folder, card, files)


def test_missing_checkpoint_is_refused(model_folder, registered, tmp_path):
    card, files = registered
    folder = copy_model(model_folder, tmp_path)
    (folder / "fold_0" / "checkpoint_final.pth").unlink()
    with pytest.raises(ModelFileError, match=r"fold_0/checkpoint_final\.pth"):
        NnUNetBackend.load(folder, card, files)
    with pytest.raises(ModelFileError, match=r"fold_0/checkpoint_final\.pth"):
        NnUNetBackend.describe(folder)


def test_incomplete_folder_is_refused(model_folder, tmp_path):
    folder = copy_model(model_folder, tmp_path)
    (folder / "plans.json").unlink()
    with pytest.raises(ModelFileError, match=r"plans\.json"):
        NnUNetBackend.describe(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelFileError, match=r"dataset\.json and plans\.json"):
        NnUNetBackend.describe(empty)


def test_nnunet_v1_folder_is_refused(tmp_path):
    folder = tmp_path / "nnUNetTrainerV2__nnUNetPlansv2.1"
    (folder / "fold_0").mkdir(parents=True)
    (folder / "plans.pkl").write_bytes(b"\x80\x04N.")
    (folder / "fold_0" / "model_final_checkpoint.model").write_bytes(b"v1")
    (folder / "fold_0" / "model_final_checkpoint.model.pkl").write_bytes(b"v1")
    with pytest.raises(ModelFileError, match="v1 is not supported"):
        NnUNetBackend.describe(folder)


def test_foreign_labels_and_channels_are_refused(model_folder, tmp_path):
    folder = copy_model(model_folder, tmp_path)
    dataset = json.loads((folder / "dataset.json").read_text())
    (folder / "dataset.json").write_text(json.dumps({**dataset, "labels": {"background": 0, "Parotid": 1}}))
    with pytest.raises(ModelFileError, match="Parotid"):
        NnUNetBackend.describe(folder)
    (folder / "dataset.json").write_text(json.dumps({**dataset, "channel_names": {"0": "CT", "1": "T1"}}))
    with pytest.raises(ModelFileError, match="T1"):
        NnUNetBackend.describe(folder)


def test_loading_keeps_off_torchvision(loaded):
    """nnU-Net's trainer lookup would import timm → torchvision (broken here) without the Primus placeholder."""
    backend, imported = loaded
    assert not imported
    assert PRIMUS_TRAINERS not in sys.modules  # the placeholder is gone again
    assert backend.predictor.network is not None and len(backend.predictor.list_of_parameters) == 2


def test_pet_is_required(loaded, case):
    backend, _ = loaded
    with pytest.raises(ValueError, match="PET_SUV missing"):
        backend.propose(CaseImages(hu=case.hu.astype(np.float32), ct_grid=case.ct_grid))


def test_propose_lands_on_the_ct_grid(run, case, registered):
    proposal, seconds, reports, _ = run
    shape = case.ct_grid.shape
    assert proposal.probability.shape == proposal.uncertainty.shape == proposal.mask.shape == shape
    assert proposal.probability.dtype == np.float32 and proposal.mask.dtype == bool
    assert proposal.probability.min() >= 0.0 and proposal.probability.max() <= 1.0
    assert proposal.uncertainty.min() >= 0.0 and proposal.uncertainty.max() <= 1.0
    box = body_box(case.hu, case.ct_grid.spacing, DEFAULT_CROP["ct_threshold_hu"], DEFAULT_CROP["margin_mm"])
    outside = np.ones(shape, dtype=bool)
    outside[box] = False
    assert outside.any(), "the test case should have voxels outside the body box"
    assert not proposal.probability[outside].any() and not proposal.uncertainty[outside].any()
    assert not proposal.mask[outside].any()
    assert proposal.members == len(registered[0]["folds"]) == 2 and proposal.member_kind == "folds"
    assert 0.0 < proposal.forward_seconds < seconds
    assert proposal.device == "cpu"
    assert reports[0] == ("preprocessing", 0.0) and reports[-1] == ("postprocessing", 1.0)
    assert ("inference", 0.5) in reports and ("inference", 1.0) in reports


def test_folds_disagree_and_the_doubt_is_at_the_boundary(run):
    proposal, _, _, calls = run
    fold_0, fold_1 = np.array_split(np.array(calls), 2)
    assert len(fold_0) == len(fold_1) > 0
    assert np.abs(fold_0 - fold_1).max() > 1.0, "the two folds' expected GTV voxels differ on some tile"
    assert proposal.uncertainty.max() > 0.1
    assert proposal.mask.any() and proposal.mask.mean() < 0.2, "a GTV proposal, not the whole volume"
    grown = ndimage.binary_dilation(proposal.mask, iterations=2)
    band = grown & ~ndimage.binary_erosion(proposal.mask, iterations=2)
    far = ~ndimage.binary_dilation(proposal.mask, iterations=8)
    assert proposal.uncertainty[band].mean() > proposal.uncertainty[far].mean()
    assert proposal.case_uncertainty > 0.0


def test_proposal_sits_on_the_tumour(run, case):
    """Geometry, not quality: most of the proposal lies within 2 voxels of the true GTV, which a transposed,
    flipped or shifted way back to the CT grid would not give."""
    proposal, _, _, _ = run
    near = ndimage.binary_dilation(case.gtv, iterations=2)
    assert (proposal.mask & case.gtv).any()
    assert (proposal.mask & near).sum() > 0.5 * proposal.mask.sum()
