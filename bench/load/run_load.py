"""Load test on loopback (issue 8): gunicorn + PostgreSQL + Redis + Celery under physicians who autosave every 5 s
and send interaction events, panel members who autosave their corrections, and coordinators who browse.

    python bench/load/run_load.py [--users-physicians 30 --panel 5 --coordinators 5 --seconds 300]

Steps: a fresh database (dropped and created), migrate, seed (seed.py: real phantom PET/CT filed through the
ingest pipeline for every case), start a Celery worker (with beat) and gunicorn (4 sync workers, as the
Dockerfile) with production settings except HTTPS, run locust headless (locustfile.py), stop the servers, then
check every acknowledged save against the database (verify.py). Writes OUT/load.json and OUT/load.md and prints
the table. Exit status 0 when no request failed and every acknowledged save is stored exactly once.
"""

import argparse
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[2]))

from report import markdown, summarise

from tests.processes import stop_process_group

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
AUTOSAVE_P95_TARGET_MS = 300


def main(argv=None) -> int:
    args = parse_args(argv)
    out = args.out.resolve()
    run_dir = out / "load-run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    uptime_before, busiest_before = _uptime(), _busiest()
    port = _free_port()
    env = load_environment(args, run_dir, port)
    timings = {}

    step = _stepper(timings)
    with step("static files"):
        prepare_static(args, env, run_dir)  # first: settings would create VAR_DIR/static as a plain folder
    with step("database"):
        recreate_database(args.database_url)
        _flush_broker(args.broker_url)
        _manage(env, run_dir, "migrate", "--noinput")
    with step("seed"):
        plan_path = run_dir / "plan.json"
        _run([PYTHON, str(HERE / "seed.py"), "--plan", str(plan_path), "--physicians", str(args.users_physicians),
              "--panel", str(args.panel), "--coordinators", str(args.coordinators), "--rows", str(args.rows),
              *(["--slices", str(args.slices)] if args.slices else [])], env, run_dir / "seed.log")  # fmt: skip
    plan = json.loads(plan_path.read_text())

    results_path = run_dir / "locust-results.json"
    with ExitStack() as servers:
        worker = servers.enter_context(celery_worker(env, run_dir))
        web = servers.enter_context(gunicorn(env, run_dir, port, args.workers))
        _wait_until_up(f"http://127.0.0.1:{port}/accounts/login/", web)
        with step("load"):
            run_locust(args, env, run_dir, port, plan_path, results_path)
        server_ok = web.poll() is None and worker.poll() is None
    with step("verify"):
        verification_path = run_dir / "verification.json"
        _run([PYTHON, str(HERE / "verify.py"), "--results", str(results_path), "--out", str(verification_path)], env,
             run_dir / "verify.log")  # fmt: skip

    results = json.loads(results_path.read_text())
    verification = json.loads(verification_path.read_text())
    report = summarise(results, verification, run_dir, autosave_target_ms=AUTOSAVE_P95_TARGET_MS)
    report.update({
        "command": "python bench/load/run_load.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "setup": {
            "physicians": args.users_physicians, "panel": args.panel, "coordinators": args.coordinators,
            "seconds": args.seconds, "spawn_rate": args.spawn_rate, "gunicorn": f"{args.workers} sync workers",
            "celery": "1 worker process (prefork, concurrency 1) with embedded beat, queues default,inference",
            "phantom": plan["phantom"], "patients": plan["patients"], "seed_seconds": plan["seed_seconds"],
            "images_on_open": args.images, "static": args.static, "broker": args.broker_url,
            "database": urlsplit(args.database_url).path.lstrip("/"),
        },
        "step_seconds": timings,
        "servers_alive_at_end": server_ok,
        "uptime_before": uptime_before,
        "uptime_after": _uptime(),
        "busiest_processes_before": busiest_before,
    })  # fmt: skip
    (out / "load.json").write_text(json.dumps(report, indent=1))
    table = markdown(report)
    (out / "load.md").write_text(table)
    print(table)
    if not args.keep_files:
        shutil.rmtree(run_dir / "storage", ignore_errors=True)
    return 0 if report["passed"]["errors"] and report["passed"]["saves"] and server_ok else 1


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users-physicians", type=int, default=30)
    parser.add_argument("--panel", type=int, default=5)
    parser.add_argument("--coordinators", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=300)
    parser.add_argument("--spawn-rate", type=float, default=1.0, help="Users started per second.")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers.")
    parser.add_argument("--rows", type=int, default=512, help="Phantom CT rows and columns (512: full size).")
    parser.add_argument("--slices", type=int, default=None, help="Phantom CT slices (default: its own, ~130).")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("LOAD_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ct_load"),
        help="The database to drop, create and load (default $LOAD_DATABASE_URL or …/ct_load).",
    )
    parser.add_argument(
        "--broker-url",
        default=os.environ.get("LOAD_BROKER_URL", "redis://127.0.0.1:6379/14"),
        help="The Redis database for Celery; it is flushed first (default $LOAD_BROKER_URL or …/14).",
    )
    parser.add_argument(
        "--static",
        choices=["collected", "plain"],
        default="collected",
        help="collected: production static files (whitenoise manifest, collectstatic cached under var/); "
        "plain: the tests' static storage, no collectstatic (the load never fetches static files).",
    )
    parser.add_argument(
        "--images",
        action="store_true",
        help="Fetch every CT and PET image when a case opens (a browser with an empty cache); off by default.",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "reliability")
    parser.add_argument("--keep-files", action="store_true", help="Keep the stored images afterwards.")
    return parser.parse_args(argv)


def load_environment(args, run_dir: Path, port: int) -> dict:
    """Production settings (DEBUG off, secrets set, manifest static files) except HTTPS, on loopback."""
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "HTTPS", "CONTOURTRIAL_TESTING")}
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": args.database_url,
        "CELERY_BROKER_URL": args.broker_url,
        "SECRET_KEY": secrets.token_urlsafe(40),
        "PATIENT_ID_KEY": secrets.token_urlsafe(32),
        "DEID_SALT": secrets.token_urlsafe(32),
        "IDENTITY_KEY": secrets.token_urlsafe(32),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CSRF_TRUSTED_ORIGINS": f"http://127.0.0.1:{port}",
        "CONTOURTRIAL_VAR_DIR": str(run_dir / "var"),
        "STORAGE_DIR": str(run_dir / "storage"),
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    })  # fmt: skip
    if args.static == "plain":
        env["CONTOURTRIAL_TESTING"] = "1"  # its only effects: plain static storage, development secrets (set above)
    return env


def recreate_database(url: str) -> None:
    import psycopg2

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    connection = psycopg2.connect(admin)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()


def prepare_static(args, env: dict, run_dir: Path) -> None:
    """collectstatic with whitenoise's compression takes minutes, so it runs only when the static sources changed,
    into a VAR_DIR kept under var/reliability/; the run's STATIC_ROOT (its VAR_DIR/static) links there."""
    if args.static == "plain":
        return
    cache = ROOT / "var" / "reliability" / "load-static-var"
    stamp = cache / "sources.sha256"
    fingerprint = _static_fingerprint()
    if not (stamp.exists() and stamp.read_text() == fingerprint and (cache / "static" / "staticfiles.json").exists()):
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        _run([PYTHON, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
             {**env, "CONTOURTRIAL_VAR_DIR": str(cache)}, run_dir / "collectstatic.log")  # fmt: skip
        stamp.write_text(fingerprint)
    (run_dir / "var").mkdir(exist_ok=True)
    (run_dir / "var" / "static").symlink_to(cache / "static", target_is_directory=True)


def _static_fingerprint() -> str:
    digest = hashlib.sha256()
    for folder in (ROOT / "static", ROOT / "frontend" / "dist"):
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            stat = path.stat()
            digest.update(f"{path.relative_to(ROOT)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


@contextmanager
def celery_worker(env: dict, run_dir: Path):
    log = run_dir / "celery.log"
    command = [PYTHON, "-m", "celery", "-A", "config", "worker", "-Q", "default,inference", "--concurrency=1",
               "--beat", f"--schedule={run_dir / 'celerybeat-schedule'}", "--loglevel=info", "--without-gossip",
               "--without-mingle"]  # fmt: skip
    with _process(command, env, log) as worker:
        yield worker


@contextmanager
def gunicorn(env: dict, run_dir: Path, port: int, workers: int):
    log = run_dir / "gunicorn.log"
    command = [PYTHON, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
               "--timeout", "60", "--graceful-timeout", "20", "--access-logfile", str(run_dir / "access.log"),
               "--access-logformat", '%(t)s "%(r)s" %(s)s %(b)s %(M)s']  # fmt: skip
    with _process(command, env, log) as server:
        yield server


@contextmanager
def _process(command, env, log_path: Path):
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
        try:
            yield process
        finally:
            stop_process_group(process, timeout=30)


def run_locust(args, env, run_dir: Path, port: int, plan_path: Path, results_path: Path) -> None:
    counts = {"PhysicianUser": args.users_physicians, "PanelUser": args.panel, "CoordinatorUser": args.coordinators}
    classes = [name for name, n in counts.items() if n > 0]
    locust_env = {**env, "LOAD_PLAN": str(plan_path), "LOAD_RESULTS": str(results_path),
                  "LOAD_PHYSICIANS": str(args.users_physicians), "LOAD_PANEL": str(args.panel),
                  "LOAD_COORDINATORS": str(args.coordinators), "LOAD_IMAGES": "1" if args.images else "0"}  # fmt: skip
    command = [PYTHON, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless", "--host",
               f"http://127.0.0.1:{port}", "--users", str(sum(counts.values())), "--spawn-rate", str(args.spawn_rate),
               "--run-time", f"{args.seconds}s", "--stop-timeout", "20", "--only-summary", "--loglevel", "WARNING",
               "--csv", str(run_dir / "locust"), *classes]  # fmt: skip
    subprocess.run(
        command,
        cwd=ROOT,
        env=locust_env,
        stdout=(run_dir / "locust.log").open("w"),
        stderr=subprocess.STDOUT,
        check=False,
    )  # locust exits 1 when any request failed
    if not results_path.exists():
        raise SystemExit(f"locust wrote no results; see {run_dir / 'locust.log'}")


def _manage(env, run_dir: Path, *args) -> None:
    _run([PYTHON, "manage.py", *args], env, run_dir / f"{args[0]}.log")


def _run(command, env, log_path: Path) -> None:
    with log_path.open("w") as log:
        result = subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    if result.returncode:
        raise SystemExit(f"{' '.join(str(c) for c in command[:3])} … failed ({result.returncode}); see {log_path}")


def _flush_broker(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()  # no messages left from an earlier run


def _wait_until_up(url: str, process, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited ({process.returncode}) before answering")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"gunicorn did not answer {url} within {timeout:.0f} s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def _busiest(n: int = 8) -> list[str]:
    """What else was running: the processes using most CPU when the run started (ps, command cut short)."""
    ps = subprocess.run(["ps", "-eo", "pcpu,args", "--sort=-pcpu", "--no-headers"], capture_output=True, text=True,
                        check=False)  # fmt: skip
    return [line.strip()[:110] for line in ps.stdout.splitlines()[:n]]


def _stepper(timings: dict):
    @contextmanager
    def step(name: str):
        started = time.perf_counter()
        print(f"[load] {name}…", flush=True)
        yield
        timings[name] = round(time.perf_counter() - started, 1)

    return step


if __name__ == "__main__":
    sys.exit(main())
