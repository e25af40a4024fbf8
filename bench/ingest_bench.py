"""Imaging ingest benchmark: our pipeline next to references, in the same run.

1. Import a 150-slice full-size phantom CT through the pipeline (parse, check, pseudonymise, write files,
   commit rows) next to plain `pydicom.dcmread` of the same files. Target: ≤ 3× dcmread. The files are read
   as the listener and the quarantine read theirs (`parse_file`: the pixel data stays in the file until it
   is copied into the stored one); the same import from bytes already in memory (an upload's shape) is
   reported beside it.
2. C-STORE ingest rate: dcmtk `storescu` sending the same study to our `dicom_listener` (until filed)
   next to dcmtk's own `storescp` receiving it.

Run: `make bench-ingest` (DATABASE_URL defaults to the local PostgreSQL database `contourtrial_bench`);
BENCH_REPEATS (default 11) and BENCH_LISTENER_REPEATS (default 3) set the repeats; medians are reported.
"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/contourtrial_bench")
os.environ.setdefault("CONTOURTRIAL_TESTING", "1")
REPEATS = int(os.environ.get("BENCH_REPEATS", "11"))  # imports: the disk makes single runs noisy
LISTENER_REPEATS = int(os.environ.get("BENCH_LISTENER_REPEATS", "3"))  # storescp takes some 7 s a run


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ensure_database() -> None:
    url = os.environ["DATABASE_URL"]
    if url.startswith("postgres"):
        name = url.rsplit("/", 1)[1]
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f"DROP DATABASE IF EXISTS {name}"],
                       check=True, capture_output=True)  # fmt: skip
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f"CREATE DATABASE {name}"],
                       check=True, capture_output=True)  # fmt: skip


def main() -> None:
    _ensure_database()
    import django

    django.setup()
    import pydicom
    from django.conf import settings
    from django.core.management import call_command

    from imaging.ingest.collector import collector_paused
    from imaging.ingest.parse import parse_file, parse_payload
    from imaging.ingest.payloads import Payload
    from imaging.ingest.pipeline import store_images
    from imaging.listener import Listener
    from imaging.models import Instance, Series, Study, UidMapping
    from imaging.phantom.writer import write_phantom
    from tests.conftest import World, enrol

    call_command("migrate", verbosity=0)
    # Beside the application's own storage (MEDIA_ROOT lies in VAR_DIR by default), on the same file system.
    Path(settings.VAR_DIR).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ct-bench-", dir=settings.VAR_DIR))
    settings.MEDIA_ROOT = work / "media"
    phantom = write_phantom(work / "phantom", seed=3, slices=150)
    files = sorted(phantom.ct_dir.glob("*.dcm"))
    world = World()
    patient = enrol(world.trial, world.coordinator, world.physician, "PHANTOM-3")

    def reset():
        Instance.objects.all().delete()
        UidMapping.objects.all().delete()
        for series in Series.objects.all():
            series.delete()
        for study in Study.objects.all():
            study.delete()
        shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)

    def settled():
        """Each timed run starts with the disk caught up: no writes left over from the run before."""
        os.sync()

    def timed_import(parse, source: str) -> float:
        """Seconds to parse every file with `parse` and store them (the stored import removed before)."""
        reset()
        settled()
        start = time.perf_counter()
        with collector_paused():
            store_images(patient=patient, datasets=[parse(path) for path in files], source=source)
        return time.perf_counter() - start

    dcmread_times, pipeline_times, upload_times = [], [], []
    for _ in range(REPEATS):
        settled()
        start = time.perf_counter()
        for path in files:
            pydicom.dcmread(path)
        dcmread_times.append(time.perf_counter() - start)

        # As imaging.ingest.arrivals.file_arrivals reads files, and as imaging.services.upload_images reads
        # an upload once the request's bytes are in memory.
        pipeline_times.append(timed_import(parse_file, "dicom"))
        upload_times.append(timed_import(lambda path: parse_payload(Payload(path.name, path.read_bytes())), "upload"))

    storescp_times, listener_times = [], []
    for _ in range(LISTENER_REPEATS):
        port = _free_port()
        out = work / "storescp"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        scp = subprocess.Popen(["storescp", "-od", str(out), "-aet", "REF", str(port)])
        time.sleep(0.5)
        start = time.perf_counter()
        subprocess.run(["storescu", "-aec", "REF", "127.0.0.1", str(port), *map(str, files)], check=True)
        storescp_times.append(time.perf_counter() - start)
        scp.terminate()
        scp.wait()

        reset()
        port = _free_port()
        listener = Listener(work / "spool", "CONTOURTRIAL")
        server = listener.serve("127.0.0.1", port, block=False)
        start = time.perf_counter()
        subprocess.run(["storescu", "-aec", "CONTOURTRIAL", "127.0.0.1", str(port), *map(str, files)], check=True)
        while not listener.outcomes:
            time.sleep(0.01)
        listener_times.append(time.perf_counter() - start)
        server.shutdown()
        assert listener.outcomes[0].patient == patient.trial_number, listener.outcomes

    size_mb = sum(p.stat().st_size for p in files) / 1024**2
    result = {
        "slices": len(files),
        "megabytes": round(size_mb, 1),
        "repeats": REPEATS,
        "listener_repeats": LISTENER_REPEATS,
        "pydicom_dcmread_s": round(statistics.median(dcmread_times), 3),
        "pipeline_import_s": round(statistics.median(pipeline_times), 3),
        "pipeline_over_dcmread": round(statistics.median(pipeline_times) / statistics.median(dcmread_times), 2),
        "pipeline_over_dcmread_per_repeat": [
            round(ours / reference, 2) for ours, reference in zip(pipeline_times, dcmread_times, strict=True)
        ],
        "from_memory_import_s": round(statistics.median(upload_times), 3),
        "from_memory_over_dcmread": round(statistics.median(upload_times) / statistics.median(dcmread_times), 2),
        "storescp_s": round(statistics.median(storescp_times), 3),
        "listener_until_filed_s": round(statistics.median(listener_times), 3),
        "storescp_images_per_s": round(len(files) / statistics.median(storescp_times), 1),
        "listener_images_per_s": round(len(files) / statistics.median(listener_times), 1),
    }
    print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
