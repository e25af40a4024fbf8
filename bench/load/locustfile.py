"""Locust users of the load test; run_load.py starts locust on this file with the plan seed.py wrote.

Each user does what the browser does (frontend/src/workstation.ts, autosave.ts, timing.ts):
- PhysicianUser: signs in through the login form (CSRF), opens the worklist and their case (page, manifest,
  timed session, saved labelmap; with LOAD_IMAGES=1 also every CT and PET image, four at a time as the viewer
  streams them), then every 5 s edits the labelmap, autosaves it (zlib of uint32 runs, X-Save-Id, X-Base-Version
  = the version the last save answered; a failed save is retried with the same id and body; a 409 reloads the
  case) and sends the batch of interaction events.
- PanelUser: the same on their blinded review case, starting from the submitted GTV.
- CoordinatorUser: signs in, then every 2–5 s opens the home page, the patient list, a patient, the coordinator
  dashboard, the enrolment form or the patients API.
Every acknowledged save (2xx) is recorded with the body sent; at the end the samples, errors and
acknowledgements go to $LOAD_RESULTS for verify.py and report.py.
"""

import base64
import hashlib
import json
import os
import random
import re
import time
import uuid
from collections import Counter
from pathlib import Path

import gevent
import numpy as np
from gevent.pool import Pool
from locust import HttpUser, between, constant_pacing, events, task

from delineation import labelmap_codec  # pure numpy: the server's own wire codec

PLAN = json.loads(Path(os.environ["LOAD_PLAN"]).read_text())
TRUTH = np.load(PLAN["truth"])
GTV_SLICES = np.flatnonzero(TRUTH.any(axis=(1, 2)))
LABELMAP_TYPE = "application/vnd.contourtrial.labelmap"
RETRY_DELAYS_S = (1, 2, 4, 8, 15, 30)  # autosave.ts retryDelaysMs
IMAGE_CONNECTIONS = 4  # images fetched at once while a case opens
WITH_IMAGES = os.environ.get("LOAD_IMAGES") == "1"  # off: the browser has the volumes cached (max-age=3600)
ACCOUNTS = {role: iter(PLAN[role]) for role in ("physicians", "panel", "coordinators")}

SAMPLES: list = []  # (name, seconds since start, response ms, ok)
ERRORS: Counter = Counter()
ACKS: list = []
COUNTS: Counter = Counter()
TIMES = {"start": time.monotonic(), "spawned": None, "opened": []}


@events.test_start.add_listener
def _started(**_kwargs):
    TIMES["start"] = time.monotonic()


@events.spawning_complete.add_listener
def _spawned(user_count, **_kwargs):
    TIMES["spawned"] = time.monotonic() - TIMES["start"]


@events.request.add_listener
def _record(request_type, name, response_time, response_length, exception, **_kwargs):
    SAMPLES.append((name, round(time.monotonic() - TIMES["start"], 3), round(response_time, 2), exception is None))
    if exception is not None:
        ERRORS[f"{name}: {exception}"[:400]] += 1


@events.user_error.add_listener
def _user_error(user_instance, exception, tb, **_kwargs):
    ERRORS[f"{type(user_instance).__name__} raised {type(exception).__name__}: {exception}"[:400]] += 1


@events.test_stop.add_listener
def _write_results(**_kwargs):
    results = {
        "samples": SAMPLES,
        "errors": dict(ERRORS),
        "acks": ACKS,
        "counts": dict(COUNTS),
        "spawned_at_s": TIMES["spawned"],
        "opened_at_s": TIMES["opened"],
        "duration_s": round(time.monotonic() - TIMES["start"], 1),
    }
    Path(os.environ["LOAD_RESULTS"]).write_text(json.dumps(results))


def _field(html: str, pattern: str) -> str:
    match = re.search(pattern, html)
    if match is None:
        raise AssertionError(f"no {pattern!r} in the page")
    return match.group(1)


class TrialUser(HttpUser):
    abstract = True
    role = ""

    def sign_in(self, username: str) -> None:
        """The login form, as a browser submits it: the form's CSRF token and the csrftoken cookie."""
        page = self.client.get("/accounts/login/", name="sign in: form")
        token = _field(page.text, r'name="csrfmiddlewaretoken" value="([^"]+)"')
        with self.client.post(
            "/accounts/login/",
            data={"csrfmiddlewaretoken": token, "username": username, "password": PLAN["password"], "next": ""},
            headers=self.origin("/accounts/login/"),
            allow_redirects=False,
            name="sign in: submit",
            catch_response=True,
        ) as response:
            if response.status_code != 302:
                response.failure(f"sign-in of {username} refused ({response.status_code})")

    def origin(self, path: str) -> dict:
        return {"Origin": self.host, "Referer": self.host + path}


class Workstation:
    """One open case in the viewer: its labelmap, base version, timed session and event queue."""

    def __init__(self, user: TrialUser, page_url: str, manifest_url: str, case: str):
        self.user, self.client, self.role = user, user.client, user.role
        self.page_url, self.manifest_url, self.case = page_url, manifest_url, case
        self.rng = np.random.default_rng(abs(hash(case)) % 2**32)

    def open(self, first: bool = True) -> None:
        """Page, manifest, timed session, the saved (or starting) labelmap and, on first opening, the images."""
        page = self.client.get(self.page_url, name=f"{self.role}: case page")
        self.csrf = _field(page.text, r'data-csrf-token="([^"]+)"')
        self.opened = time.monotonic()
        self.events: list = [{"t": 0.0, "kind": "open", "detail": {"url": self.page_url}}]
        self.pending_events: tuple[str, list] | None = None  # (X-Event-Batch, events) until the server has them
        manifest = self.client.get(self.manifest_url, headers={"Accept": "application/json"},
                                   name=f"{self.role}: manifest").json()  # fmt: skip
        urls = manifest["urls"]
        self.segments = len(manifest["segments"])
        self.versions_url = urls["versions"]
        session = self.client.post(urls["sessions"], data="{}", headers=self.json_headers(),
                                   name=f"{self.role}: start session").json()  # fmt: skip
        self.session = str(session["id"])
        self.events_url = urls["events_template"].replace("{id}", self.session)
        shape = tuple(manifest["ct"]["shape"])
        if manifest["latest_version"]:
            response = self.client.get(urls["labelmap"], name=f"{self.role}: saved labelmap")
            self.base = int(response.headers["X-Contour-Version"])
            self.labels = labelmap_codec.decode(response.content, shape, self.segments)
        elif urls.get("start_labelmap"):  # review: the submitted GTV, base version 0
            response = self.client.get(urls["start_labelmap"], name=f"{self.role}: starting labelmap")
            self.base = 0
            self.labels = labelmap_codec.decode(response.content, shape, self.segments)
        else:
            self.base, self.labels = 0, np.zeros(shape, np.uint8)
        if first and WITH_IMAGES:  # the viewer streams the volumes over a few connections at once
            series = [manifest[kind] for kind in ("ct", "pet") if manifest.get(kind)]
            images = [image_id.removeprefix("wadouri:") for s in series for image_id in s["image_ids"]]
            Pool(IMAGE_CONNECTIONS).map(lambda url: self.client.get(url, name=f"{self.role}: image"), images)
        if first:
            TIMES["opened"].append(round(time.monotonic() - TIMES["start"], 3))

    def json_headers(self) -> dict:
        return {"Content-Type": "application/json", "X-CSRFToken": self.csrf, **self.user.origin(self.page_url)}

    def now_ms(self) -> float:
        return round((time.monotonic() - self.opened) * 1000, 1)

    def edit(self) -> None:
        """A brush stroke: one slice of the GTV redrawn a few pixels off, now and then erased."""
        z = int(self.rng.choice(GTV_SLICES))
        if self.rng.random() < 0.1:
            self.labels[z] = 0
        else:
            shift = tuple(int(s) for s in self.rng.integers(-3, 4, size=2))
            self.labels[z] = np.roll(TRUTH[z], shift, axis=(0, 1))
        t = self.now_ms()
        moves = sorted(self.rng.uniform(max(0.0, t - 5000), t, size=int(self.rng.integers(8, 20))))
        self.events += [{"t": round(float(m), 1), "kind": "pointer", "detail": {"type": "move"}} for m in moves]
        self.events += [
            {"t": t, "kind": "pointer", "detail": {"type": "down", "button": 0}},
            {"t": t, "kind": "edit", "detail": {"tool": "brush", "slice": z}},
            {"t": t, "kind": "wheel", "detail": {"dy": int(self.rng.choice([-100, 100]))}},
        ]

    def autosave(self) -> None:
        """POST versions/ as autosave.ts does; retried unchanged on 5xx or a lost connection."""
        body = labelmap_codec.encode(self.labels)
        save = {  # the labelmap's sha256 is computed from `body` afterwards (verify.py), not on the loaded CPUs
            "role": self.role, "case": self.case, "save_id": str(uuid.uuid4()), "base": self.base,
            "body": base64.b64encode(body).decode(), "shape": list(self.labels.shape), "segments": self.segments,
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }  # fmt: skip
        headers = {
            "Content-Type": LABELMAP_TYPE, "X-CSRFToken": self.csrf, "X-Base-Version": str(save["base"]),
            "X-Save-Id": save["save_id"], "X-Session": self.session, **self.user.origin(self.page_url),
        }  # fmt: skip
        for attempt in range(len(RETRY_DELAYS_S) + 1):
            if attempt:
                COUNTS["autosave retries"] += 1
                gevent.sleep(RETRY_DELAYS_S[attempt - 1])
            with self.client.post(self.versions_url, data=body, headers=headers, name=f"{self.role}: autosave",
                                  catch_response=True) as response:  # fmt: skip
                status = response.status_code
                if status in (200, 201):
                    number = int(response.json()["number"])
                    ACKS.append({**save, "number": number, "status": status})
                    self.base = number
                    return
                if status == 409:
                    response.failure(f"409 {response.text[:200]}")
                    COUNTS["reloads after 409"] += 1
                    self.open(first=False)  # the browser stops autosaving; the physician reloads
                    return
                if status in (0, 408, 429) or status >= 500:
                    response.failure(f"{status}: {response.text[:200]}")
                    continue
                response.failure(f"refused {status}: {response.text[:200]}")  # retrying would not help
                return
        COUNTS["saves given up"] += 1

    def send_events(self) -> None:
        """The 5-s EventLog flush (timing.ts): a batch that failed on a 5xx is resent first, as it was and with the
        same X-Event-Batch, before newer events."""
        if self.pending_events is None:
            self.pending_events, self.events = (str(uuid.uuid4()), self.events), []
        batch_id, batch = self.pending_events
        headers = {**self.json_headers(), "X-Event-Batch": batch_id}
        with self.client.post(self.events_url, data=json.dumps({"events": batch}), headers=headers,
                              name=f"{self.role}: events", catch_response=True) as response:  # fmt: skip
            if response.status_code == 202:
                COUNTS["events acknowledged"] += int(response.json()["stored"])
                self.pending_events = None
                return
            response.failure(f"{response.status_code}: {response.text[:200]}")
            if not (response.status_code == 0 or response.status_code >= 500 or response.status_code == 429):
                self.pending_events = None  # refused for good


class PhysicianUser(TrialUser):
    role = "physician"
    fixed_count = int(os.environ.get("LOAD_PHYSICIANS", "0"))
    wait_time = constant_pacing(5)

    def on_start(self):
        account = next(ACCOUNTS["physicians"])
        self.sign_in(account["username"])
        self.client.get("/delineation/", name="physician: worklist")
        case = account["case_id"]
        self.workstation = Workstation(self, f"/delineation/cases/{case}/", f"/api/v1/delineation/cases/{case}/",
                                       str(case))  # fmt: skip
        self.workstation.open()

    @task
    def contour(self):
        self.workstation.edit()
        self.workstation.autosave()
        self.workstation.send_events()


class PanelUser(TrialUser):
    role = "panel"
    fixed_count = int(os.environ.get("LOAD_PANEL", "0"))
    wait_time = constant_pacing(5)

    def on_start(self):
        account = next(ACCOUNTS["panel"])
        self.sign_in(account["username"])
        self.client.get("/review/", name="panel: worklist")
        code = account["code"]
        self.workstation = Workstation(self, f"/review/cases/{code}/", f"/api/v1/review/cases/{code}/", code)
        self.workstation.open()

    @task
    def correct(self):
        self.workstation.edit()
        self.workstation.autosave()
        self.workstation.send_events()


class CoordinatorUser(TrialUser):
    role = "coordinator"
    fixed_count = int(os.environ.get("LOAD_COORDINATORS", "0"))
    wait_time = between(2, 5)
    patients = [case["case_id"] for case in PLAN["physicians"]]

    def on_start(self):
        self.sign_in(next(ACCOUNTS["coordinators"])["username"])
        self.home()  # where the sign-in lands

    @task(1)
    def home(self):
        self.client.get("/", name="coordinator: home")

    @task(3)
    def patient_list(self):
        self.client.get("/patients/", name="coordinator: patient list")

    @task(1)
    def randomised_patients(self):
        self.client.get("/patients/?status=randomised", name="coordinator: patient list (randomised)")

    @task(2)
    def patient(self):
        if self.patients:
            self.client.get(f"/patients/{random.choice(self.patients)}/", name="coordinator: patient")  # noqa: S311

    @task(3)
    def patients_api(self):
        self.client.get("/api/v1/patients/", headers={"Accept": "application/json"}, name="coordinator: patients API")

    @task(2)
    def dashboard(self):
        self.client.get("/dashboards/coordinator/", name="coordinator: dashboard")

    @task(1)
    def enrolment_form(self):
        self.client.get("/patients/enrol/", name="coordinator: enrolment form")
