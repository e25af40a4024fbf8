"""Correction-metrics benchmark: ours next to DeepMind's surface-distance and platipy, in the same run.

A GTV-sized pair (an irregular ~45 cm³ blob and a corrected version) on a 512×512×160 grid with
0.98×0.98×2.5 mm voxels.
- ours: `compare()`, all metrics (Dice, surface Dice at 1/2/3 mm, HD95, Hausdorff, MSD, APL at 0/1 mm,
  volumes, edited slices);
- reference: surface-distance 0.1 computing its two, `compute_surface_distances` +
  `compute_surface_dice_at_tolerance` (1, 2, 3 mm) + `compute_robust_hausdorff` (95);
- platipy 0.7.2: `compute_surface_dsc` (1, 2, 3 mm) + `compute_surface_metrics` (its HD95, Hausdorff, mean
  surface distance), on SimpleITK images built beforehand, in its own venv (it needs pydicom<3), timed
  inside that subprocess on the same arrays.
Targets: ours ≤ 3× the reference's time, and ≥ 10× faster than platipy. Median of repeats.

Setup for platipy (once): `python3.11 -m venv var/bench/platipy-venv &&
var/bench/platipy-venv/bin/pip install platipy==0.7.2 numpy scipy`.
Run: `python bench/metrics_bench.py` (BENCH_REPEATS, PLATIPY_PYTHON to override). Writes var/bench/metrics.json.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "var" / "bench"
REPEATS = int(os.environ.get("BENCH_REPEATS", "7"))
PLATIPY_REPEATS = int(os.environ.get("BENCH_PLATIPY_REPEATS", "3"))
PLATIPY_PYTHON = Path(os.environ.get("PLATIPY_PYTHON", OUT / "platipy-venv" / "bin" / "python"))
SHAPE = (160, 512, 512)
SPACING = (2.5, 0.98, 0.98)
TOLERANCES = (1, 2, 3)

PLATIPY_SCRIPT = """
import json, statistics, sys, time
import numpy as np, SimpleITK as sitk
from platipy.imaging.label.comparison import compute_surface_dsc, compute_surface_metrics
before, after, spacing, repeats = np.load(sys.argv[1]), np.load(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])
images = []
for array in (before, after):
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(tuple(reversed(spacing)))
    images.append(image)
times, result = [], None
for _ in range(repeats):
    start = time.perf_counter()
    sdsc = {t: float(compute_surface_dsc(*images, tau=float(t))) for t in (1, 2, 3)}
    surface = compute_surface_metrics(*images)
    times.append(time.perf_counter() - start)
    result = {"surface_dice": sdsc, "hd95_mm": float(surface["hausdorffDistance95"]),
              "hausdorff_mm": float(surface["hausdorffDistance"]), "msd_mm": float(surface["meanSurfaceDistance"])}
print(json.dumps({"seconds": times, "median_s": statistics.median(times), "values": result}))
"""


def gtv_pair(seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """An irregular lobulated GTV (radius ~22 mm) and the panel's correction: grown on one side, trimmed on
    another, a nodule added."""
    rng = np.random.default_rng(seed)
    z, y, x = (np.arange(n) - n // 2 for n in SHAPE)
    zz, yy, xx = np.meshgrid(z * SPACING[0], y[200:312] * SPACING[1], x[200:312] * SPACING[2], indexing="ij")
    radius = np.sqrt(zz**2 + yy**2 + xx**2)
    wobble = ndimage.gaussian_filter(rng.standard_normal(radius.shape), (2, 6, 6))
    before_box = radius < 22 + 60 * wobble
    after_box = before_box.copy()
    after_box[:, :, 60:] = ndimage.binary_dilation(before_box, iterations=2)[:, :, 60:]
    after_box[:, 30:45] &= ndimage.binary_erosion(before_box, iterations=3)[:, 30:45]
    after_box |= np.sqrt(zz**2 + (yy + 20) ** 2 + (xx - 18) ** 2) < 6
    before, after = (np.zeros(SHAPE, dtype=bool) for _ in range(2))
    before[:, 200:312, 200:312], after[:, 200:312, 200:312] = before_box, after_box
    return before, after


def timed(function, repeats: int) -> tuple[float, list[float], object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def run_platipy(before: np.ndarray, after: np.ndarray) -> dict | None:
    if not PLATIPY_PYTHON.exists():
        print(f"platipy: {PLATIPY_PYTHON} not found; see the setup line in this file's docstring.")
        return None
    paths = [OUT / "metrics_before.npy", OUT / "metrics_after.npy"]
    for path, array in zip(paths, (before, after), strict=True):
        np.save(path, array)
    command = [str(PLATIPY_PYTHON), "-c", PLATIPY_SCRIPT, *map(str, paths), json.dumps(SPACING), str(PLATIPY_REPEATS)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    for path in paths:
        path.unlink()
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    from panel_review.correction_metrics import compare
    from tests.panel_review.reference import surface_distance

    sd = surface_distance()
    OUT.mkdir(parents=True, exist_ok=True)
    before, after = gtv_pair()

    def reference():
        distances = sd.compute_surface_distances(before, after, SPACING)
        sdsc = {t: float(sd.compute_surface_dice_at_tolerance(distances, t)) for t in TOLERANCES}
        return sdsc, float(sd.compute_robust_hausdorff(distances, 95))

    compare(before, after, SPACING)  # warm the lookup table and imports
    ours_s, ours_times, ours = timed(lambda: compare(before, after, SPACING), REPEATS)
    ref_s, ref_times, (ref_sdsc, ref_hd95) = timed(reference, REPEATS)
    platipy = run_platipy(before, after)

    ratio_ref = ours_s / ref_s
    speedup = platipy["median_s"] / ours_s if platipy else None
    report = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"numpy {np.__version__}, load {os.getloadavg()[0]:.2f}",
        "grid": {"shape_zyx": SHAPE, "spacing_mm": SPACING},
        "gtv_cc": {"before": ours.volume_before_cc, "after": ours.volume_after_cc},
        "repeats": {"ours_and_reference": REPEATS, "platipy": PLATIPY_REPEATS},
        "ours": {"median_s": ours_s, "seconds": ours_times, "values": ours.as_dict()},
        "reference": {
            "median_s": ref_s,
            "seconds": ref_times,
            "values": {"surface_dice": ref_sdsc, "hd95_mm": ref_hd95},
        },
        "platipy": platipy,
        "ours_over_reference": ratio_ref,
        "platipy_over_ours": speedup,
        "targets_met": {"le_3x_reference": ratio_ref <= 3, "ge_10x_faster_than_platipy": speedup and speedup >= 10},
    }
    (OUT / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")

    print(f"GTV pair: {ours.volume_before_cc:.1f} → {ours.volume_after_cc:.1f} cm³ on {SHAPE} at {SPACING} mm")
    print(f"{'implementation':52} {'median':>9}  surface Dice 1/2/3 mm      HD95")
    sd_ours = "/".join(f"{ours.surface_dice[t]:.4f}" for t in TOLERANCES)
    print(f"{'ours: compare(), all metrics':52} {ours_s:8.3f}s  {sd_ours}  {ours.hd95_mm:.3f}")
    sd_ref = "/".join(f"{ref_sdsc[t]:.4f}" for t in TOLERANCES)
    print(f"{'reference surface-distance: surface Dice + HD95':52} {ref_s:8.3f}s  {sd_ref}  {ref_hd95:.3f}")
    if platipy:
        sd_pp = "/".join(f"{platipy['values']['surface_dice'][str(t)]:.4f}" for t in TOLERANCES)
        print(f"{'platipy: surface DSC + surface metrics':52} {platipy['median_s']:8.3f}s  {sd_pp}  "
              f"{platipy['values']['hd95_mm']:.3f}")  # fmt: skip
    print(f"ours / reference = {ratio_ref:.2f}× (target ≤ 3×: {'met' if ratio_ref <= 3 else 'NOT met'})")
    if speedup:
        print(f"platipy / ours = {speedup:.1f}× (target ≥ 10×: {'met' if speedup >= 10 else 'NOT met'})")
    print(f"wrote {OUT / 'metrics.json'}")


if __name__ == "__main__":
    main()
