"""Fuzzing the DICOM ingest through the real upload endpoint, as a coordinator sends files and zips.

A small phantom (CT 6×32×32, PET 9×144×144 with nested sequences and private tags) is uploaded with one file
mutated (tests/security/dicom_mutations.py), or as random bytes, or as a damaged zip. Property: the answer is
201 or a 4xx JSON with a message, never a 500 or an exception; a refused upload leaves no Study, Series,
Instance or UidMapping row, no audit entry and no file under MEDIA_ROOT. Each example runs in a savepoint that
is rolled back, so a 201 is undone and the next example meets the same empty patient.
The mutated-file target runs for FUZZ_SECONDS, the random-bytes and listener targets for half of it
(tests/security/fuzzing.py).
"""

import io
import shutil
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from hypothesis import currently_in_test_context, given, note
from hypothesis import strategies as st

from imaging.ingest.arrivals import file_arrivals
from imaging.models import Instance, QuarantinedStudy, Series, Study, UidMapping
from imaging.phantom.writer import write_phantom
from tests.imaging.helpers import phantom_patient
from tests.security.dicom_mutations import Element, Flip, Mutation, Value, WrongVR, elements, mutations
from tests.security.fuzzing import FUZZ_SECONDS, fuzz, fuzz_settings
from trial.models import AuditEntry

pytestmark = pytest.mark.django_db
URL = "/api/v1/imaging/uploads/"


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> list[tuple[str, bytes]]:
    files = write_phantom(tmp_path_factory.mktemp("fuzz-phantom"), seed=11, rows=32, slices=6)
    paths = sorted(files.ct_dir.glob("*.dcm")) + sorted(files.pet_dir.glob("*.dcm"))
    return [(f"{path.parent.name}/{path.name}", path.read_bytes()) for path in paths]


@pytest.fixture
def media(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def _rows() -> dict:
    models = (Study, Series, Instance, UidMapping, AuditEntry, QuarantinedStudy)
    return {model.__name__: model.objects.count() for model in models}


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _zip(files: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            archive.writestr(name, data)
    return buffer.getvalue()


class Uploads:
    """Posts one upload in a rolled-back savepoint and checks the property; tallies the answers."""

    def __init__(self, world, patient, media: Path):
        self.client, self.patient, self.media = world.client(world.coordinator), patient, media
        self.tally: Counter = Counter()
        self.last: dict = {}

    def check(self, uploads: list[tuple[str, bytes]]) -> None:
        before = _rows()
        with transaction.atomic():
            response = self.client.post(
                URL,
                {"patient": self.patient.pk, "files": [SimpleUploadedFile(name, data) for name, data in uploads]},
                format="multipart",
            )
            after = _rows()
            transaction.set_rollback(True)
        stored = _files(self.media)
        shutil.rmtree(self.media, ignore_errors=True)
        self.tally[response.status_code] += 1
        assert response.status_code == 201 or 400 <= response.status_code < 500, response.content[:300]
        if response.status_code == 201:
            assert after["Instance"] == before["Instance"] + len(stored) > before["Instance"]
            return
        detail = response.json()["detail"]
        self.last = response.json()
        if currently_in_test_context():
            note(f"refused: {detail}")
        assert isinstance(detail, str) and 10 < len(detail) < 2000 and "Traceback" not in detail
        assert after == before, f"a refused upload left rows: {before} → {after}"
        assert not stored, f"a refused upload left files: {stored[:3]}"


@pytest.fixture
def uploads(world, media) -> Uploads:
    return Uploads(world, phantom_patient(world), media)


def _report(name: str, batches: int, tally: Counter) -> None:
    print(f"\n{name}: {sum(tally.values())} examples in {batches} batches, answers {dict(sorted(tally.items()))}")


def test_uploads_with_one_mutated_file_get_201_or_a_clear_refusal_and_leave_nothing(phantom, uploads):
    names = [name for name, _ in phantom]

    @fuzz_settings
    @given(st.data(), st.integers(0, len(phantom) - 1), st.booleans())
    def upload_mutated(data, index, zipped):
        mutation: Mutation = data.draw(mutations(phantom[index][1]), label="mutation")
        note(f"file {names[index]}, {'zipped' if zipped else 'as files'}")
        files = list(phantom)
        files[index] = (files[index][0], mutation.apply(files[index][1]))
        uploads.check([("study.zip", _zip(files))] if zipped else [(name.replace("/", "_"), b) for name, b in files])

    _report("mutated file", fuzz(upload_mutated), uploads.tally)


def _element(data: bytes, tag: int) -> Element:
    return next(e for e in elements(data) if e.tag == tag)


def _burned_in(data: bytes) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.BurnedInAnnotation = "YES"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _mutated(mutation) -> Callable[[bytes], bytes]:
    return lambda data: mutation(data).apply(data)


# Inputs that once answered 500, kept as plain examples (fixes in imaging/ingest). The last two were found by
# reading the code the fuzzing led to: a 70-digit UID overflowed UidMapping, and DeidError was not an InputError.
REGRESSIONS = {
    "file-meta-version-as-UV": (_mutated(lambda d: WrongVR(_element(d, 0x00020001), b"UV")), "cannot be read"),
    "sop-class-uid-as-AE": (_mutated(lambda d: WrongVR(_element(d, 0x00080016), b"AE")), "not a valid DICOM UID"),
    "pixel-spacing-as-SL": (_mutated(lambda d: WrongVR(_element(d, 0x00280030), b"SL")), "cannot be read"),
    "series-uid-empty": (_mutated(lambda d: Value(_element(d, 0x0020000E), b"")), "SeriesInstanceUID is empty"),
    "uid-of-70-digits": (_mutated(lambda d: Value(_element(d, 0x00080018), b"1." + b"2" * 68)), "valid DICOM UID"),
    "burned-in-annotation": (_burned_in, "BurnedInAnnotation is YES"),
    # FUZZ_SECONDS=120, batch 56: one flipped byte made a value longer than its 64-character column (DataError).
    "flip-483-to-0x72": (_mutated(lambda d: Flip(((483, 114),))), "cannot be stored"),
}


def test_inputs_that_once_broke_the_ingest_are_refused_by_name(phantom, uploads):
    for name, (breaker, message) in REGRESSIONS.items():
        files = list(phantom)
        files[0] = (files[0][0], breaker(files[0][1]))
        uploads.check([(n.replace("/", "_"), data) for n, data in files])
        assert uploads.tally == {400: 1} and message in uploads.last["detail"], (name, uploads.last)
        uploads.tally.clear()
    # Found by the fuzzing: zipfile raised BadZipFile (bad CRC, bad header) or zlib.error reading a member.
    intact = _zip(phantom[:2])
    uploads.check([("study.zip", Flip(((len(intact) // 4, 0x55),)).apply(intact))])  # in the first member's data
    assert uploads.tally == {400: 1} and "ct/CT_0001.dcm" in uploads.last["detail"], uploads.last
    uploads.tally.clear()
    # FUZZ_SECONDS=120: a flipped byte in the central directory made zipfile quote 2,000 characters of raw header.
    uploads.check([("flipped.zip", Flip(((27, 3),)).apply(intact))])
    assert uploads.tally == {400: 1} and len(uploads.last["detail"]) < 400, uploads.last


def test_random_bytes_and_damaged_zips_get_a_clear_refusal(phantom, uploads):
    intact = _zip(phantom[:2])

    @fuzz_settings
    @given(
        st.one_of(
            st.binary(max_size=2048).map(lambda b: ("random.dcm", b)),
            st.binary(max_size=2048).map(lambda b: ("random.zip", b)),
            st.binary(max_size=300).map(lambda b: ("preamble.dcm", bytes(128) + b"DICM" + b)),
            st.lists(st.tuples(st.integers(0, len(intact) - 1), st.integers(1, 255)), min_size=1, max_size=4).map(
                lambda changes: ("flipped.zip", Flip(tuple(changes)).apply(intact))
            ),
            st.integers(0, len(intact) - 1).map(lambda n: ("cut.zip", intact[:n])),
        )
    )
    def upload_garbage(upload):
        uploads.check([upload])

    _report("random bytes and damaged zips", fuzz(upload_garbage, seconds=FUZZ_SECONDS / 2), uploads.tally)


def test_the_listener_files_or_quarantines_every_mutated_arrival(phantom, world, media, tmp_path):
    """The C-STORE path (file_arrivals, as the listener calls it): no exception escapes, every file is either
    stored or held in quarantine with a reason, and a refused series stores nothing."""
    phantom_patient(world)
    spool = tmp_path / "spool"
    tally: Counter = Counter()

    @fuzz_settings
    @given(st.data(), st.integers(0, len(phantom) - 1))
    def arrive_mutated(data, index):
        mutation: Mutation = data.draw(mutations(phantom[index][1]), label="mutation")
        shutil.rmtree(spool, ignore_errors=True)
        spool.mkdir()
        paths = []
        for n, (_, content) in enumerate(phantom):
            paths.append(spool / f"{n:02d}.dcm")
            paths[-1].write_bytes(mutation.apply(content) if n == index else content)
        before = _rows()
        with transaction.atomic():
            outcomes = file_arrivals(paths, source="dicom", calling_ae="FUZZER")
            after = _rows()
            held = list(QuarantinedStudy.objects.values_list("file_count", flat=True))
            transaction.set_rollback(True)
        shutil.rmtree(media, ignore_errors=True)
        assert sum(outcome.files for outcome in outcomes) == len(paths)
        stored = sum(outcome.files for outcome in outcomes if outcome.patient)
        tally["stored" if stored == len(paths) else "quarantined"] += 1
        assert after["Instance"] - before["Instance"] == stored
        assert sum(held) == len(paths) - stored
        assert all(outcome.message and "Traceback" not in outcome.message for outcome in outcomes)

    _report("listener arrivals", fuzz(arrive_mutated, seconds=FUZZ_SECONDS / 2), tally)
