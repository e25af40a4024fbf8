"""The Content-Security-Policy and the other security headers are on every response (tests and demo too); no
template needs 'unsafe-inline'; and in Chromium the policy is really enforced while what the viewer needs
(WebAssembly, blob: workers) works. tests/browser.py fails every browser test on any violation, so the
workstation, review and upload tests prove the pages themselves run under it."""

import re
from pathlib import Path

import pytest
from django.conf import settings

from tests.browser import chromium_page, login
from tests.conftest import PASSWORD, make_user

EXPECTED_POLICY = {
    "default-src": "'self'",
    "script-src": "'self' 'wasm-unsafe-eval'",
    "style-src": "'self'",
    "img-src": "'self' data: blob:",
    "worker-src": "'self' blob:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
}


def policy(response) -> dict[str, str]:
    directives = (part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    return {name: value for name, value in directives}


@pytest.mark.django_db
def test_pages_carry_the_strict_policy_and_security_headers(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert policy(response) == EXPECTED_POLICY
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"] and "microphone=()" in response["Permissions-Policy"]


@pytest.mark.django_db
def test_api_docs_script_runs_by_nonce_only(client):
    client.force_login(make_user("reader", None))
    response = client.get("/api/docs/")
    assert response.status_code == 200
    nonce = re.search(r"'nonce-([^']+)'", policy(response)["script-src"]).group(1)
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", response.content.decode())
    assert inline == [f' nonce="{nonce}"']
    assert client.get("/api/docs/")["Content-Security-Policy"] != response["Content-Security-Policy"]  # per response


# Written to disk as a standalone report (endpoints/report.py), never served: no policy applies to it.
OFFLINE_TEMPLATES = {"endpoints/report.html"}
INLINE = {
    "inline <script>": re.compile(r"<script(?![^>]*\b(?:src|nonce)=)[^>]*>", re.I),
    "<style> block": re.compile(r"<style\b", re.I),
    "style attribute": re.compile(r"\sstyle\s*=", re.I),
    "event handler attribute": re.compile(r"\son[a-z]+\s*=", re.I),
    "javascript: URL": re.compile(r"javascript:", re.I),
}


def test_no_template_needs_unsafe_inline():
    found = []
    for folder in settings.TEMPLATES[0]["DIRS"]:
        for path in sorted(Path(folder).rglob("*.html")):
            name = path.relative_to(folder).as_posix()
            text = path.read_text(encoding="utf-8")
            if name not in OFFLINE_TEMPLATES:
                found += [f"{name}: {what}" for what, pattern in INLINE.items() if pattern.search(text)]
    assert not found, found


# Run in a blob: worker, which inherits the page's policy: code that Playwright evaluates in the page itself is
# DevTools code, which Chromium exempts from the policy's eval and WebAssembly checks.
WORKER = """
const result = {};
try { eval('1'); result.eval = 'ran'; } catch (e) { result.eval = e.name; }
WebAssembly.compile(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])).then(
  () => postMessage({...result, wasm: 'compiled'}), (e) => postMessage({...result, wasm: String(e)}));
"""
PROBE = """async (source) => {
  const script = document.createElement('script');
  script.textContent = 'window.inlineRan = true';
  document.head.append(script);
  const worker = new Worker(URL.createObjectURL(new Blob([source], {type: 'text/javascript'})));
  const inWorker = await new Promise((done) => {
    worker.onmessage = (e) => done(e.data);
    worker.onerror = (e) => done({error: e.message});
  });
  return {inline: window.inlineRan === true ? 'ran' : 'refused', ...inWorker};
}"""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_chromium_enforces_the_policy_and_the_viewer_needs_still_work(live_server):
    """The policy is in force (inline scripts and eval refused, and reported) while WebAssembly compiles in a
    blob: worker, as the viewer's decoders need; the admin and API docs pages run without violations."""
    make_user("reader", None)
    with chromium_page() as page:
        page.goto(f"{live_server.url}/admin/login/")
        page.wait_for_selector("#login-form")
        assert page.csp_violations == []
        page.goto(f"{live_server.url}/accounts/login/")
        result = page.evaluate(PROBE, WORKER)
        assert result == {"inline": "refused", "eval": "EvalError", "wasm": "compiled"}
        assert any("script-src" in v for v in page.csp_violations), page.csp_violations
        page.csp_violations.clear()
        login(page, live_server.url, "reader", PASSWORD)
        page.goto(f"{live_server.url}/api/docs/")
        page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)  # the schema loaded and rendered
