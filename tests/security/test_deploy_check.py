"""Production settings (HTTPS=1, real secrets, DEBUG unset) pass `manage.py check --deploy` without a single
warning, redirect plain HTTP, and send HSTS, the security headers and Secure cookies. One subprocess, started with
only the environment a deployment gives, does both: settings are read once, at start-up."""

import json
import os
import secrets
import subprocess
import sys

import pytest
from django.db import connection

from tests.processes import ROOT, database_url

HOST = "contourtrial.hospital.example"
PLAIN_STORAGE = "django.contrib.staticfiles.storage.StaticFilesStorage"
PROBE = f"""
import json, django
from django.conf import settings
from django.core.management import call_command
django.setup()
call_command("check", deploy=True, fail_level="WARNING")  # raises SystemCheckError on any warning
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client, override_settings
# Pages name hashed static files from collectstatic's manifest, which a test checkout lacks; plain names do here.
override_settings(STORAGES={{**settings.STORAGES, "staticfiles": {{"BACKEND": "{PLAIN_STORAGE}"}}}}).enable()
client = Client(HTTP_HOST="{HOST}")
plain = client.get("/accounts/login/")
page = client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
with transaction.atomic():
    client.force_login(get_user_model().objects.create_user("deploy-probe"))
    signed_in = client.get("/", HTTP_X_FORWARDED_PROTO="https")
    transaction.set_rollback(True)
cookie = lambda c: {{"secure": bool(c["secure"]), "httponly": bool(c["httponly"]), "samesite": c["samesite"]}}
print(json.dumps({{
    "plain": [plain.status_code, plain.get("Location")],
    "headers": dict(page.headers),
    "csrf_cookie": cookie(page.cookies["csrftoken"]),
    "session_cookie": cookie(signed_in.cookies["sessionid"]),
}}))
"""


@pytest.mark.django_db
def test_production_settings_are_clean_under_check_deploy_and_secure_on_the_wire():
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", ""),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
        "SECRET_KEY": secrets.token_urlsafe(64),
        "PATIENT_ID_KEY": secrets.token_urlsafe(32),
        "DEID_SALT": secrets.token_urlsafe(32),
        "IDENTITY_KEY": secrets.token_urlsafe(32),
        "HTTPS": "1",
        "ALLOWED_HOSTS": HOST,
        "CSRF_TRUSTED_ORIGINS": f"https://{HOST}",
        "LOG_LEVEL": "WARNING",
    }  # no DEBUG, no CONTOURTRIAL_TESTING
    run = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "WARNING" not in run.stderr and "?: (" not in run.stderr, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])

    assert seen["plain"] == [301, f"https://{HOST}/accounts/login/"]
    headers = seen["headers"]
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin" and headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=()" in headers["Permissions-Policy"]
    assert seen["csrf_cookie"] == {"secure": True, "httponly": True, "samesite": "Lax"}
    assert seen["session_cookie"] == {"secure": True, "httponly": True, "samesite": "Lax"}
