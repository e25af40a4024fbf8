"""Small helpers for imaging tests: zips, patients matching phantoms, stored-file inventories, datasets
compared with dcmread's, imports stored and forgotten."""

import io
import zipfile
from pathlib import Path

from django.conf import settings
from pydicom.dataset import Dataset

from tests.conftest import enrol


def zip_of(*folders: Path, extra: dict | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder in folders:
            for path in sorted(folder.glob("*.dcm")):
                archive.write(path, f"{folder.name}/{path.name}")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def phantom_patient(world, seed: int = 11, site: str = "AAR"):
    coordinator = world.coordinator if site == "AAR" else world.coordinator_ode
    physician = world.physician if site == "AAR" else world.physician_ode
    return enrol(world.trial, coordinator, physician, f"PHANTOM-{seed}", site=site)


def stored_files() -> set[Path]:
    root = Path(settings.MEDIA_ROOT)
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


# What a dataset read by the ingest reader must share with dcmread's, besides its elements.
READ_ATTRIBUTES = ("preamble", "is_implicit_VR", "is_little_endian", "original_encoding", "original_character_set",
                   "filename", "fileobj_type", "timestamp", "_parent_encoding")  # fmt: skip


def assert_same_as_dcmread(ours: Dataset, theirs: Dataset) -> None:
    assert ours._dict == theirs._dict  # RawDataElements: tag, VR, length, value (None where deferred), offset, encoding
    assert ours.file_meta._dict == theirs.file_meta._dict
    assert set(vars(ours)) == set(vars(theirs))
    for name in READ_ATTRIBUTES:
        assert getattr(ours, name) == getattr(theirs, name), name


def phantom_paths(phantom) -> list[Path]:
    """The phantom's CT and PET files, in order."""
    return [*sorted(phantom.ct_dir.glob("*.dcm")), *sorted(phantom.pet_dir.glob("*.dcm"))]


def stored_instances() -> dict:
    """Each stored instance's SHA-256, slice index and file contents, by SOP instance UID."""
    from imaging.models import Instance

    rows = Instance.objects.all()
    return {row.sop_instance_uid: (row.sha256, row.slice_index, Path(row.file.path).read_bytes()) for row in rows}


def forget_import() -> None:
    """Remove every stored instance, its file, the UID map, series and studies (to import the same images again)."""
    from imaging.models import Instance, Series, Study, UidMapping

    for instance in Instance.objects.all():
        instance.file.delete(save=False)
    Instance.objects.all().delete()
    UidMapping.objects.all().delete()
    Series.objects.all().delete()
    Study.objects.all().delete()


def deidentified(ds: Dataset) -> Dataset:
    """The dataset de-identified in place, with a fixed test salt, pseudonym and date shift."""
    from imaging.dicom.deid import deidentify

    return deidentify(ds, pseudonym="CT-HN-0042", salt=bytes(range(32)), date_shift_days=-123, copy_input=False).dataset
