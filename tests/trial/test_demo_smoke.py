"""`make demo`'s script on a fresh directory: it migrates, seeds, serves and runs a worker."""

import csv
import http.cookiejar
import io
import json
import os
import re
import signal
import socket
import subprocess
import urllib.parse
import urllib.request

import pytest

from tests.processes import ROOT, wait_for

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Browser:
    """A cookie-keeping HTTP client that posts forms with their CSRF token, as a browser would."""

    def __init__(self, base):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path) -> str:
        with self.opener.open(self.base + path, timeout=20) as response:
            return response.read().decode()

    def post(self, path, fields, referer_path) -> str:
        page = self.get(referer_path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token}).encode()
        request = urllib.request.Request(self.base + path, data=data, headers={"Referer": self.base + referer_path})
        with self.opener.open(request, timeout=20) as response:
            return response.read().decode()


def _finished_jobs(browser) -> list:
    jobs = json.loads(browser.get("/api/v1/inference/jobs/"))["results"]
    return jobs if jobs and all(job["status"] in ("succeeded", "failed") for job in jobs) else []


def test_demo_serves_seeded_roles_and_its_worker_runs_tasks(tmp_path):
    port = _free_port()
    env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "CONTOURTRIAL_TESTING"}
    }
    dicom_port = _free_port()
    env.update({"CONTOURTRIAL_VAR_DIR": str(tmp_path), "PORT": str(port), "DICOM_PORT": str(dicom_port)})
    log = (tmp_path / "demo.log").open("w")
    demo = subprocess.Popen(["scripts/demo.sh"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:

        def up():
            try:
                return urllib.request.urlopen(base + "/accounts/login/", timeout=2).status == 200
            except OSError:
                return False

        wait_for(up, timeout=300, what="the demo server (migrate, seed with phantom images)")
        output = (tmp_path / "demo.log").read_text()
        for username in ("coordinator", "physician", "panel", "statistician", "datamanager"):
            assert f"{username}-demo" in output

        browser = Browser(base)
        browser.post(
            "/accounts/login/", {"username": "datamanager", "password": "datamanager-demo"}, "/accounts/login/"
        )
        assert "Data manager" in browser.get("/")
        assert "HN-0001" in browser.get("/patients/")
        imaging = browser.get("/imaging/patients/1/")
        assert "PET" in imaging and "512×512" in imaging and "complete since" in imaging
        browser.post("/audit/verify/", {}, "/audit/")
        wait_for(lambda: "intact (" in browser.get("/audit/"), timeout=60, what="the demo worker's verification")
        echo = subprocess.run(["echoscu", "-aec", "CONTOURTRIAL", "127.0.0.1", str(dicom_port)], capture_output=True,
                              timeout=30)  # fmt: skip
        assert echo.returncode == 0, "the demo's DICOM listener answers C-ECHO"
        css = urllib.request.urlopen(base + "/static/css/app.css", timeout=5)
        assert css.status == 200
        # the AI-arm patient's proposal, made by the demo's inference worker with the bundled model
        jobs = wait_for(lambda: _finished_jobs(browser), timeout=900, interval=5, what="the demo's AI proposal")
        assert jobs[0]["status"] == "succeeded", jobs[0]["failure_reason"]
        assert jobs[0]["model"].startswith("contourtrial-demo-gtv-unet:1.0") and jobs[0]["contour"]["volume_ml"] > 1
        assert "contourtrial-demo-gtv-unet" in browser.get("/admin/inference/modelversion/")
        _physicians_can_open_their_imaged_cases(base)
        _the_panel_has_a_blinded_review_case(base)
        _statisticians_get_the_simulated_trial(base)
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        demo.wait(timeout=30)
        log.close()


def _physicians_can_open_their_imaged_cases(base):
    """Both imaged demo patients are ready on their physician's worklist and open in the workstation."""
    ready = []
    for username in ("physician", "physician_ode"):
        browser = Browser(base)
        browser.post("/accounts/login/", {"username": username, "password": f"{username}-demo"}, "/accounts/login/")
        cases = json.loads(browser.get("/api/v1/delineation/cases/"))
        for case in (c for c in cases if c["status"] == "ready"):
            page = browser.get(case["url"])
            assert 'id="workstation"' in page and "/static/viewer/viewer" in page
            manifest = json.loads(browser.get(f"/api/v1/delineation/cases/{case['id']}/"))
            assert len(manifest["ct"]["image_ids"]) >= 120 and manifest["pet"]["suv_factors"]
            ready.append(("proposal" in manifest, case["trial_number"]))
    assert sorted(arm for arm, _ in ready) == [False, True], ready  # one manual-arm, one AI-arm case
    script = re.search(r'src="(/static/viewer/viewer[^"]*\.js)"', page).group(1)
    bundle = urllib.request.urlopen(base + script, timeout=10)
    assert bundle.status == 200 and "javascript" in bundle.headers["Content-Type"]


def _the_panel_has_a_blinded_review_case(base):
    """seed_demo_review submitted one GTV; it reached a demo panel member under a code, with nothing else."""
    found = []
    for username in ("panel", "panel2"):
        browser = Browser(base)
        browser.post("/accounts/login/", {"username": username, "password": f"{username}-demo"}, "/accounts/login/")
        for case in json.loads(browser.get("/api/v1/review/cases/"))[:3]:
            manifest = json.loads(browser.get(f"/api/v1/review/cases/{case['code']}/"))
            assert manifest["title"] == case["code"] and "trial_number" not in manifest and "proposal" not in manifest
            assert 'id="workstation"' in browser.get(case["url"])
            found.append(case["code"])
    assert found, "the submitted demo case reached a panel member"


def _statisticians_get_the_simulated_trial(base):
    """The demo's simulated patients are in the endpoint data (blinded A/B) and on the dashboard."""
    browser = Browser(base)
    browser.post("/accounts/login/", {"username": "statistician", "password": "statistician-demo"}, "/accounts/login/")
    rows = list(csv.DictReader(io.StringIO(browser.get("/endpoints/download/endpoints/csv/"))))
    assert len([r for r in rows if r["approved_at"]]) >= 8 and {r["allocation"] for r in rows} <= {"A", "B"}
    manager = Browser(base)
    manager.post("/accounts/login/", {"username": "datamanager", "password": "datamanager-demo"}, "/accounts/login/")
    assert "Accrual" in manager.get("/dashboards/coordinator/")
