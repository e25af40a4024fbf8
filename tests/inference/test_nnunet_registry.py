"""An nnU-Net v2 model folder goes through the same registry, command and pipeline as the bundled model."""

import pytest
from django.core.management import call_command

from imaging.contours.files import read_ct_folder
from imaging.contours.maskio import read_mask
from imaging.geometry import grid_from_datasets
from imaging.phantom.writer import write_phantom
from inference.models import ModelVersion
from inference.nnunet_model import ensure_trained_model
from inference.registry import model_folder

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_register_and_run_an_nnunet_folder(world, tmp_path, capsys):
    source = ensure_trained_model()  # built by nnunetv2's own commands, cached between runs
    call_command("register_model", str(source), backend="nnunetv2", name="hn-nnunet", version="0.1",
                 activate_for=world.trial.protocol_id, reason="nnU-Net test", by="dm")  # fmt: skip
    model = ModelVersion.objects.get(name="hn-nnunet")
    paths = {f["path"] for f in model.files}
    assert {"dataset.json", "plans.json", "fold_0/checkpoint_final.pth", "fold_1/checkpoint_final.pth"} <= paths
    assert all((model_folder(model) / path).is_file() for path in paths)
    assert model.input_channels == ["CT", "PET_SUV"] and model.card["folds"] == [0, 1]

    phantom = write_phantom(tmp_path / "case", seed=1002, rows=96, slices=24)
    out, unc = tmp_path / "gtv.nrrd", tmp_path / "unc.nii.gz"
    call_command("run_segmentation", model="hn-nnunet", ct=str(phantom.ct_dir), pet=str(phantom.pet_dir),
                 out=str(out), uncertainty=str(unc))  # fmt: skip
    assert "2 folds members" in capsys.readouterr().out
    grid, _ = grid_from_datasets(read_ct_folder(phantom.ct_dir))
    mask = read_mask(out, grid)
    assert 0 < mask.sum() < 0.2 * mask.size
