"""The committed demo model: its card, its TorchScript file, and Dice of the full path on held-out phantoms."""

import json
import shutil

import numpy as np
import pytest
import torch

from inference.phantom_cases import phantom_case
from inference.postprocess import dice
from inference.predict import CARD_NAME, DEMO_MODEL_DIR, ModelFileError, load_model, segment, sha256_of
from inference.unet import UNet3d

TEST_SEEDS = (1000, 1001, 1003)  # held out from training (seeds 0 … 999); 1001 carries a small primary


@pytest.fixture(scope="module")
def demo():
    return load_model(DEMO_MODEL_DIR)


def test_card_states_what_inference_needs(demo):
    _, card = demo
    assert card["intended_use"] == "Demo and tests only — NOT FOR CLINICAL USE"
    assert card["input_channels"] == ["CT", "PET_SUV"]
    assert card["labels"] == ["background", "GTV"]
    assert len(card["target_spacing_mm"]) == 3 and len(card["patch_size"]) == 3
    assert set(card["normalisation"]) == {"CT", "PET_SUV"}
    assert {"ct_threshold_hu", "margin_mm"} <= set(card["body_crop"])
    assert {"threshold", "max_components", "min_component_ml"} <= set(card["postprocessing"])
    assert card["torch_version"] and card["training"]["config"]["seed"] == 0
    assert not set(card["training"]["config"]["training_seeds"]) & set(card["validation"]["seeds"])
    assert len(card["validation"]["seeds"]) >= 10 and card["validation"]["mean_dice"] >= 0.80


def test_weights_are_small_and_match_the_card():
    card = json.loads((DEMO_MODEL_DIR / CARD_NAME).read_text())
    weights = DEMO_MODEL_DIR / card["file"]
    assert weights.stat().st_size < 5_000_000
    assert sha256_of(weights) == card["weights_sha256"]


def test_changed_weights_are_refused(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(DEMO_MODEL_DIR, folder)
    card = json.loads((folder / CARD_NAME).read_text())
    with open(folder / card["file"], "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelFileError, match="sha256"):
        load_model(folder)


def test_torchscript_equals_the_eager_network(demo):
    scripted, card = demo
    architecture = card["architecture"]
    eager = UNet3d(2, 2, tuple(architecture["channels"]), architecture["dropout"], architecture["dropout_from"])
    eager.load_state_dict(scripted.state_dict())
    eager.eval()
    probe = torch.randn((1, 2, *card["patch_size"]), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(scripted(probe), eager(probe), atol=1e-4)


def test_eval_is_deterministic_and_dropout_allows_mc_sampling(demo):
    scripted, card = demo
    assert any("Dropout" in module.original_name for module in scripted.modules())
    probe = torch.randn((1, 2, *card["patch_size"]), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(scripted(probe), scripted(probe))
        scripted.train()
        try:
            torch.manual_seed(0)
            first = scripted(probe)
            second = scripted(probe)
        finally:
            scripted.eval()
    assert not torch.equal(first, second)


def test_full_path_segments_held_out_phantoms(demo):
    """Phantom CT + PET → preprocess → sliding window → CT grid → post-processing, against the true GTV."""
    model, card = demo
    scores = {}
    for seed in TEST_SEEDS:
        case = phantom_case(seed, rows=256, slices=64)
        result = segment(model, card, case.hu, case.ct_grid, case.suv, case.pet_grid, overlap=0.25, device="cpu")
        assert result.probability.shape == case.gtv.shape and result.mask.dtype == bool
        scores[seed] = round(dice(result.mask, case.gtv), 3)
    assert min(scores.values()) >= 0.75, scores
    assert np.mean(list(scores.values())) >= 0.80, scores


@pytest.mark.slow
def test_ten_held_out_phantoms_at_full_size_reach_the_card_dice(demo):
    """The card's validation, recomputed: 512² planning CTs, the card's own sliding-window settings."""
    model, card = demo
    scores = []
    for seed in card["validation"]["seeds"]:
        case = phantom_case(seed, rows=card["validation"]["ct_rows"])
        scores.append(dice(segment(model, card, case.hu, case.ct_grid, case.suv, case.pet_grid).mask, case.gtv))
    assert np.mean(scores) >= 0.80
    assert np.mean(scores) == pytest.approx(card["validation"]["mean_dice"], abs=0.01)
