"""Writing an import's files (files.py), the forked helper (helper.py), and the pipeline using both."""

import gc
import hashlib
import os
import stat
import threading
import time
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, InMemoryStorage

from imaging.dicom.deid import DeidError
from imaging.ingest import helper as helper_module
from imaging.ingest import pipeline
from imaging.ingest.collector import collector_paused
from imaging.ingest.files import StoredFiles
from imaging.ingest.helper import Helper, HelperError
from imaging.ingest.parse import parse_payload
from imaging.ingest.payloads import Payload
from imaging.models import Instance, Series, UidMapping
from tests.imaging.helpers import forget_import, phantom_paths, phantom_patient, stored_files, stored_instances

_IDLE_PROCESSOR = helper_module._idle_processor


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _helper_allowed(monkeypatch):
    """Threads other tests leave behind (servers shutting down), or a busy test machine, would keep the helper
    from forking."""
    monkeypatch.setattr(helper_module.threading, "active_count", lambda: 1)
    monkeypatch.setattr(helper_module, "_idle_processor", lambda: True)


# StoredFiles


def test_files_go_straight_to_disk_with_djangos_permissions(tmp_path, settings):
    storage = FileSystemStorage(location=tmp_path / "store", file_permissions_mode=0o640)
    files = StoredFiles(storage)
    assert files.direct
    name, digest = files.write("dicom/P/1.2/3.4/5.6.dcm", [b"DICM", b"x" * 70000, b"tail"])
    path = Path(storage.path(name))
    assert name == "dicom/P/1.2/3.4/5.6.dcm" and path.read_bytes() == b"DICM" + b"x" * 70000 + b"tail"
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_an_existing_name_gets_a_free_one_as_storage_save_gives(tmp_path):
    storage = FileSystemStorage(location=tmp_path / "store")
    storage.save("dicom/a.dcm", ContentFile(b"old"))
    files = StoredFiles(storage)
    name, _ = files.write("dicom/a.dcm", [b"new"])
    assert name != "dicom/a.dcm" and name.startswith("dicom/a_") and storage.open(name).read() == b"new"
    assert storage.open("dicom/a.dcm").read() == b"old"
    files.discard()
    assert not storage.exists(name) and storage.exists("dicom/a.dcm")


def test_other_storages_get_storage_save():
    storage = InMemoryStorage()
    files = StoredFiles(storage)
    assert not files.direct
    name, digest = files.write("dicom/b.dcm", [b"ab", b"cd"])
    assert storage.open(name).read() == b"abcd" and digest == hashlib.sha256(b"abcd").hexdigest()
    files.discard()
    assert not storage.exists(name)


def test_discard_removes_every_file_written(tmp_path):
    storage = FileSystemStorage(location=tmp_path / "store")
    files = StoredFiles(storage)
    names = [files.write(f"dicom/{n}.dcm", [b"x"])[0] for n in range(3)]
    files.discard()
    assert not any(storage.exists(name) for name in names)


def test_write_many_writes_every_file_on_two_threads_in_order(tmp_path, monkeypatch):
    storage = FileSystemStorage(location=tmp_path / "store")
    files = StoredFiles(storage)
    threads = set()
    real_write = StoredFiles._write

    def noting(self, *args):
        threads.add(threading.get_ident())
        time.sleep(0.002)  # lets the other thread take the next file (as the disk's system calls do)
        return real_write(self, *args)

    monkeypatch.setattr(StoredFiles, "_write", noting)
    items = [(f"dicom/P/{n % 3}/{n}.dcm", [b"head", bytes([n]) * 5000]) for n in range(40)]
    results = files.write_many(items)
    assert len(threads) == 2
    assert [name for name, _ in results] == [name for name, _ in items]
    for (name, chunks), (_, digest) in zip(items, results, strict=True):
        assert storage.open(name).read() == b"".join(chunks)
        assert digest == hashlib.sha256(b"".join(chunks)).hexdigest()


def test_a_failed_write_on_either_thread_is_raised_and_discard_removes_the_rest(tmp_path, monkeypatch):
    storage = FileSystemStorage(location=tmp_path / "store")
    files = StoredFiles(storage)
    real_write = StoredFiles._write

    def failing(self, name, chunks, path):
        if name.endswith("/35.dcm"):  # on whichever thread takes it
            raise OSError("disk full")
        return real_write(self, name, chunks, path)

    monkeypatch.setattr(StoredFiles, "_write", failing)
    with pytest.raises(OSError, match="disk full"):
        files.write_many([(f"dicom/P/{n}.dcm", [b"x" * 100]) for n in range(40)])
    assert files.names
    files.discard()
    assert not list((tmp_path / "store").rglob("*.dcm"))


def test_the_collector_is_paused_during_an_import_and_restored_after():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError), collector_paused():
        raise ValueError
    assert gc.isenabled()


# Helper


needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


@needs_fork
def test_helper_returns_what_finish_returned_in_item_order(tmp_path):
    log = tmp_path / "log"
    helper = Helper.start(list(range(10)), lambda item: item * 2, lambda prepared, record: _note(log, prepared, record))
    assert helper is not None
    helper.go()
    assert helper.results() == [item * 2 + 1 for item in range(10)]
    assert helper.stop() == [f"n{item * 2}" for item in range(10)]


def _note(log: Path, prepared, record):
    record(f"n{prepared}")
    with log.open("a") as file:
        file.write(f"{prepared}\n")
    return prepared + 1


@needs_fork
def test_a_helper_stopped_before_go_writes_nothing(tmp_path):
    log = tmp_path / "log"
    helper = Helper.start([1, 2, 3], lambda item: item, lambda prepared, record: _note(log, prepared, record))
    assert helper.stop() == []
    assert not log.exists()


@needs_fork
def test_an_error_in_the_helper_is_raised_here_and_its_files_are_named(tmp_path):
    def finish(prepared, record):
        if prepared == 2:
            raise DeidError("slice 2 has burned-in annotation")
        return _note(tmp_path / "log", prepared, record)

    helper = Helper.start([0, 1, 2, 3], lambda item: item, finish)
    helper.go()
    with pytest.raises(DeidError, match="burned-in annotation"):
        helper.results()
    assert helper.stop() == ["n0", "n1"]


@needs_fork
def test_a_helper_that_dies_is_an_error():
    def finish(prepared, record):
        record("written-before-crash")
        os._exit(3)

    helper = Helper.start([0], lambda item: item, finish)
    helper.go()
    with pytest.raises(HelperError, match="abnormally"):
        helper.results()
    assert helper.stop() == ["written-before-crash"]


def test_no_helper_where_forking_is_unsafe_or_the_machine_busy(monkeypatch):
    monkeypatch.setattr(helper_module.threading, "active_count", lambda: 2)
    assert Helper.start([1], lambda item: item, lambda prepared, record: prepared) is None
    monkeypatch.setattr(helper_module.threading, "active_count", lambda: 1)
    monkeypatch.setattr(helper_module, "_idle_processor", _IDLE_PROCESSOR)
    monkeypatch.setattr(helper_module.os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    assert Helper.start([1], lambda item: item, lambda prepared, record: prepared) is None


# The pipeline with and without a helper


def _datasets(phantom):
    return [parse_payload(Payload(path.name, path.read_bytes())) for path in phantom_paths(phantom)]


@pytest.fixture
def helpers_started(monkeypatch, settings):
    settings.IMAGING_INGEST_HELPER_PROCESS = True  # off by default in settings; these tests are about it
    started = []
    original = Helper.start.__func__

    def start(cls, items, prepare, finish):
        helper = original(cls, items, prepare, finish)
        started.append(helper)
        return helper

    monkeypatch.setattr(Helper, "start", classmethod(start))
    return started


@needs_fork
@pytest.mark.django_db
def test_a_helper_stores_exactly_what_one_process_stores(world, small_phantom, settings, helpers_started):
    patient = phantom_patient(world)
    settings.IMAGING_INGEST_HELPER_PROCESS = False
    pipeline.store_images(patient=patient, datasets=_datasets(small_phantom), source="upload")
    alone, mappings = stored_instances(), set(UidMapping.objects.values_list("original_uid", "pseudonymous_uid"))
    forget_import()

    settings.IMAGING_INGEST_HELPER_PROCESS = True
    pipeline.store_images(patient=patient, datasets=_datasets(small_phantom), source="upload")
    assert any(helper is not None for helper in helpers_started), "the helper process was used"
    assert stored_instances() == alone
    assert set(UidMapping.objects.values_list("original_uid", "pseudonymous_uid")) == mappings


@needs_fork
@pytest.mark.django_db
def test_a_failed_commit_removes_the_helpers_files_too(world, small_phantom, monkeypatch, helpers_started):
    patient = phantom_patient(world)
    before = stored_files()

    def fail(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(pipeline, "_commit_rows", fail)
    with pytest.raises(RuntimeError, match="database went away"):
        pipeline.store_images(patient=patient, datasets=_datasets(small_phantom), source="upload")
    assert any(helper is not None for helper in helpers_started)
    assert stored_files() == before and not Instance.objects.exists()


@needs_fork
@pytest.mark.django_db
def test_an_error_in_the_helpers_share_leaves_nothing_stored(world, small_phantom, helpers_started):
    patient = phantom_patient(world)
    datasets = _datasets(small_phantom)
    datasets[-1].BurnedInAnnotation = "YES"  # in the helper's share: the last images
    before = stored_files()
    with pytest.raises(pipeline.InputError, match="BurnedInAnnotation"):  # a 400 for an upload, quarantine for C-STORE
        pipeline.store_images(patient=patient, datasets=datasets, source="upload")
    assert any(helper is not None for helper in helpers_started)
    assert stored_files() == before and not Series.objects.exists()


@pytest.mark.django_db
def test_failing_checks_stop_the_helper_before_it_writes(world, small_phantom, helpers_started):
    patient = phantom_patient(world)
    datasets = _datasets(small_phantom)
    datasets[5].ImageOrientationPatient = [1, 0, 0, 0, 0.9998477, 0.0174524]
    before = stored_files()
    with pytest.raises(pipeline.InputError, match="ImageOrientationPatient differs"):
        pipeline.store_images(patient=patient, datasets=datasets, source="upload")
    assert stored_files() == before


def test_small_imports_and_other_storages_get_no_helper(settings):
    files = StoredFiles(FileSystemStorage(location=settings.MEDIA_ROOT))
    assert pipeline._helper_share([object()] * (pipeline.HELPER_MIN_IMAGES - 1), files) == []
    assert pipeline._helper_share([object()] * 100, StoredFiles(InMemoryStorage())) == []
    assert len(pipeline._helper_share([object()] * 100, files)) in (0, 100 - int(100 * pipeline.PARENT_SHARE))


@pytest.mark.django_db
def test_images_of_a_locked_trial_are_refused_and_nothing_is_stored(world, small_phantom):
    from django.utils import timezone

    patient = phantom_patient(world)
    world.trial.data_locked_at = timezone.now()  # as endpoints.services.lock sets it
    world.trial.save()
    before = stored_files()
    with pytest.raises(pipeline.InputError, match=r"was locked on .* storing images is no longer possible"):
        pipeline.store_images(patient=patient, datasets=_datasets(small_phantom), source="upload")
    assert stored_files() == before and not Series.objects.exists()
