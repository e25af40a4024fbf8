"""DeepMind's `surface-distance` (Nikolov et al. 2021), the oracle the correction metrics are tested against.

Fetched at test time from its source distribution on PyPI and kept under var/ (git-ignored); nothing of it is
in the repository. The 0.1 release predates NumPy 2: its `np.Inf`/`np.NaN` aliases fail there (on empty
masks), and its `scipy.ndimage.filters`/`.morphology` paths are deprecated, so a patched copy is imported.
If it cannot be fetched, the tests fail with the reason (they do not skip: agreement is the acceptance test).
"""

import importlib
import subprocess
import sys
import tarfile
from functools import lru_cache
from pathlib import Path

import pytest

VERSION = "0.1"
CACHE = Path(__file__).resolve().parents[2] / "var" / "test-cache" / f"surface-distance-{VERSION}"
_PATCHES = {
    "np.Inf": "np.inf",
    "np.NaN": "np.nan",
    "ndimage.filters.": "ndimage.",
    "ndimage.morphology.": "ndimage.",
}


def _download() -> Path:
    archive = next(CACHE.glob("surface_distance-*.tar.gz"), None)
    if archive is None:
        CACHE.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   f"surface-distance=={VERSION}", "-d", str(CACHE)]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        archive = next(CACHE.glob("surface_distance-*.tar.gz"), None)
        if result.returncode != 0 or archive is None:
            pytest.fail(
                f"Cannot fetch the reference implementation surface-distance=={VERSION} from PyPI "
                f"(`{' '.join(command)}` exited {result.returncode}):\n{result.stderr[-2000:]}",
                pytrace=False,
            )
    return archive


def _extract(archive: Path) -> Path:
    root = CACHE / "patched"
    package = root / "surface_distance"
    if not (package / "metrics.py").is_file():
        package.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if member.isfile() and len(parts) == 3 and parts[1] == "surface_distance" and parts[2].endswith(".py"):
                    source = tar.extractfile(member).read().decode()
                    for old, new in _PATCHES.items():
                        source = source.replace(old, new)
                    (package / parts[2]).write_text(source)
    return root


@lru_cache(maxsize=1)
def surface_distance():
    """The patched `surface_distance` module (downloaded once, then reused from var/test-cache)."""
    root = _extract(_download())
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    module = importlib.import_module("surface_distance")
    assert Path(module.__file__).resolve().is_relative_to(root.resolve()), module.__file__
    return module
