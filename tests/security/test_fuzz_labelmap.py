"""Fuzzing the contour-save decoder: the pure labelmap codec, and the autosave endpoint that feeds it.

The codec: any labelmap survives encode → decode; any other body is refused with LabelmapError (never another
exception, never a wrong array); a zlib bomb is refused without being inflated. The endpoint: random and
damaged bodies, content types, encodings and headers get 201/200 or a 4xx JSON with a message, never a 500,
and a refused save creates no ContourVersion and no audit entry. Each example runs in a savepoint that is
rolled back, so every save meets the same case with no version yet. The autosave target runs for FUZZ_SECONDS,
the two codec targets (thousands of examples a second) for an eighth of it.
"""

import struct
import tracemalloc
import uuid
import zlib
from collections import Counter

import numpy as np
import pytest
from django.db import transaction
from hypothesis import given, note
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from delineation.labelmap_codec import BYTES_PER_RUN, LabelmapError, decode, encode
from delineation.models import ContourVersion
from delineation.parsers import LABELMAP_TYPE
from tests.delineation.helpers import case_in_arm
from tests.security.fuzzing import FUZZ_SECONDS, fuzz, fuzz_settings
from trial.models import AuditEntry

GRID = (6, 32, 32)  # the phantom CT below: small, so a valid save is quick


class Body(bytes):
    """A request body that a failing example prints by size, not byte by byte."""

    def __repr__(self) -> str:
        return bytes.__repr__(self) if len(self) <= 96 else f"Body({bytes(self[:48])!r}… {len(self):,} bytes)"


def zlib_bomb(size: int) -> bytes:
    """A valid zlib stream of `size` zero bytes (a multiple of 1 MiB), built without holding them."""
    chunk = bytes(1 << 20)
    compressor = zlib.compressobj(9)
    first = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)  # after a full flush: the same
    final = compressor.flush()[:-4]
    return first + again * (size // len(chunk) - 1) + final + struct.pack(">I", (size % 65521) << 16 | 1)


BOMB = Body(zlib_bomb(1 << 30))  # 1 GiB of zeros in about 1 MB


def runs(pairs) -> bytes:
    return zlib.compress(np.asarray(pairs, dtype="<u4").tobytes())


# ---- the pure decoder ------------------------------------------------------------------------------------------

shapes = st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 9))


def test_any_labelmap_survives_encode_and_decode():
    count = Counter()

    @fuzz_settings
    @given(st.integers(1, 255), shapes.flatmap(lambda shape: arrays(np.uint8, shape)), st.booleans())
    def round_trip(n_segments, labels, sparse):
        labels = (labels.astype(np.uint16) % (n_segments + 1)).astype(np.uint8)
        if sparse:  # contours are mostly background: long runs, as on a real grid
            labels[labels < labels.max()] = 0
        decoded = decode(encode(labels), labels.shape, n_segments)
        count["examples"] += 1
        assert decoded.dtype == np.uint8 and decoded.shape == labels.shape and np.array_equal(decoded, labels)

    fuzz(round_trip, seconds=FUZZ_SECONDS / 8)
    print(f"\ncodec round trip: {count['examples']} examples")


def _refused_or_exact(blob: bytes, shape, n_segments: int) -> str:
    """decode gives a labelmap that encodes back to the same runs, or a LabelmapError with a message."""
    try:
        labels = decode(blob, shape, n_segments)
    except LabelmapError as exc:
        assert str(exc)
        return "refused"
    assert labels.shape == shape and labels.max(initial=0) <= n_segments
    assert zlib.decompress(encode(labels)) == zlib.decompress(blob)  # only maximal runs are accepted
    return "accepted"


def test_random_and_damaged_bodies_are_refused_by_the_decoder_with_a_message():
    valid = encode(np.pad(np.ones((2, 3, 4), np.uint8), 1))  # grid (4, 5, 6)
    shape = (4, 5, 6)
    count = Counter()
    pair = st.tuples(st.sampled_from([0, 1, 2, 60, 119, 120, 121, 0xFFFFFFFF, 0x80000000]) | st.integers(0, 2**32 - 1),
                     st.integers(0, 3) | st.integers(0, 2**32 - 1))  # fmt: skip
    bodies = st.one_of(
        st.binary(max_size=256),
        st.binary(max_size=256).map(zlib.compress),  # valid zlib, random runs
        st.lists(pair, max_size=12).map(runs),  # valid zlib of whole pairs: reaches the run checks
        st.lists(st.integers(0, 255), min_size=1, max_size=4).map(lambda xs: zlib.compress(bytes(xs))),
        st.integers(0, len(valid) - 1).map(lambda n: valid[:n]),
        st.tuples(st.integers(0, len(valid) - 1), st.integers(1, 255)).map(
            lambda f: valid[: f[0]] + bytes([valid[f[0]] ^ f[1]]) + valid[f[0] + 1 :]
        ),
        st.binary(min_size=1, max_size=16).map(lambda junk: valid + junk),
        st.binary(max_size=64).map(lambda b: zlib.compress(b, 0)),  # stored blocks
    )

    @fuzz_settings
    @given(bodies, st.integers(1, 3))
    def damaged(blob, n_segments):
        count[_refused_or_exact(blob, shape, n_segments)] += 1

    fuzz(damaged, seconds=FUZZ_SECONDS / 8)
    print(f"\ncodec damaged bodies: {dict(count)}")


def test_a_zlib_bomb_is_refused_without_inflating_it():
    """1 GiB of zeros in about 1 MB: decoding stops after 8 bytes a voxel of the grid, allocating little."""
    tracemalloc.start()
    try:
        with pytest.raises(LabelmapError, match="inflates to more than"):
            decode(BOMB, GRID, 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < BYTES_PER_RUN * np.prod(GRID) + (4 << 20), f"peak {peak:,} bytes"


def test_huge_runs_are_refused_before_anything_is_allocated():
    tracemalloc.start()
    try:
        for pairs in ([0xFFFFFFFF, 0], [0xFFFFFFFF, 0, 0xFFFFFFFF, 1], [2**31, 1, 2**31, 0]):
            with pytest.raises(LabelmapError, match="the runs cover"):
                decode(runs(pairs), GRID, 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"peak {peak:,} bytes"


# ---- the autosave endpoint -------------------------------------------------------------------------------------


@pytest.fixture
def case(world, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODEL_ROOT = tmp_path / "models"
    return case_in_arm(world, "manual", tmp_path / "phantom", rows=GRID[1], slices=GRID[0])


def _url(case) -> str:
    return f"/api/v1/delineation/cases/{case.patient.pk}/versions/"


def _counts() -> tuple[int, int]:
    return ContourVersion.objects.count(), AuditEntry.objects.count()


def _save(client, case, body: bytes, content_type: str, headers: dict):
    before = _counts()
    with transaction.atomic():
        response = client.generic("POST", _url(case), body, content_type=content_type, **headers)
        after = _counts()
        transaction.set_rollback(True)
    return response, before, after


def _check(response, before, after) -> None:
    status = response.status_code
    assert status in (200, 201) or 400 <= status < 500, (status, response.content[:300])
    if status == 201:
        assert after[0] == before[0] + 1
        return
    detail = response.json()["detail"]
    note(f"{status}: {detail}")
    assert isinstance(detail, str) and len(detail) > 10
    assert after == before, f"a refused save left rows: {before} → {after}"


latin1_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=40)
header_values = {
    "HTTP_X_BASE_VERSION": st.one_of(
        st.just("0"), st.integers(-(2**70), 2**70).map(str), latin1_text, st.sampled_from(["", " 0 ", "0x0", "1e3"])
    ),
    "HTTP_X_SAVE_ID": st.one_of(st.uuids().map(str), latin1_text, st.uuids().map(lambda u: u.hex.upper())),
    "HTTP_X_SESSION": st.one_of(st.integers(-(2**70), 2**70).map(str), latin1_text),
    "HTTP_CONTENT_ENCODING": st.sampled_from(["gzip", "deflate", "br", "identity", "x-unknown"]),
    "HTTP_X_LABELMAP_SHAPE": st.sampled_from(["6,32,32", "4294967295,4294967295,4294967295", "-1,0,1", "x"]),
    "CONTENT_LENGTH": st.sampled_from(["0", "-1", "x", ""]),  # a claim beyond the body: see the test below
}
content_types = st.one_of(
    st.sampled_from([
        LABELMAP_TYPE, f"{LABELMAP_TYPE}; charset=utf-8", LABELMAP_TYPE.upper(), "application/octet-stream",
        "application/json", "multipart/form-data; boundary=xyz", "multipart/form-data",
        "application/x-www-form-urlencoded", "text/plain", "", "application/vnd.contourtrial.labelmap+zip",
    ]),
    latin1_text,
)  # fmt: skip


@st.composite
def autosave_bodies(draw) -> bytes:
    return Body(draw(_bodies()))


@st.composite
def _bodies(draw) -> bytes:
    kind = draw(st.sampled_from(["valid", "shape", "random", "zlib", "truncated", "trailing", "runs", "bomb"]))
    if kind in ("valid", "shape", "truncated", "trailing"):
        shape = GRID if kind != "shape" else draw(st.sampled_from([(6, 32, 31), (32, 32, 6), (1, 1, 1), (7, 32, 32)]))
        labels = np.zeros(shape, np.uint8)
        z, y, x = (draw(st.integers(0, n - 1)) for n in shape)
        labels[z, y : y + draw(st.integers(0, 8)), x : x + draw(st.integers(0, 8))] = draw(st.integers(0, 3))
        blob = encode(labels)
        if kind == "truncated":
            return blob[: draw(st.integers(0, len(blob) - 1))]
        return blob + draw(st.binary(min_size=1, max_size=8)) if kind == "trailing" else blob
    if kind == "random":
        return draw(st.binary(max_size=512))
    if kind == "zlib":
        return zlib.compress(draw(st.binary(max_size=512)))
    if kind == "runs":
        lengths = st.integers(0, 2**32 - 1) | st.sampled_from([1, 6144, 6143, 2**31])
        return runs(draw(st.lists(st.tuples(lengths, st.integers(0, 3)), max_size=6)))
    return BOMB


def test_autosave_answers_every_body_and_header_with_a_status_a_person_can_act_on(world, case):
    client = world.client(world.physician)
    tally: Counter = Counter()

    @fuzz_settings
    @given(
        autosave_bodies(),
        st.one_of(st.just(LABELMAP_TYPE), st.just(LABELMAP_TYPE), content_types),
        st.uuids(),
        st.fixed_dictionaries({}, optional=header_values),
        st.sets(st.sampled_from(["HTTP_X_BASE_VERSION", "HTTP_X_SAVE_ID"])),
    )
    def autosave(body, content_type, save_id, changed, missing):
        headers = {"HTTP_X_BASE_VERSION": "0", "HTTP_X_SAVE_ID": str(save_id), **changed}
        for name in missing:
            headers.pop(name)
        response, before, after = _save(client, case, body, content_type, headers)
        tally[response.status_code] += 1
        _check(response, before, after)

    batches = fuzz(autosave)
    print(f"\nautosave: {sum(tally.values())} examples in {batches} batches, answers {dict(sorted(tally.items()))}")


def test_a_bomb_sent_to_autosave_is_refused_without_inflating_it(world, case):
    client = world.client(world.physician)
    headers = {"HTTP_X_BASE_VERSION": "0", "HTTP_X_SAVE_ID": str(uuid.uuid4())}
    tracemalloc.start()
    try:
        response, before, after = _save(client, case, BOMB, LABELMAP_TYPE, headers)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 400 and "inflates to more than" in response.json()["detail"]
    assert after == before
    assert peak < 64 << 20, f"peak {peak:,} bytes for a 1 GiB bomb"


def test_a_body_over_the_request_limit_is_refused_naming_it_even_before_it_is_read(world, case, settings):
    """A real 2 MB body over a 1 MB limit; then a Content-Length over the limit on a 16-byte body, where the test
    client fails loudly if the server reads past the body, so a 4xx means the claim alone was refused."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1 << 20
    client = world.client(world.physician)
    for body, claimed in ((bytes(2 << 20), {}), (b"x" * 16, {"CONTENT_LENGTH": str((1 << 20) + 1)})):
        headers = {"HTTP_X_BASE_VERSION": "0", "HTTP_X_SAVE_ID": str(uuid.uuid4()), **claimed}
        response, before, after = _save(client, case, body, LABELMAP_TYPE, headers)
        assert response.status_code in (400, 413) and "(1 MB)" in response.json()["detail"], response.content[:300]
        assert after == before


def test_headers_and_query_numbers_that_once_answered_500_are_a_400(world, case):
    """Found by the fuzzing: X-Session went straight into a primary-key lookup (':' answered 500); and '²' passes
    str.isdigit() but not int(), which ?version= and ?segment= relied on."""
    client = world.client(world.physician)
    body = encode(np.zeros(GRID, np.uint8))
    for session in (":", "²", "1.0", "-3"):
        headers = {"HTTP_X_BASE_VERSION": "0", "HTTP_X_SAVE_ID": str(uuid.uuid4()), "HTTP_X_SESSION": session}
        response, before, after = _save(client, case, body, LABELMAP_TYPE, headers)
        assert response.status_code == 400 and "X-Session" in response.json()["detail"], response.content[:300]
        assert after == before
    for method, query in (("GET", "labelmap/?version=²"), ("GET", "labelmap/?version=1e3"),
                          ("POST", "interpolate/?segment=²")):  # fmt: skip
        url = f"/api/v1/delineation/cases/{case.patient.pk}/{query}"
        response = client.generic(method, url, body, content_type=LABELMAP_TYPE)
        assert response.status_code == 400 and "not '" in response.json()["detail"], response.content[:300]
