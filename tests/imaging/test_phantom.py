"""The synthetic PET/CT phantom: deterministic per seed, anatomically plausible, a readable DICOM study whose
PET is hot where the true GTV is, with that GTV as NIfTI and RTSTRUCT on the CT grid."""

import datetime as dt
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.core.management import CommandError, call_command
from scipy.ndimage import binary_dilation, label

from imaging.contours.maskio import read_mask
from imaging.contours.rtstruct import list_roi_names, rtstruct_to_mask
from imaging.dicom.suv import suv_bw_factor
from imaging.dicom.volume import load_suv_volume, load_volume, resample
from imaging.geometry import grid_from_datasets
from imaging.phantom.anatomy import build_ct, ct_geometry, draw_anatomy
from imaging.phantom.pet import F18_HALF_LIFE_S, build_pet, draw_acquisition, pet_geometry
from imaging.phantom.writer import write_phantom

SEED = 11  # tests/imaging/conftest.py's small_phantom: 128×128, 40 slices


def _read(folder: Path) -> list:
    return [pydicom.dcmread(path) for path in sorted(folder.glob("*.dcm"))]


@pytest.fixture(scope="module")
def ct_files(small_phantom):
    return _read(small_phantom.ct_dir)


@pytest.fixture(scope="module")
def pet_files(small_phantom):
    return _read(small_phantom.pet_dir)


@pytest.fixture(scope="module")
def ct_volume(ct_files):
    return load_volume(ct_files)


@pytest.fixture(scope="module")
def gtv(small_phantom, ct_volume):
    return read_mask(small_phantom.gtv_nifti, ct_volume.grid)


def _small(seed: int, rows: int = 64, slices: int | None = 20):
    anatomy = draw_anatomy(seed)
    ct = build_ct(anatomy, ct_geometry(anatomy, rows=rows, slices=slices))
    pet = build_pet(anatomy, pet_geometry(anatomy, ct.geometry), draw_acquisition(anatomy))
    return ct, pet


def test_same_seed_gives_identical_images_and_gtv():
    (ct1, pet1), (ct2, pet2) = _small(7), _small(7)
    np.testing.assert_array_equal(ct1.hu, ct2.hu)
    np.testing.assert_array_equal(ct1.gtv, ct2.gtv)
    np.testing.assert_array_equal(pet1.activity, pet2.activity)
    assert ct1.gtv.any() and pet1.geometry == pet2.geometry


def test_written_files_hold_exactly_the_generated_images(small_phantom, ct_files, ct_volume, gtv):
    anatomy = draw_anatomy(SEED)
    ct = build_ct(anatomy, ct_geometry(anatomy, rows=128, slices=40))
    np.testing.assert_array_equal(ct_volume.array, ct.hu)  # files in any order, sorted back along z
    np.testing.assert_array_equal(gtv, ct.gtv)
    assert np.allclose(ct_volume.grid.affine, ct.geometry.affine, atol=1e-4)


def test_different_seeds_give_different_patients_and_tumours():
    a, b = draw_anatomy(1), draw_anatomy(2)
    assert (a.body.lateral, a.body.depth, a.weight_kg) != (b.body.lateral, b.body.depth, b.weight_kg)
    assert a.primary.site != b.primary.site or not np.allclose(a.primary.centres, b.primary.centres)
    assert abs(a.primary.target_ml - b.primary.target_ml) > 0.1
    ct1, ct2 = (build_ct(anatomy, ct_geometry(anatomy, rows=48)) for anatomy in (a, b))
    assert ct1.hu.shape != ct2.hu.shape  # 132 vs 138 slices of the seeds' own thickness
    assert ct1.geometry.spacing != ct2.geometry.spacing


def test_tumour_volumes_are_in_range_and_about_half_the_patients_have_a_node():
    anatomies = [draw_anatomy(seed) for seed in range(1, 15)]
    for anatomy in anatomies:
        assert 5 <= anatomy.primary.target_ml <= 60
        assert all(1 <= node.target_ml <= 20 for node in anatomy.nodes)
        assert 55 <= anatomy.weight_kg <= 100 and 120 <= anatomy.slices <= 160
    with_node = sum(bool(anatomy.nodes) for anatomy in anatomies)
    assert 2 <= with_node <= 12
    assert len({anatomy.primary.site for anatomy in anatomies}) >= 3
    for seed in (5, 14):  # both have a node
        anatomy = anatomies[seed - 1]
        ct = build_ct(anatomy, ct_geometry(anatomy, rows=128))
        voxel_ml = ct.geometry.voxel_volume_ml
        assert ct.primary.sum() * voxel_ml == pytest.approx(anatomy.primary.target_ml, rel=0.08)
        assert ct.nodes.sum() * voxel_ml == pytest.approx(anatomy.nodes[0].target_ml, rel=0.15)
        assert not (ct.primary & ct.nodes).any()
        assert label(ct.primary, structure=np.ones((3, 3, 3)))[1] == 1  # one lobulated mass
        assert label(ct.gtv, structure=np.ones((3, 3, 3)))[1] == 2  # the node is a separate blob


def test_ct_shows_air_fat_soft_tissue_and_bone(ct_volume, gtv):
    hu = ct_volume.array
    assert hu.min() >= -1024 and hu.max() <= 3071
    body = hu[hu > -500]  # the patient (and the couch)
    assert np.mean(hu < -900) > 0.5  # air around the patient
    assert np.mean((body > -150) & (body < -60)) > 0.05  # fat
    assert np.mean((body > 0) & (body < 100)) > 0.3  # soft tissue
    assert np.mean(body > 600) > 0.01 and hu.max() > 1000  # bone, teeth
    assert np.mean((hu > -1000) & (hu < -900) & binary_dilation(gtv, iterations=6)) > 0  # airway near the tumour
    tumour, background = np.median(hu[gtv]), np.median(hu[binary_dilation(gtv, iterations=3) & ~gtv & (hu > -50)])
    assert 30 < tumour < 110 and tumour > background  # slightly enhancing soft tissue
    noise = np.std(hu[:, :8, :8])  # air in a corner of the field of view
    assert 8 < noise < 25


def test_ct_is_one_regular_series_with_identifying_tags(small_phantom, ct_files):
    grid, ordered = grid_from_datasets(ct_files)
    assert grid.shape == (40, 128, 128)
    assert grid.spacing[0] == pytest.approx(small_phantom.summary["ct"]["slice_thickness_mm"])
    assert len({ds.SOPInstanceUID for ds in ct_files}) == 40
    ds = ct_files[0]
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.SOPClassUID == pydicom.uid.CTImageStorage
    assert (ds.RescaleIntercept, ds.RescaleSlope) == (-1024, 1)
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 12, 11, 0)
    assert ds.ImageOrientationPatient == [1, 0, 0, 0, 1, 0]
    assert ds.PatientName == f"PHANTOM^{SEED}" and ds.PatientID == f"PHANTOM-{SEED}"
    for keyword in ("InstitutionName", "ReferringPhysicianName", "AccessionNumber", "StationName", "PatientBirthDate",
                    "OperatorsName", "StudyDate", "StudyTime", "OtherPatientIDsSequence"):  # fmt: skip
        assert ds.get(keyword), keyword
    assert ds.get_private_item(0x0011, 0x01, "CONTOURTRIAL PHANTOM").value
    assert int(ordered[-1].InstanceNumber) == 1  # the top slice comes first, as scanned head first


def test_pet_has_its_own_coarser_grid_in_the_cts_frame(ct_files, pet_files, ct_volume):
    grid, _ = grid_from_datasets(pet_files)
    assert grid.shape[1] in (128, 144) and 3.9 <= grid.spacing[1] <= 4.2 and 3 <= grid.spacing[0] <= 4
    assert not np.allclose(grid.affine[:3, 3], ct_volume.grid.affine[:3, 3])
    ct_z, pet_z = ct_volume.grid.slice_positions(), grid.slice_positions()
    assert pet_z[0] <= ct_z[0] and pet_z[-1] >= ct_z[-1]
    for ds in pet_files:
        assert ds.StudyInstanceUID == ct_files[0].StudyInstanceUID
        assert ds.FrameOfReferenceUID == ct_files[0].FrameOfReferenceUID
        assert ds.SOPClassUID == pydicom.uid.PositronEmissionTomographyImageStorage


def test_pet_carries_every_suv_attribute(pet_files):
    slopes = set()
    for ds in pet_files:
        assert ds.Units == "BQML" and ds.DecayCorrection == "START" and ds.CountsSource == "EMISSION"
        assert {"DECY", "ATTN", "SCAT"} <= set(ds.CorrectedImage)
        assert ds.SeriesType[0] in ("WHOLE BODY", "STATIC") and ds.NumberOfSlices == len(pet_files)
        assert 1 <= ds.ImageIndex <= len(pet_files) and ds.ReconstructionMethod and ds.DecayFactor >= 1
        assert ds.FrameReferenceTime >= 0 and ds.ActualFrameDuration > 0
        assert 55 <= ds.PatientWeight <= 100 and 1.4 < ds.PatientSize < 2.1
        assert ds.RescaleIntercept == 0 and ds.PixelRepresentation == 1 and ds.BitsStored == 16
        slopes.add(float(ds.RescaleSlope))
        item = ds.RadiopharmaceuticalInformationSequence[0]
        assert item.Radiopharmaceutical == "Fluorodeoxyglucose"
        code = item.RadionuclideCodeSequence[0]
        assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == ("C-111A1", "SRT", "^18^Fluorine")
        assert 250e6 <= item.RadionuclideTotalDose <= 400e6
        assert item.RadionuclideHalfLife == pytest.approx(F18_HALF_LIFE_S)
        assert item.RadionuclidePositronFraction == pytest.approx(0.9673)
        series = dt.datetime.strptime(ds.SeriesDate + ds.SeriesTime, "%Y%m%d%H%M%S.%f")
        acquired = dt.datetime.strptime(ds.AcquisitionDate + ds.AcquisitionTime, "%Y%m%d%H%M%S.%f")
        injected = dt.datetime.strptime(item.RadiopharmaceuticalStartDateTime, "%Y%m%d%H%M%S.%f")
        assert 50 <= (series - injected).total_seconds() / 60 <= 75 and acquired >= series
        assert injected.strftime("%H%M%S") == item.RadiopharmaceuticalStartTime[:6]
    assert len(slopes) > 1  # each slice scaled to use the 16-bit range


def test_suv_from_the_files_is_the_generated_suv(pet_files):
    anatomy = draw_anatomy(SEED)
    acquisition = draw_acquisition(anatomy)
    ds = pet_files[0]
    item = ds.RadiopharmaceuticalInformationSequence[0]
    series = dt.datetime.strptime(ds.SeriesDate + ds.SeriesTime, "%Y%m%d%H%M%S.%f")
    injected = dt.datetime.strptime(item.RadiopharmaceuticalStartDateTime, "%Y%m%d%H%M%S.%f")
    decayed = item.RadionuclideTotalDose * 2 ** (-(series - injected).total_seconds() / item.RadionuclideHalfLife)
    by_hand = float(ds.PatientWeight) * 1000 / decayed  # QIBA SUVbw factor
    assert suv_bw_factor(ds) == pytest.approx(by_hand)
    assert by_hand == pytest.approx(1 / acquisition.bq_ml_per_suv, rel=1e-6)
    volume = load_suv_volume(pet_files)
    ct_geometry_ = ct_geometry(anatomy, rows=128, slices=40)
    pet = build_pet(anatomy, pet_geometry(anatomy, ct_geometry_), acquisition)
    assert volume.array.shape == pet.suv.shape
    np.testing.assert_allclose(volume.array, pet.suv, atol=pet.suv.max() / 32767 * 1.01)


def test_pet_is_hot_where_the_gtv_is(small_phantom, pet_files, ct_volume, gtv):
    suv = load_suv_volume(pet_files)
    on_ct = resample(suv.array, suv.grid, ct_volume.grid, order=1)
    inside = float(on_ct[gtv].max())
    assert 7 <= inside <= 22
    assert inside == pytest.approx(small_phantom.summary["suv_max"], rel=0.1)
    near = binary_dilation(gtv, iterations=4)
    body = ct_volume.array > -400
    assert inside > 3 * np.percentile(on_ct[body & ~near], 99)
    anatomy = draw_anatomy(SEED)
    below_brain = ct_volume.grid.slice_positions() < anatomy.z_offset + anatomy.body.skull_base
    hottest = np.unravel_index(np.argmax(np.where(below_brain[:, None, None], on_ct, 0)), on_ct.shape)
    assert near[hottest]


def test_gtv_reads_back_from_nifti_and_rtstruct(small_phantom, ct_files, gtv):
    assert gtv.any() and small_phantom.gtv_nifti.name == "gtv.nii.gz"
    rtstruct = pydicom.dcmread(small_phantom.rtstruct)
    assert list_roi_names(rtstruct) == ["GTV"]
    assert rtstruct.FrameOfReferenceUID == ct_files[0].FrameOfReferenceUID
    np.testing.assert_array_equal(rtstruct_to_mask(rtstruct, ct_files, "GTV"), gtv)
    voxel_ml = np.prod(grid_from_datasets(ct_files)[0].spacing) / 1000
    assert gtv.sum() * voxel_ml == pytest.approx(small_phantom.summary["gtv_volume_cm3"], abs=0.01)


def test_make_phantom_command_reports_what_it_wrote(tmp_path, capsys):
    call_command("make_phantom", str(tmp_path / "out"), "--seed", "5", "--rows", "48", "--slices", "12")
    output = capsys.readouterr().out
    assert "12 slices of 48×48" in output and "cm³" in output and "SUVmax" in output and "2 lesion(s)" in output
    assert len(list((tmp_path / "out" / "ct").glob("CT_*.dcm"))) == 12
    assert (tmp_path / "out" / "gtv.nii.gz").is_file() and (tmp_path / "out" / "gtv_rtstruct.dcm").is_file()
    call_command("make_phantom", str(tmp_path / "out"), "--seed", "5", "--rows", "48", "--slices", "8")
    assert len(list((tmp_path / "out" / "ct").glob("CT_*.dcm"))) == 8  # no stale slices from the first run


def test_make_phantom_command_refuses_a_bad_folder(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(CommandError, match="not a folder"):
        call_command("make_phantom", str(blocker), "--seed", "1", "--rows", "32", "--slices", "4")
    with pytest.raises(CommandError, match="Cannot write the phantom"):
        call_command("make_phantom", str(blocker / "inside"), "--seed", "1", "--rows", "32", "--slices", "4")
    with pytest.raises(CommandError, match="--rows"):
        call_command("make_phantom", str(tmp_path / "x"), "--seed", "1", "--rows", "0")


@pytest.mark.slow
def test_full_size_phantom(tmp_path):
    started = time.perf_counter()
    files = write_phantom(tmp_path, seed=3)
    elapsed = time.perf_counter() - started
    ct = _read(files.ct_dir)
    grid, _ = grid_from_datasets(ct)
    assert grid.shape[1:] == (512, 512) and 120 <= grid.shape[0] <= 160
    assert 2.0 <= grid.spacing[0] <= 3.0 and 0.94 <= grid.spacing[1] <= 1.0
    assert ct[0].Rows == ct[0].Columns == 512
    gtv = read_mask(files.gtv_nifti, grid)
    assert 5 <= gtv.sum() * np.prod(grid.spacing) / 1000 <= 60 + 20
    assert elapsed < 60, f"writing a full-size phantom took {elapsed:.1f} s"
