"""A time budget for hypothesis: fuzz targets run in `make test` for FUZZ_SECONDS (default 20 s) or a share of it;
FUZZ_SECONDS=600 makes every target run thirty times longer.

Hypothesis has no time limit of its own, so a target runs in batches of examples, batch n with @seed(n):
the same code meets the same inputs in the same order, and a failure names its batch (FUZZ_SEED=n replays
from it). Failing examples are also kept in var/hypothesis/examples, and replayed first by the next run.
"""

import os
import time
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, seed, settings
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.database import DirectoryBasedExampleDatabase

FUZZ_SECONDS = float(os.environ.get("FUZZ_SECONDS", "20"))
FIRST_SEED = int(os.environ.get("FUZZ_SEED", "0"))
BATCH = 25
HOME = Path(__file__).resolve().parents[2] / "var" / "hypothesis"  # not .hypothesis/ in the working tree
set_hypothesis_home_dir(HOME)
DATABASE = DirectoryBasedExampleDatabase(HOME / "examples")

fuzz_settings = settings(
    max_examples=BATCH,
    deadline=None,
    database=DATABASE,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    print_blob=True,
)


def fuzz(target: Callable[[], None], seconds: float = FUZZ_SECONDS) -> int:
    """Run the @given `target` batch after batch until `seconds` have passed; return how many batches ran."""
    stop = time.monotonic() + seconds
    batch = FIRST_SEED
    while True:
        try:
            seed(batch)(target)()
        except BaseException as exc:
            exc.add_note(f"fuzz batch {batch}: FUZZ_SEED={batch} starts there")
            raise
        batch += 1
        if time.monotonic() >= stop:
            return batch - FIRST_SEED
