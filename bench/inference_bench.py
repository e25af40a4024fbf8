"""AI proposal benchmark: per-case time through Backend.propose next to the network's forward passes alone.

For each phantom case (full-size planning CT by default), the CT/PET arrays on their own grids go through
`backend.propose` as the Celery task hands them over after loading the series; the same run's
`Proposal.forward_seconds` is the time spent in the network's forward calls. Overhead ratio = end-to-end /
forward; target ≤ 1.5×. Wall time and process CPU time (all threads) are both measured, per stage too (from
the progress callback). With --dicom each repeat also reads the phantom's DICOM files (pydicom + load_volume
/ load_suv_volume, as inference.runner does) and that time is reported next to it. Medians over --repeats.

Run: `.venv/bin/python bench/inference_bench.py [--backend torchscript|nnunetv2|all] [--seeds 1000 1001 1002]
[--rows 512] [--slices N] [--repeats 3] [--dicom] [--mc-samples N] [--device cpu|cuda] [--json out.json]`.
Prints one JSON document. No Django or database needed.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from inference.backends.base import Backend, CaseImages  # noqa: E402
from inference.phantom_cases import phantom_case  # noqa: E402
from inference.postprocess import dice  # noqa: E402
from inference.sliding_window import cpu_threads  # noqa: E402

STAGES = ("preprocessing", "inference", "postprocessing")
TARGET_RATIO = 1.5


@dataclass
class BenchCase:
    """A case to time: `images()` gives CaseImages (from memory, or from DICOM files: that time is counted)."""

    name: str
    gtv: np.ndarray  # the true GTV on the CT grid, for a Dice sanity check
    images: Callable[[], CaseImages]
    from_dicom: bool = False


def phantom_cases(seeds, rows: int, slices: int | None, dicom: bool, workdir: Path) -> list[BenchCase]:
    """In-memory phantoms, or (dicom) phantoms written by write_phantom and read back at every repeat."""
    cases = []
    for seed in seeds:
        case = phantom_case(seed, rows=rows, slices=slices)
        if not dicom:
            images = CaseImages(hu=case.hu, ct_grid=case.ct_grid, suv=case.suv, pet_grid=case.pet_grid)
            cases.append(BenchCase(f"phantom-{seed}", case.gtv, lambda images=images: images))
            continue
        from imaging.phantom.writer import write_phantom

        files = write_phantom(workdir / f"phantom-{seed}", seed, rows=rows, slices=slices)
        cases.append(BenchCase(f"phantom-{seed}", case.gtv, lambda f=files: load_dicom(f.ct_dir, f.pet_dir), True))
    return cases


def load_dicom(ct_dir: Path, pet_dir: Path) -> CaseImages:
    """What inference.runner.case_images does, from files instead of the storage API."""
    import pydicom

    from imaging.dicom.volume import load_suv_volume, load_volume

    ct = load_volume([pydicom.dcmread(path) for path in sorted(ct_dir.glob("*.dcm"))])
    pet = load_suv_volume([pydicom.dcmread(path) for path in sorted(pet_dir.glob("*.dcm"))])
    return CaseImages(hu=ct.array, ct_grid=ct.grid, suv=pet.array, pet_grid=pet.grid)


class StageClock:
    """Progress callback noting wall and CPU time at each stage's first report."""

    def __init__(self):
        self.marks: list[tuple[str, float, float]] = []

    def __call__(self, stage: str, fraction: float) -> None:
        if not self.marks or self.marks[-1][0] != stage:
            self.marks.append((stage, time.perf_counter(), time.process_time()))

    def spans(self, end_wall: float, end_cpu: float) -> dict:
        out = {}
        for index, (stage, wall, cpu) in enumerate(self.marks):
            next_wall, next_cpu = self.marks[index + 1][1:] if index + 1 < len(self.marks) else (end_wall, end_cpu)
            out[stage] = {"wall": next_wall - wall, "cpu": next_cpu - cpu}
        return out


def time_once(backend: Backend, case: BenchCase) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    images = case.images()
    load_wall, load_cpu = time.perf_counter() - wall, time.process_time() - cpu
    clock = StageClock()
    wall, cpu = time.perf_counter(), time.process_time()
    proposal = backend.propose(images, progress=clock)
    end_wall, end_cpu = time.perf_counter(), time.process_time()
    run = {
        "propose_wall": end_wall - wall,
        "propose_cpu": end_cpu - cpu,
        "forward_wall": proposal.forward_seconds,
        "stages": clock.spans(end_wall, end_cpu),
        "members": proposal.members,
        "member_kind": proposal.member_kind,
        "device": proposal.device,
        "dice": dice(proposal.mask, case.gtv),
        "case_uncertainty": proposal.case_uncertainty,
    }
    if case.from_dicom:
        run["load_wall"], run["load_cpu"] = load_wall, load_cpu
    return run


def _median(runs: list[dict], key: str) -> float:
    return round(statistics.median(run[key] for run in runs), 3)


def _stage_medians(runs: list[dict], clock: str) -> dict:
    stages = [stage for stage in STAGES if all(stage in run["stages"] for run in runs)]
    return {stage: round(statistics.median(run["stages"][stage][clock] for run in runs), 3) for stage in stages}


def bench_backend(backend: Backend, cases: list[BenchCase], repeats: int) -> dict:
    """Per case: medians over `repeats` of end-to-end (propose) and forward-only time, wall and CPU, per stage."""
    per_case = []
    for case in cases:
        runs = [time_once(backend, case) for _ in range(repeats)]
        row = {
            "case": case.name,
            "shape": list(case.gtv.shape),
            "members": runs[0]["members"],
            "member_kind": runs[0]["member_kind"],
            "device": runs[0]["device"],
            "dice": round(runs[0]["dice"], 4),
            "case_uncertainty": round(runs[0]["case_uncertainty"], 4),
            "end_to_end_wall_s": _median(runs, "propose_wall"),
            "end_to_end_cpu_s": _median(runs, "propose_cpu"),
            "forward_wall_s": _median(runs, "forward_wall"),
            "overhead_ratio": round(statistics.median(r["propose_wall"] / r["forward_wall"] for r in runs), 3),
            "cpu_per_wall": round(statistics.median(r["propose_cpu"] / r["propose_wall"] for r in runs), 2),
            "stages_wall_s": _stage_medians(runs, "wall"),
            "stages_cpu_s": _stage_medians(runs, "cpu"),
            "repeats_end_to_end_wall_s": [round(r["propose_wall"], 3) for r in runs],
        }
        if "inference" in row["stages_wall_s"]:
            row["inference_stage_minus_forward_s"] = round(row["stages_wall_s"]["inference"] - row["forward_wall_s"], 3)
        if case.from_dicom:
            row["dicom_load_wall_s"] = _median(runs, "load_wall")
            row["dicom_load_cpu_s"] = _median(runs, "load_cpu")
            row["with_loading_ratio"] = round(
                statistics.median((r["load_wall"] + r["propose_wall"]) / r["forward_wall"] for r in runs), 3
            )
        per_case.append(row)
    ratios = [row["overhead_ratio"] for row in per_case]
    return {
        "cases": per_case,
        "median_overhead_ratio": round(statistics.median(ratios), 3),
        "max_overhead_ratio": round(max(ratios), 3),
        "target_ratio": TARGET_RATIO,
        "meets_target": max(ratios) <= TARGET_RATIO,
        "threads_after": torch.get_num_threads(),
    }


def torchscript_backend(device: str | None, mc_samples: int | None) -> Backend:
    from inference.backends.torchscript import TorchScriptBackend
    from inference.predict import DEMO_MODEL_DIR

    card, files = TorchScriptBackend.describe(DEMO_MODEL_DIR)
    if mc_samples is not None:
        card = {**card, "inference": {**card.get("inference", {}), "mc_dropout_samples": mc_samples}}
    return TorchScriptBackend.load(DEMO_MODEL_DIR, card, files, device=device)


def nnunet_backend(device: str | None, mc_samples: int | None) -> Backend:
    from inference.backends.nnunet import NnUNetBackend  # written separately; ImportError → skipped
    from inference.nnunet_model import ensure_trained_model

    folder = ensure_trained_model()  # trains the small test model once (minutes) when not cached
    card, files = NnUNetBackend.describe(folder)
    return NnUNetBackend.load(folder, card, files, device=device)


BACKENDS = {"torchscript": torchscript_backend, "nnunetv2": nnunet_backend}


def warm_up(backend: Backend) -> None:
    """One small case first: TorchScript's profiling executor optimises the graph over the first calls."""
    case = phantom_case(1009, rows=128, slices=32)
    backend.propose(CaseImages(hu=case.hu, ct_grid=case.ct_grid, suv=case.suv, pet_grid=case.pet_grid))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="torchscript")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001, 1002])
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--slices", type=int, default=None, help="fewer slices, centred on the tumour")
    parser.add_argument("--repeats", type=int, default=int(os.environ.get("BENCH_REPEATS", "3")))
    parser.add_argument("--dicom", action="store_true", help="read the cases from DICOM files at every repeat")
    parser.add_argument("--mc-samples", type=int, default=None, help="override the card's MC dropout samples")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)

    result = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_threads_allowed": cpu_threads(),
        "torch_threads_before": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_before": [round(v, 2) for v in os.getloadavg()],
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "backends": {},
    }
    with tempfile.TemporaryDirectory(prefix="ct-inference-bench-") as workdir:
        cases = phantom_cases(args.seeds, args.rows, args.slices, args.dicom, Path(workdir))
        for name in BACKENDS if args.backend == "all" else [args.backend]:
            try:
                backend = BACKENDS[name](args.device, args.mc_samples)
            except ImportError as exc:
                result["backends"][name] = {"skipped": f"{name} backend not available: {exc}"}
                print(f"skipping {name}: {exc}", file=sys.stderr)
                continue
            except Exception as exc:  # e.g. the nnU-Net test model could not be built: report, go on
                result["backends"][name] = {"skipped": f"{name} backend could not be loaded: {exc!r}"[:2000]}
                print(f"skipping {name}: {exc!r}", file=sys.stderr)
                continue
            warm_up(backend)
            began = time.perf_counter()
            result["backends"][name] = bench_backend(backend, cases, args.repeats)
            result["backends"][name]["device"] = str(getattr(backend, "device", args.device or "default"))
            result["backends"][name]["bench_seconds"] = round(time.perf_counter() - began, 1)
    result["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
