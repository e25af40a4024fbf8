"""PostgreSQL restarted during saves: the browser retries; nothing is lost and no version is made twice.

Real pieces only: gunicorn (persistent connections, DB_CONN_MAX_AGE) against a private PostgreSQL cluster that
the test restarts and crashes, and Debian Chromium painting in the physician's workstation while it does. The
trial data is made in the test database and copied into the private cluster.
"""

import itertools
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager

import psycopg2
import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection

from delineation import labelmap_codec
from tests.browser import chromium_page, login
from tests.conftest import PASSWORD, World
from tests.delineation.helpers import case_in_arm
from tests.processes import ROOT, stop_process_group, wait_for
from tests.reliability.postgres_cluster import free_port, private_cluster, wait_until_accepting

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.slow, pytest.mark.reliability]

READY = '#workstation[data-ready="true"]'
DATABASE = "ct_restart"


@pytest.fixture(autouse=True)
def _storage(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODEL_ROOT = tmp_path / "models"


@contextmanager
def gunicorn(database_url: str, settings, var_dir):
    """The app as production runs it: gunicorn, two sync workers, each keeping its database connection."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DB_CONN_MAX_AGE": "600",
        "CONTOURTRIAL_TESTING": "1",
        "CONTOURTRIAL_VAR_DIR": str(var_dir),
        "STORAGE_DIR": str(settings.MEDIA_ROOT),
        "MODEL_DIR": str(settings.MODEL_ROOT),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    }
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "--link", "-v0"], cwd=ROOT, env=env,
                   check=True)  # fmt: skip
    port = free_port()
    log = (var_dir / "gunicorn.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--access-logfile", "-"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _status(base + "/accounts/login/") == 200, timeout=60, what="gunicorn")
        yield base
    finally:
        stop_process_group(server, timeout=30)
        log.close()


def _status(url: str, headers=None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


class SaveLog:
    """Every autosave POST the page sends and what it got back: the browser's own view of its saves."""

    def __init__(self, page):
        self.answers, self.failed = [], []
        page.on("response", self._answer)
        page.on("requestfailed", self._failed)

    @staticmethod
    def _is_save(request) -> bool:
        return request.method == "POST" and request.url.endswith("/versions/")

    def _answer(self, response):
        if self._is_save(response.request):
            self.answers.append(response)

    def _failed(self, request):
        if self._is_save(request):
            self.failed.append(request.headers.get("x-save-id"))

    def with_status(self, *codes):
        return [r for r in self.answers if r.status in codes]

    def acknowledged(self) -> list[tuple[int, dict]]:
        return [(response.status, response.json()) for response in self.with_status(200, 201)]


def stroke(page, row: float, column: float, half_length: float):
    """A horizontal brush stroke through voxel (row, column) of the axial slice shown, by real mouse events."""
    start = page.evaluate("([r, c]) => window.contourTrial.axialPointOnPage(r, c)", [row, column - half_length])
    end = page.evaluate("([r, c]) => window.contourTrial.axialPointOnPage(r, c)", [row, column + half_length])
    page.mouse.move(start["x"], start["y"])
    page.mouse.down()
    page.mouse.move(end["x"], end["y"], steps=8)
    page.mouse.up()


class Painter:
    """Paints on a fresh axial slice each time, so every stroke changes the labelmap (and its sha256)."""

    def __init__(self, page, shape):
        self.page, self.shape, self.next_slice = page, shape, 2

    def paint(self):
        z = self.next_slice
        self.next_slice += 1
        assert z < self.shape[0] - 1, "out of slices to paint on"
        self.page.evaluate("z => window.contourTrial.showAxialSlice(z)", z)
        self.page.wait_for_function("z => window.contourTrial.axialSlice() === z", arg=z)
        rows, columns = self.shape[1:]
        stroke(self.page, rows / 2, columns / 2, columns / 8)


def save_state(page) -> tuple[str, int]:
    state = page.get_attribute("#save-state", "data-state")
    return state, int(page.get_attribute("#save-state", "data-version"))


def wait_saved(page, at_least: int, timeout=60_000) -> int:
    page.wait_for_function(
        """n => { const s = document.querySelector('#save-state');
                  return s.dataset.state === 'saved' && Number(s.dataset.version) >= n; }""",
        arg=at_least,
        timeout=timeout,
    )
    return save_state(page)[1]


def stored_versions(cluster, patient_pk) -> list[dict]:
    db = psycopg2.connect(cluster.url(DATABASE))
    try:
        with db.cursor() as cursor:
            cursor.execute(
                "SELECT number, save_id::text, sha256, labelmap, shape, segments FROM delineation_contourversion "
                "WHERE patient_id = %s AND stream = 'delineation' ORDER BY number",
                [patient_pk],
            )
            rows = cursor.fetchall()
    finally:
        db.close()
    keys = ("number", "save_id", "sha256", "labelmap", "shape", "segments")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def test_autosave_through_a_restart_a_crash_and_a_lost_answer(settings, tmp_path):
    world = World()
    hasher = PBKDF2PasswordHasher()  # gunicorn runs the production hashers, not the suite's fast MD5
    type(world.physician).objects.filter(pk=world.physician.pk).update(password=hasher.encode(PASSWORD, hasher.salt()))
    case = case_in_arm(world, "manual", tmp_path / "phantom", seed=41, rows=64, slices=24)
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    with private_cluster() as cluster:
        cluster.copy_database(connection.settings_dict, DATABASE)
        with gunicorn(cluster.url(DATABASE), settings, var_dir) as base, chromium_page() as page:
            saves = SaveLog(page)
            login(page, base, world.physician.username, PASSWORD)
            page.goto(f"{base}/delineation/cases/{case.patient.pk}/")
            page.wait_for_selector(READY, timeout=120_000)
            page.keyboard.press("b")
            painter = Painter(page, case.truth.shape)
            for _ in range(3):  # a few saves: both gunicorn workers now hold a database connection
                painter.paint()
                page.evaluate("window.contourTrial.flushSave()")
            acknowledged = wait_saved(page, 3)

            # 1. A fast restart between saves kills the idle connections the workers keep; the health check
            # notices and reconnects, so the next saves succeed at once.
            cluster.restart()
            for _ in range(2):
                painter.paint()
                page.evaluate("window.contourTrial.flushSave()")
            acknowledged = wait_saved(page, acknowledged + 2)
            assert not saves.with_status(500, 503), "a restart between requests must not fail a request"

            # 2. A crash while the physician paints: saves answer 503 JSON + Retry-After, the page retries with
            # the same save id, and everything painted meanwhile is saved once the server is back.
            cluster.stop("immediate")
            painter.paint()
            page.evaluate("window.contourTrial.flushSave()")  # returns with the save pending a retry
            wait_for(lambda: saves.with_status(503), timeout=30, what="a 503 while the database is down")
            # Meanwhile, with the page's cookies: a page answers 503 that reloads itself, the API 503 JSON.
            worklist = page.request.get(f"{base}/delineation/")
            worklist_page = worklist.text()
            api = page.request.get(f"{base}/api/v1/delineation/cases/{case.patient.pk}/versions/")
            api_body = api.json()
            painter.paint()  # painted while the retries fail
            assert save_state(page)[0] == "error"
            time.sleep(3)
            cluster.start()
            wait_until_accepting(cluster)
            acknowledged = wait_saved(page, acknowledged + 1)
            page.evaluate("window.contourTrial.flushSave()")
            acknowledged = wait_saved(page, acknowledged)

            # 3. A save commits but its answer is lost (the connection drops on the way back): the retry
            # carries the same save id and gets the version already made, not a second one.
            lost = []

            def lose_the_answer(route):
                if route.request.method != "POST" or lost:
                    route.continue_()
                    return
                route.fetch()  # the server stores the version ...
                lost.append(route.request.headers["x-save-id"])
                route.abort("connectionreset")  # ... and the page never hears of it

            page.route("**/versions/", lose_the_answer)
            painter.paint()
            page.evaluate("window.contourTrial.flushSave()")
            acknowledged = wait_saved(page, acknowledged + 1)
            painter.paint()
            page.evaluate("window.contourTrial.flushSave()")
            final = wait_saved(page, acknowledged + 1)

            digest = page.evaluate("window.contourTrial.labelmapDigest()")
            unavailable = [r.headers for r in saves.with_status(503)]  # the page reads no body of a 503
            answers = saves.acknowledged()
            assert not saves.with_status(500)
        versions = stored_versions(cluster, case.patient.pk)
    log = (var_dir / "gunicorn.log").read_text()

    numbers = [v["number"] for v in versions]
    assert numbers == list(range(1, final + 1)), "version numbers are contiguous and end at what the page shows"
    assert len({v["save_id"] for v in versions}) == len(versions)
    shas = [v["sha256"] for v in versions]
    assert all(a != b for a, b in itertools.pairwise(shas)), "no save was stored twice in a row"
    latest = versions[-1]
    labels = labelmap_codec.decode(bytes(latest["labelmap"]), tuple(latest["shape"]), latest["segments"])
    assert (digest["nonzero"], digest["weighted"]) == labelmap_codec.digest(labels), "the page shows what is saved"
    by_number = {v["number"]: v for v in versions}
    for _status, answer in answers:  # every save the browser saw acknowledged is stored as it was acknowledged
        assert by_number[answer["number"]]["save_id"] == answer["save_id"]
        assert by_number[answer["number"]]["sha256"] == answer["sha256"]
    for headers in unavailable:
        assert headers["content-type"] == "application/json" and headers["retry-after"] == "5"
    assert api.status == 503 and api.headers["retry-after"] == "5" and api_body["code"] == "database_unavailable"
    assert worklist.status == 503 and worklist.headers["retry-after"] == "5"
    assert worklist.headers["content-type"].startswith("text/html") and "reloads itself" in worklist_page
    assert len(lost) == 1 and sum(v["save_id"] == lost[0] for v in versions) == 1
    assert [status for status, answer in answers if answer["save_id"] == lost[0]] == [200], (
        "the retry of the save whose answer was lost found the version it had made"
    )
    assert "Internal Server Error" not in log
