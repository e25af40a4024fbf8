#!/usr/bin/env bash
# Run ContourTrial with demo data on http://127.0.0.1:8000: SQLite, a Celery worker over kombu's
# filesystem transport (no Redis needed), gunicorn serving the app and whitenoise the static files.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
VAR=${CONTOURTRIAL_VAR_DIR:-$PWD/var}
PORT=${PORT:-8000}
mkdir -p "$VAR"
touch "$VAR/demo.env" && chmod 600 "$VAR/demo.env"
for key in SECRET_KEY PATIENT_ID_KEY DEID_SALT IDENTITY_KEY; do  # secrets made once per demo folder
    grep -q "^$key=" "$VAR/demo.env" || echo "$key=$($BIN/python -c 'import secrets; print(secrets.token_urlsafe(48))')" >> "$VAR/demo.env"
done
set -a
# shellcheck disable=SC1091
source "$VAR/demo.env"
CONTOURTRIAL_VAR_DIR=$VAR
CELERY_BROKER_URL=${CELERY_BROKER_URL:-filesystem://}
DATABASE_URL=${DATABASE_URL:-sqlite:///$VAR/contourtrial.sqlite3}
ALLOWED_HOSTS=${ALLOWED_HOSTS:-127.0.0.1,localhost}
CSRF_TRUSTED_ORIGINS=${CSRF_TRUSTED_ORIGINS:-http://127.0.0.1:$PORT,http://localhost:$PORT}
set +a

$BIN/python manage.py migrate --noinput -v0
$BIN/python manage.py collectstatic --noinput -v0
$BIN/python manage.py seed_demo --no-images  # trial, users, patients
# The bundled demo GTV model (NOT FOR CLINICAL USE), active for the demo trial before any image arrives.
$BIN/python manage.py register_model inference/demo_model --backend torchscript --name contourtrial-demo-gtv-unet \
    --version 1.0 --exist-ok --activate-for CT-HN-DEMO --reason "demo model" --by datamanager
$BIN/python manage.py seed_demo  # phantom images for one AI-arm and one manual-arm patient
$BIN/python manage.py seed_demo_review  # a submitted GTV waiting for the blinded panel
# A small simulated trial through every stage (small phantoms), so the endpoint data, report and dashboards
# have something to show; `python manage.py simulate_trial --patients 40 --seed 2` makes a bigger one.
$BIN/python manage.py simulate_trial --patients ${DEMO_SIMULATED_PATIENTS:-8} --seed 1

# -B: the default worker also runs the periodic scheduler (review reconciliation); production runs `celery beat`.
$BIN/celery -A config worker -Q default --pool=solo --loglevel=warning -n default@%h -B \
    --schedule var/celerybeat-schedule &
WORKER=$!
$BIN/celery -A config worker -Q inference --pool=solo --loglevel=warning -n inference@%h &
INFERENCE_WORKER=$!
DICOM_PORT=${DICOM_PORT:-11112}
$BIN/python manage.py dicom_listener --bind 127.0.0.1 --port "$DICOM_PORT" &
LISTENER=$!
trap 'kill $WORKER $INFERENCE_WORKER $LISTENER 2>/dev/null || true' EXIT INT TERM
echo
echo "ContourTrial demo on http://127.0.0.1:$PORT  (API docs: /api/docs/; DICOM listener CONTOURTRIAL@127.0.0.1:$DICOM_PORT; stop with Ctrl-C)"
$BIN/gunicorn config.wsgi --bind "127.0.0.1:$PORT" --workers 2 --access-logfile - --log-level warning
