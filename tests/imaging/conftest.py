"""Phantom cases for imaging tests: written once per session, small enough to be quick."""

import shutil

import pytest

from imaging.phantom.writer import write_phantom


@pytest.fixture(scope="session")
def small_phantom(tmp_path_factory):
    """A 128×128 phantom with 40 slices: CT, PET, GTV (patient id PHANTOM-11)."""
    return write_phantom(tmp_path_factory.mktemp("phantom11"), seed=11, rows=128, slices=40)


@pytest.fixture
def phantom_copy(small_phantom, tmp_path):
    """A private copy to break files in."""
    ct = tmp_path / "ct"
    pet = tmp_path / "pet"
    shutil.copytree(small_phantom.ct_dir, ct)
    shutil.copytree(small_phantom.pet_dir, pet)
    return ct, pet
