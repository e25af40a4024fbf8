"""`run_segmentation`: the same pipeline outside Celery, writing mask and maps on the CT grid."""

import nibabel as nib
import nrrd
import numpy as np
import pytest
from django.core.management import CommandError, call_command

from imaging.contours.files import read_ct_folder
from imaging.contours.maskio import read_mask
from imaging.geometry import grid_from_datasets
from imaging.phantom.writer import write_phantom
from inference.postprocess import dice

from .conftest import register_demo

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return write_phantom(tmp_path_factory.mktemp("seg"), seed=1005, rows=256)


def test_mask_and_uncertainty_on_the_ct_grid(world, phantom, tmp_path, capsys):
    register_demo(world)
    out, uncertainty, probability = tmp_path / "gtv.nii.gz", tmp_path / "unc.nrrd", tmp_path / "prob.nii"
    call_command("run_segmentation", model="demo-gtv:1.0", ct=str(phantom.ct_dir), pet=str(phantom.pet_dir),
                 out=str(out), uncertainty=str(uncertainty), probability=str(probability))  # fmt: skip
    assert "GTV" in capsys.readouterr().out
    grid, _ = grid_from_datasets(read_ct_folder(phantom.ct_dir))
    mask = read_mask(out, grid)
    assert dice(mask, read_mask(phantom.gtv_nifti, grid)) >= 0.7
    entropy, header = nrrd.read(str(uncertainty), index_order="C")  # (k, j, i) = (z, y, x)
    assert entropy.shape == grid.shape and header["space"] == "left-posterior-superior"
    assert entropy.min() >= 0 and 0.5 < entropy.max() <= 1
    prob = np.asarray(nib.load(str(probability)).dataobj).transpose(2, 1, 0)
    assert (prob.shape == grid.shape and np.array_equal(prob >= 0.5, mask)) or dice(prob >= 0.5, mask) > 0.95


def test_clear_errors(world, phantom, tmp_path):
    register_demo(world)
    with pytest.raises(CommandError, match="No registered model 'nope'"):
        call_command("run_segmentation", model="nope", ct=str(phantom.ct_dir), out=str(tmp_path / "m.nii.gz"))
    with pytest.raises(CommandError, match="PET"):
        call_command("run_segmentation", model="demo-gtv", ct=str(phantom.ct_dir), out=str(tmp_path / "m.nii.gz"))
    with pytest.raises(CommandError, match="unsupported mask file type"):
        call_command("run_segmentation", model="demo-gtv", ct=str(phantom.ct_dir), pet=str(phantom.pet_dir),
                     out=str(tmp_path / "m.png"))  # fmt: skip
    assert not list(tmp_path.glob("m.*"))
