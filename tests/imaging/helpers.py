"""Small helpers for imaging tests: zips, patients matching phantoms, stored-file inventories."""

import io
import zipfile
from pathlib import Path

from django.conf import settings

from tests.conftest import enrol


def zip_of(*folders: Path, extra: dict | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder in folders:
            for path in sorted(folder.glob("*.dcm")):
                archive.write(path, f"{folder.name}/{path.name}")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def phantom_patient(world, seed: int = 11, site: str = "AAR"):
    coordinator = world.coordinator if site == "AAR" else world.coordinator_ode
    physician = world.physician if site == "AAR" else world.physician_ode
    return enrol(world.trial, coordinator, physician, f"PHANTOM-{seed}", site=site)


def stored_files() -> set[Path]:
    root = Path(settings.MEDIA_ROOT)
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()
