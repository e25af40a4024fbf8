#!/usr/bin/env bash
# Run ContourTrial with demo data on http://127.0.0.1:8000: SQLite, a Celery worker over kombu's
# filesystem transport (no Redis needed), gunicorn serving the app and whitenoise the static files.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
mkdir -p var
if [ ! -f var/demo.env ]; then
    umask 077
    {
        echo "SECRET_KEY=$($BIN/python -c 'import secrets; print(secrets.token_urlsafe(50))')"
        echo "PATIENT_ID_KEY=$($BIN/python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    } > var/demo.env
fi
set -a
# shellcheck disable=SC1091
source var/demo.env
CELERY_BROKER_URL=${CELERY_BROKER_URL:-filesystem://}
DATABASE_URL=${DATABASE_URL:-sqlite:///$PWD/var/contourtrial.sqlite3}
set +a

$BIN/python manage.py migrate --noinput -v0
$BIN/python manage.py collectstatic --noinput -v0
$BIN/python manage.py seed_demo

$BIN/celery -A config worker -Q default,inference --pool=solo --loglevel=warning &
WORKER=$!
trap 'kill $WORKER 2>/dev/null || true' EXIT INT TERM
echo
echo "ContourTrial demo on http://127.0.0.1:8000  (API docs: /api/docs/; stop with Ctrl-C)"
$BIN/gunicorn config.wsgi --bind 127.0.0.1:8000 --workers 2 --access-logfile - --log-level warning
