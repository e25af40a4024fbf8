"""ContourTrial settings, read from the environment.

Embedded defaults (SQLite, filesystem Celery broker) serve `make demo` on a laptop; production sets
DATABASE_URL, CELERY_BROKER_URL, SECRET_KEY and PATIENT_ID_KEY (see docs/DEPLOYMENT.md).
"""

import datetime as dt
import os
from pathlib import Path

import dj_database_url
from csp.constants import NONCE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
TESTING = env_bool("CONTOURTRIAL_TESTING", False)


def _secret(name: str) -> str:
    """Secrets must be given in production; a fixed development value is allowed only when asked for."""
    value = os.environ.get(name)
    if value:
        return value
    if DEBUG or TESTING:
        return f"insecure-development-{name.lower()}"
    raise ImproperlyConfigured(
        f"{name} is not set. Set it in the environment (production) or run with DEBUG=1 for development."
    )


SECRET_KEY = _secret("SECRET_KEY")
# Key of the HMAC that turns a hospital patient id into a lookup hash; the clear id is never stored.
PATIENT_ID_KEY = _secret("PATIENT_ID_KEY").encode()

# Salt of the deterministic pseudonymous UID remapping and per-patient date shift (DICOM PS3.15 Annex E).
DEID_SALT = _secret("DEID_SALT").encode()
# Key that encrypts the original patient identity kept for re-identifying exports to the planning system.
IDENTITY_KEY = _secret("IDENTITY_KEY").encode()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "http://127.0.0.1:8000,http://localhost:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "csp",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "trial",
    "imaging",
    "inference",
    "delineation",
    "panel_review",
    "endpoints",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",  # after whitenoise: static files carry no policy (see CONTENT_SECURITY_POLICY)
    "trial.security.headers.PermissionsPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "trial.security.sessions.SessionTimeoutMiddleware",  # idle and absolute session limits (SESSION_* below)
    "django_otp.middleware.OTPMiddleware",
    "trial.security.two_factor_middleware.TwoFactorMiddleware",  # refuses the unverified where 2FA is needed
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "trial.audit.middleware.AuditActorMiddleware",
    "axes.middleware.AxesMiddleware",  # last: answers a locked-out login (see AXES_* below)
]

# Login throttling (django-axes): the axes backend comes first so that a locked-out user or address is refused
# before the password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "trial.web.context.roles",
            ],
        },
    },
]

VAR_DIR = Path(os.environ.get("CONTOURTRIAL_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'contourtrial.sqlite3'}"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "0")),
        # A persistent connection (DB_CONN_MAX_AGE > 0) that died with a database restart is noticed and
        # replaced when a request first uses it, instead of failing that request.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock at BEGIN, so concurrent randomisations queue instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# The viewer bundle (frontend/, built by Vite into frontend/dist) is served from /static/viewer/ by
# whitenoise, on the page's own origin, so that its web workers load.
STATICFILES_DIRS = [BASE_DIR / "static", ("viewer", BASE_DIR / "frontend" / "dist")]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if TESTING:
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
MEDIA_ROOT = Path(os.environ.get("STORAGE_DIR", VAR_DIR / "storage"))
# Images go to the filesystem (MEDIA_ROOT) unless STORAGE_BACKEND=s3 selects S3-compatible object storage.
# The listener's spool and the quarantine always stay on local disk (MEDIA_ROOT).
if os.environ.get("STORAGE_BACKEND", "filesystem") == "s3":
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ["S3_BUCKET"],
            "endpoint_url": os.environ.get("S3_ENDPOINT_URL") or None,
            "access_key": os.environ.get("S3_ACCESS_KEY_ID"),
            "secret_key": os.environ.get("S3_SECRET_ACCESS_KEY"),
            "region_name": os.environ.get("S3_REGION") or None,
            "default_acl": None,
            "file_overwrite": False,
            "querystring_auth": True,
        },
    }

# DICOM networking: our C-STORE receiver, and the treatment planning system that receives exports.
DICOM_AE_TITLE = os.environ.get("DICOM_AE_TITLE", "CONTOURTRIAL")
DICOM_PORT = int(os.environ.get("DICOM_PORT", "11112"))
TPS_AE_TITLE = os.environ.get("TPS_AE_TITLE", "")
TPS_HOST = os.environ.get("TPS_HOST", "")
TPS_PORT = int(os.environ.get("TPS_PORT", "104"))
# Upload limits: a zip is refused when it would unpack beyond these (zip bombs, runaway uploads).
UPLOAD_MAX_BYTES = int(os.environ.get("UPLOAD_MAX_BYTES", str(2 * 1024**3)))
UPLOAD_MAX_FILES = int(os.environ.get("UPLOAD_MAX_FILES", "5000"))
UPLOAD_MAX_COMPRESSION_RATIO = int(os.environ.get("UPLOAD_MAX_COMPRESSION_RATIO", "200"))
# A forked helper process may share the work of large imports (imaging/ingest/helper.py). Off by default:
# on a quiet 2-core machine it measured no faster than without it (docs/PERFORMANCE.md).
IMAGING_INGEST_HELPER_PROCESS = env_bool("IMAGING_INGEST_HELPER_PROCESS", False)
# AI proposals (issue 4): registered models are copied under MODEL_ROOT; workers run them on CUDA when
# present. A job that runs longer than the time limit fails with that reason; transient errors retry.
MODEL_ROOT = Path(os.environ.get("MODEL_DIR", VAR_DIR / "models"))
INFERENCE_TIME_LIMIT_S = int(os.environ.get("INFERENCE_TIME_LIMIT_S", "3600"))
INFERENCE_MAX_RETRIES = int(os.environ.get("INFERENCE_MAX_RETRIES", "3"))
INFERENCE_DEVICE = os.environ.get("INFERENCE_DEVICE", "")  # "", "cpu", "cuda" or "cuda:N"; "" = CUDA if present
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024**2
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024**2
DATA_UPLOAD_MAX_NUMBER_FILES = UPLOAD_MAX_FILES

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- HTTP security (docs/SECURITY.md) ---
# HTTPS=1: production behind a TLS-terminating reverse proxy that sets X-Forwarded-Proto and X-Forwarded-For.
HTTPS = env_bool("HTTPS", False)
# Sessions end after SESSION_IDLE_TIMEOUT seconds without a request and SESSION_MAX_AGE after sign-in
# (trial/security/sessions.py renews the expiry at most every SESSION_RENEW_AFTER seconds).
SESSION_IDLE_TIMEOUT = int(os.environ.get("SESSION_IDLE_TIMEOUT", "1800"))
SESSION_MAX_AGE = int(os.environ.get("SESSION_MAX_AGE", str(12 * 3600)))
SESSION_RENEW_AFTER = min(60, SESSION_IDLE_TIMEOUT // 10)
SESSION_COOKIE_AGE = SESSION_IDLE_TIMEOUT
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# No script reads the CSRF cookie: pages hand the token to scripts in the DOM (data-csrf-token, the form field).
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = env_list("SECURE_REDIRECT_EXEMPT", "")  # path regexes, e.g. a plain-HTTP health check
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# HSTS preloading commits the hospital's whole registrable domain, a decision for its IT, not for this app.
SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
PERMISSIONS_POLICY_DENIED = [
    "accelerometer", "camera", "display-capture", "geolocation", "gyroscope", "magnetometer", "microphone",
    "payment", "usb", "serial", "bluetooth", "hid", "midi",
]  # fmt: skip
# Always on (tests and demo too), so that the browser tests prove the viewer works under it. The viewer decodes
# compressed DICOM with WebAssembly in web workers ('wasm-unsafe-eval' compiles WebAssembly, not JavaScript;
# workers are same-origin files, blob: for those a library builds at run time) and draws cursors from blob: and
# data: images. No 'unsafe-inline', no 'unsafe-eval': pages have no inline scripts, handlers or style attributes;
# the one rendered script (Swagger UI's settings) carries a per-response nonce. Static files (whitenoise, which
# answers before the CSP middleware) carry no policy of their own, exactly as in the tests' live server.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", "'wasm-unsafe-eval'", NONCE],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "worker-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}

# Login throttling (django-axes; trial/security/lockout.py answers a refused sign-in with HTTP 429 and the time
# to try again). Failures count per username AND client address: a guesser is stopped after AXES_FAILURE_LIMIT
# tries at one account, yet cannot lock that person out from their own computer. A success resets the count.
# Electronic signatures are throttled with the same limits (trial/security/signature_throttle.py).
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = dt.timedelta(minutes=int(os.environ.get("LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # the time shown to try again holds
AXES_LOCKOUT_CALLABLE = "trial.security.lockout.lockout_response"
# The client address: behind HTTPS=1's proxy the X-Forwarded-For entry it appended (trial/security/client_ip.py).
TRUSTED_PROXY_COUNT = int(os.environ.get("TRUSTED_PROXY_COUNT", "1" if HTTPS else "0"))
AXES_CLIENT_IP_CALLABLE = "trial.security.client_ip.client_ip"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Sessions only: Basic authentication would skip CSRF, login throttling and two-factor verification.
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "trial.api.errors.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "ContourTrial API",
    "DESCRIPTION": (
        "Randomised trial of AI-assisted versus manual GTV delineation. Every endpoint checks the "
        "caller's role and object permissions on the server; blinded roles never receive allocations."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# Celery: queues `default` and `inference` (model work, GPU workers). Tasks go through the transactional outbox
# (trial/outbox.py): a row written with the change, published after commit, relayed until the broker has it.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"inference.*": {"queue": "inference"}}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# A dead broker must not hold a page: the outbox's after-commit publish tries once and its relay twice (this
# policy), connecting likewise (transport options below, with socket timeouts for a Redis that hangs). What is
# not sent stays in the outbox for the relay.
_QUICK_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
CELERY_TASK_PUBLISH_RETRY_POLICY = _QUICK_RETRY
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# Workers wait for the broker as long as it takes, at start and after losing it.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# A task running when the broker goes away finishes; its acknowledgement may be lost, and the redelivered copy
# finds its work done (tasks are idempotent).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# Periodic work (run `celery beat` once per deployment): review cases short of reviewers, assignments of members
# who left the panel, approved cases without correction metrics (panel_review.services.reconcile); and the
# outbox relay, which publishes the tasks the broker did not take when they were asked for (trial.outbox).
REVIEW_RECONCILE_SECONDS = int(os.environ.get("REVIEW_RECONCILE_SECONDS", "600"))
OUTBOX_RELAY_SECONDS = int(os.environ.get("OUTBOX_RELAY_SECONDS", "20"))
CELERY_BEAT_SCHEDULE = {
    "reconcile-reviews": {"task": "panel_review.tasks.reconcile_reviews", "schedule": REVIEW_RECONCILE_SECONDS},
    "relay-task-outbox": {
        "task": "trial.relay_outbox",
        "schedule": OUTBOX_RELAY_SECONDS,
        "options": {"expires": OUTBOX_RELAY_SECONDS},  # one that waited behind a busy worker is dropped
    },
}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = Path(os.environ.get("CELERY_FS_DIR", VAR_DIR / "celery-queue"))
    for _sub in ("out", "processed", "control"):
        (_queue_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "out"),
        "data_folder_out": str(_queue_dir / "out"),
        "processed_folder": str(_queue_dir / "processed"),
        "control_folder": str(_queue_dir / "control"),  # kombu's default is ./control, in the working tree
    }
else:
    # Redis redelivers an unacknowledged message after this long; longer than any job may run, so a slow
    # job is not started twice. A killed worker's job is re-sent when the worker starts again (inference).
    # A producer (re)connecting to a dead Redis tries twice (a worker's consumer is not bound by this: it retries
    # forever, above). A Redis that stops answering without closing the connection must not hang a publish
    # either: socket timeouts (a worker's BRPOP returns every second, well within them).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": INFERENCE_TIME_LIMIT_S + 600,
        **_QUICK_RETRY,
        "socket_connect_timeout": 2,
        "socket_timeout": 3,
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
