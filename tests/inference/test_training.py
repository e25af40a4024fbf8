"""The training recipe's parts: loss, patch sampling, reproducibility, export and the management command."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from django.core.management import call_command

from inference.predict import CARD_NAME, load_model
from inference.training import (
    TrainingConfig,
    base_card,
    dice_ce_loss,
    export,
    learning_rate,
    sample_patch,
    train,
)

TINY = replace(
    TrainingConfig(), training_seeds=(5,), training_rows=(128,), patch_size=(16, 32, 32), channels=(4, 8),
    steps=3, batch_size=1, workers=1, threads=1,
)  # fmt: skip


def test_loss_is_small_for_a_confident_correct_prediction_and_large_for_a_wrong_one():
    target = torch.zeros((1, 4, 4, 4), dtype=torch.long)
    target[0, 1:3, 1:3, 1:3] = 1
    right = torch.stack([(1 - target) * 20.0 - 10, target * 20.0 - 10], dim=1).float()
    assert float(dice_ce_loss(right, target)) < 0.01
    assert float(dice_ce_loss(-right, target)) > 1.5


def test_tumour_patches_contain_tumour_and_all_patches_have_the_patch_size():
    label = np.zeros((40, 80, 90), dtype=np.uint8)
    label[30:34, 60:66, 5:9] = 1
    image = np.zeros((2, *label.shape), dtype=np.float32)
    rng = np.random.default_rng(0)
    for centres in (np.argwhere(label), None):
        for _ in range(20):
            x, y = sample_patch(image, label, centres, (16, 32, 32), rng)
            assert x.shape == (2, 16, 32, 32) and y.shape == (16, 32, 32)
            if centres is not None:
                assert y.any()


def test_learning_rate_warms_up_then_decays():
    config = replace(TrainingConfig(), steps=100)
    rates = [learning_rate(step, config) for step in range(100)]
    assert rates[0] < rates[2] == pytest.approx(config.learning_rate)
    assert rates[-1] < 0.05 * config.learning_rate


def test_training_is_reproducible_and_exports_a_loadable_model(tmp_path):
    card = base_card(TINY)
    first, _ = train(TINY, card, log=lambda message: None)
    second, _ = train(TINY, card, log=lambda message: None)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    export(first, {**card, "validation": {}}, tmp_path, TINY.patch_size)
    model, loaded_card = load_model(tmp_path)
    probe = torch.randn((1, 2, *TINY.patch_size))
    with torch.no_grad():
        assert torch.allclose(model(probe), first(probe), atol=1e-5)
    assert loaded_card["weights_sha256"] and loaded_card["intended_use"].endswith("NOT FOR CLINICAL USE")


@pytest.mark.slow
def test_command_writes_weights_and_card(tmp_path, capsys):
    call_command("train_demo_model", "--out", str(tmp_path), "--steps", "2", "--training-seeds", "1",
                 "--validation-seeds", "1", "--validation-rows", "128", "--workers", "1")  # fmt: skip
    card = json.loads((tmp_path / CARD_NAME).read_text())
    assert (tmp_path / card["file"]).exists()
    assert card["validation"]["seeds"] == [1000] and card["training"]["config"]["steps"] == 2
    assert "Validation Dice" in capsys.readouterr().out
