"""Debian Chromium driven by Playwright (no browser download), for tests marked `browser`."""

import os
from contextlib import contextmanager

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--use-gl=angle", "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]  # fmt: skip


# Every Content-Security-Policy violation becomes a console error, which the page's watcher collects.
REPORT_CSP_VIOLATIONS = """document.addEventListener('securitypolicyviolation', (e) => console.error(
  `Content Security Policy violation: ${e.effectiveDirective} refused ${e.blockedURI || 'inline'}`
  + ` (${e.sourceFile}:${e.lineNumber})`));"""


@contextmanager
def chromium_page():
    """A page that fails the test on any Content-Security-Policy violation (the page's or a worker's console
    message); `page.csp_violations` lists them, for a test that provokes some on purpose and clears them."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.csp_violations = []
            page.add_init_script(REPORT_CSP_VIOLATIONS)
            page.on("console", lambda m: "Content Security Policy" in m.text and page.csp_violations.append(m.text))
            yield page
            assert not page.csp_violations, f"Content-Security-Policy violations: {page.csp_violations}"
        finally:
            browser.close()


def login(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")
