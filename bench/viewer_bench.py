"""Delineation workstation benchmark in headless Debian Chromium on localhost (gunicorn + PostgreSQL).

A 512×512×150 phantom case (AI arm, the proposal is the phantom's GTV, so the labelmap is GTV-sized):
1. Opening the case: time from navigation start to the first rendered CT slice, to the whole CT and to the
   whole PET loaded, next to the reference of fetching every CT and PET instance file with plain `fetch`
   (transport only, no decoding or rendering) in the same page. Target: first slice < 2 s.
2. Autosave: round trip of a save of the GTV-sized labelmap (encode + POST + stored version acknowledged),
   and its payload size, next to the smallest authenticated POST the API has (one interaction event).
   Target: < 200 ms.

Run: `make bench-viewer` (BENCH_REPEATS, default 3). `--screenshots DIR` also writes the workstation
screenshots of the manual arm and of the AI arm with its uncertainty overlay (docs/img).
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="ct-viewer-bench-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/contourtrial_viewer_bench")
os.environ.setdefault("CONTOURTRIAL_TESTING", "1")
os.environ["CONTOURTRIAL_VAR_DIR"] = str(WORK / "var")
os.environ["STORAGE_DIR"] = str(WORK / "media")
os.environ["MODEL_DIR"] = str(WORK / "models")
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
READY = '#workstation[data-ready="true"]'

MARKS_JS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const mark = name => { const m = performance.getEntriesByName(name)[0]; return m ? m.startTime : null; };
  return {first_slice_ms: mark('ct-first-render'), ct_loaded_ms: mark('ct-loaded'), pet_loaded_ms: mark('pet-loaded'),
          ready_ms: mark('workstation-ready'), dom_ms: nav ? nav.domContentLoadedEventEnd : null};
}"""

FETCH_ALL_JS = """async ids => {
  const t0 = performance.now();
  let bytes = 0;
  const queue = ids.map(id => id.replace(/^wadouri:/, ''));
  async function worker() { while (queue.length) { const r = await fetch(queue.shift(), {cache: 'no-store'});
                                                   bytes += (await r.arrayBuffer()).byteLength; } }
  await Promise.all(Array.from({length: 6}, worker));
  return {ms: performance.now() - t0, bytes};
}"""

SMALL_POST_JS = """async ([url, csrf]) => {
  const t0 = performance.now();
  const r = await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRFToken': csrf},
                              body: JSON.stringify({events: [{t: performance.now(), kind: 'key'}]})});
  await r.json();
  return performance.now() - t0;
}"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ensure_database() -> None:
    name = os.environ["DATABASE_URL"].rsplit("/", 1)[1]
    for sql in (f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"):
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", sql], check=True, capture_output=True)


def seed():
    """Trial, users, an AI-arm case (GTV-sized proposal) and a manual-arm case, all 512×512×150."""
    import django

    django.setup()
    from django.core.management import call_command

    from tests.conftest import World
    from tests.delineation.helpers import case_in_arm, store_proposal
    from tests.inference.conftest import register_demo

    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)
    world = World()
    model = register_demo(world, active=False)
    ai = case_in_arm(world, "ai", WORK / "phantom-ai", seed=3, rows=512, slices=150)
    store_proposal(world, ai, ai.truth, model=model)
    manual = case_in_arm(world, "manual", WORK / "phantom-manual", seed=4, rows=512, slices=150)
    return world, ai, manual


def serve(port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--threads", "4", "--log-level", "warning"],
        cwd=ROOT, env={**os.environ, "ALLOWED_HOSTS": "127.0.0.1"},
    )  # fmt: skip
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=1)
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("gunicorn did not start")


def open_case(browser, base: str, patient, username: str):
    from tests.browser import login
    from tests.conftest import PASSWORD

    context = browser.new_context(viewport={"width": 1600, "height": 1000})  # a cold HTTP cache each time
    page = context.new_page()
    login(page, base, username, PASSWORD)
    page.goto(f"{base}/delineation/cases/{patient.pk}/")
    page.wait_for_selector(READY, timeout=300_000)
    page.wait_for_function("() => performance.getEntriesByName('pet-loaded').length > 0", timeout=300_000)
    return context, page


def measure(browser, base, world, ai) -> dict:
    opening, transport, saves, small_posts, payloads = [], [], [], [], []
    for _ in range(REPEATS):
        context, page = open_case(browser, base, ai.patient, world.physician.username)
        opening.append(page.evaluate(MARKS_JS))
        manifest = page.evaluate(
            "async url => (await fetch(url)).json()", f"/api/v1/delineation/cases/{ai.patient.pk}/"
        )
        transport.append(page.evaluate(FETCH_ALL_JS, manifest["ct"]["image_ids"] + manifest["pet"]["image_ids"]))
        csrf = page.get_attribute("#workstation", "data-csrf-token")
        session = page.evaluate("window.contourTrial.sessionId")
        for _ in range(5):
            result = page.evaluate("window.contourTrial.timedSave()")
            saves.append(result["roundTripMs"])
            payloads.append(result["bytes"])
            small_posts.append(page.evaluate(SMALL_POST_JS, [f"/api/v1/delineation/sessions/{session}/events/", csrf]))
        context.close()
    return {
        "repeats": REPEATS,
        "voxels": int(ai.truth.size),
        "gtv_voxels": int(ai.truth.sum()),
        "first_slice_ms": [round(o["first_slice_ms"]) for o in opening],
        "ct_loaded_ms": [round(o["ct_loaded_ms"]) for o in opening],
        "pet_loaded_ms": [round(o["pet_loaded_ms"]) for o in opening],
        "ready_ms": [round(o["ready_ms"]) for o in opening],
        "fetch_all_instances_ms": [round(t["ms"]) for t in transport],
        "instance_bytes": transport[0]["bytes"],
        "autosave_ms": [round(s, 1) for s in saves],
        "autosave_median_ms": round(statistics.median(saves), 1),
        "autosave_payload_bytes": payloads[0],
        "small_post_ms": [round(s, 1) for s in small_posts],
        "small_post_median_ms": round(statistics.median(small_posts), 1),
    }


def middle_slice(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask.any(axis=(1, 2))).mean())


ZOOM_JS = """([z, factor]) => {
  window.contourTrial.showAxialSlice(z);
  const vp = window.contourTrial.debug.getViewport('viewport-axial');
  vp.setZoom(factor);
  vp.render();
}"""


def draw_gtv_outline(page, truth: np.ndarray, z: int) -> None:
    """Brush strokes along the true GTV's rows on slice z, as a physician would paint it."""
    rows = np.flatnonzero(truth[z].any(axis=1))
    for row in rows[:: max(1, len(rows) // 8)]:
        columns = np.flatnonzero(truth[z, row])
        start = page.evaluate("([r, c]) => window.contourTrial.axialPointOnPage(r, c)", [int(row), int(columns[0])])
        end = page.evaluate("([r, c]) => window.contourTrial.axialPointOnPage(r, c)", [int(row), int(columns[-1])])
        page.mouse.move(start["x"], start["y"])
        page.mouse.down()
        page.mouse.move(end["x"], end["y"], steps=8)
        page.mouse.up()


def screenshots(browser, base, world, ai, manual, folder: Path) -> None:
    """The manual arm with a GTV painted by brush strokes, the AI arm with uncertainty and proposal outline;
    the axial view zoomed on the tumour."""
    folder.mkdir(parents=True, exist_ok=True)
    context, page = open_case(browser, base, manual.patient, world.physician.username)
    z = middle_slice(manual.truth)
    page.evaluate(ZOOM_JS, [z, 2.5])
    page.keyboard.press("b")
    draw_gtv_outline(page, manual.truth, z)
    page.evaluate("window.contourTrial.flushSave()")
    page.wait_for_timeout(500)
    page.screenshot(path=str(folder / "workstation-manual.png"))
    context.close()
    context, page = open_case(browser, base, ai.patient, world.physician.username)
    page.evaluate(ZOOM_JS, [middle_slice(ai.truth), 2.5])
    page.keyboard.press("u")
    page.keyboard.press("a")
    page.wait_for_timeout(500)
    page.screenshot(path=str(folder / "workstation-ai-uncertainty.png"))
    context.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--screenshots", type=Path, help="also write workstation screenshots into this folder")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "viewer.json")
    args = parser.parse_args()
    _ensure_database()
    world, ai, manual = seed()
    port = _free_port()
    server = serve(port)
    base = f"http://127.0.0.1:{port}"
    try:
        from playwright.sync_api import sync_playwright

        from tests.browser import ARGS, CHROMIUM

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            results = measure(browser, base, world, ai)
            if args.screenshots:
                screenshots(browser, base, world, ai, manual, args.screenshots)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(WORK, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    med = statistics.median
    print(
        f"\nfirst CT slice {med(results['first_slice_ms'])} ms · CT loaded {med(results['ct_loaded_ms'])} ms · "
        f"PET loaded {med(results['pet_loaded_ms'])} ms · reference fetch of all instances "
        f"{med(results['fetch_all_instances_ms'])} ms ({results['instance_bytes'] / 1e6:.0f} MB)\n"
        f"autosave {results['autosave_median_ms']} ms for {results['autosave_payload_bytes']} bytes "
        f"({results['gtv_voxels']} GTV voxels of {results['voxels']}) · "
        f"smallest POST {results['small_post_median_ms']} ms"
    )


if __name__ == "__main__":
    main()
