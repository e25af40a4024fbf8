"""The analysis report's figures: plain data in, PNG bytes out.

No Django and no knowledge of the arms: every function draws whatever labels it is given, so the blinded report
can only ever show A/B. Matplotlib's Agg backend keeps it headless; jitter uses a seeded generator so the same
data give the same file.
"""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyBboxPatch

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
QUADRANT_COLOURS = ("#d9f0d3", "#fee8c8", "#deebf7", "#fbb4b9")


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def _box(ax, x: float, y: float, text: str, width: float = 3.2, height: float = 0.7) -> None:
    patch = FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.05",
                           facecolor="#f4f6fb", edgecolor="#34495e")  # fmt: skip
    ax.add_patch(patch)
    ax.text(x, y, text, ha="center", va="center", fontsize=8.5)


def _arrow(ax, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "color": "#34495e"})


def consort(counts: dict) -> bytes:
    """CONSORT flow: enrolled → randomised → allocated per arm → submitted → panel approved → analysed.

    ``counts`` holds ``enrolled``, ``not_randomised``, ``randomised`` and ``arms``: {label: {allocated,
    submitted, approved, analysed}}; the drop between two stages is shown beside it so every patient is accounted.
    """
    arms = counts.get("arms", {})
    fig, ax = plt.subplots(figsize=(8, 7.5))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    ax.axis("off")
    _box(ax, 5, 9.4, f"Enrolled (n = {counts.get('enrolled', 0)})")
    _box(ax, 8.4, 8.5, f"Not randomised (n = {counts.get('not_randomised', 0)})", width=2.9)
    _box(ax, 5, 7.6, f"Randomised (n = {counts.get('randomised', 0)})")
    _arrow(ax, (5, 9.05), (5, 7.95))
    _arrow(ax, (5, 8.5), (6.95, 8.5))
    stages = [("allocated", "Allocated to arm {arm}"), ("submitted", "GTV submitted"),
              ("approved", "Panel approved"), ("analysed", "Analysed (primary endpoint)")]  # fmt: skip
    xs = np.linspace(2.5, 7.5, max(len(arms), 1))
    for x, (arm, numbers) in zip(xs, arms.items(), strict=False):
        _arrow(ax, (5, 7.25), (x, 6.35))
        previous = None
        for level, (key, label) in enumerate(stages):
            y = 6.0 - level * 1.65
            n = numbers.get(key, 0)
            _box(ax, x, y, f"{label.format(arm=arm)}\n(n = {n})", width=3.0, height=0.8)
            if previous is not None:
                _arrow(ax, (x, y + 1.25), (x, y + 0.42))
                ax.text(x + 0.1, y + 0.83, f"not yet / excluded: {previous - n}", fontsize=7, color="#7f8c8d")
            previous = n
    ax.set_title("CONSORT flow", fontsize=11)
    return _png(fig)


def by_arm_box(values_by_arm: dict[str, list[float]], title: str, unit: str) -> bytes:
    """Box plot per arm with every observation as a jittered point, so small samples are not hidden by a box."""
    labels = list(values_by_arm)
    data = [_finite(values_by_arm[label]) for label in labels]
    rng = np.random.default_rng(20240501)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    positions = list(range(1, len(labels) + 1))
    drawable = [(p, d) for p, d in zip(positions, data, strict=True) if d]
    if drawable:
        ax.boxplot([d for _, d in drawable], positions=[p for p, _ in drawable], widths=0.5, showfliers=False,
                   patch_artist=True, boxprops={"facecolor": "#eef2f8"}, medianprops={"color": "black"})  # fmt: skip
    for index, (position, values) in enumerate(zip(positions, data, strict=True)):
        jitter = rng.uniform(-0.12, 0.12, len(values))
        ax.scatter(np.full(len(values), position) + jitter, values, s=28, alpha=0.8,
                   color=COLOURS[index % len(COLOURS)], edgecolor="white", zorder=3)  # fmt: skip
    ax.set_xticks(positions, [f"Arm {label}\n(n = {len(d)})" for label, d in zip(labels, data, strict=True)])
    ax.set_xlim(0.4, len(labels) + 0.6)
    ax.set_ylabel(f"{title} ({unit})" if unit else title)
    ax.set_title(title)
    if not any(data):
        ax.text(0.5, 0.5, "no observed values yet", transform=ax.transAxes, ha="center", color="#7f8c8d")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def outcome_2x2(time: list, correction: list, arms: list, time_threshold: float, size_threshold: float) -> bytes:
    """Time used against size of corrections, split at the thresholds into the four labelled quadrants.

    Left of the time threshold is "time saved", below the size threshold "small corrections"; points on a
    threshold count as no time saved / small, as in ``statistics.quadrants``.
    """
    points = [(float(t), float(c), a) for t, c, a in zip(time, correction, arms, strict=True)
              if _finite([t]) and _finite([c])]  # fmt: skip
    fig, ax = plt.subplots(figsize=(7, 5.2))
    ts = [p[0] for p in points] + [time_threshold]
    cs = [p[1] for p in points] + [size_threshold]
    pad_t = max((max(ts) - min(ts)) * 0.15, 1.0)
    pad_c = max((max(cs) - min(cs)) * 0.15, 1.0)
    x_low, x_high = min(ts) - pad_t, max(ts) + pad_t
    y_low, y_high = min(cs) - pad_c, max(cs) + pad_c
    regions = [  # (x from, x to, y from, y to, label)
        (x_low, time_threshold, y_low, size_threshold, "time saved,\nsmall corrections"),
        (x_low, time_threshold, size_threshold, y_high, "time saved,\nlarge corrections"),
        (time_threshold, x_high, y_low, size_threshold, "no time saved,\nsmall corrections"),
        (time_threshold, x_high, size_threshold, y_high, "no time saved,\nlarge corrections"),
    ]
    for colour, (x0, x1, y0, y1, label) in zip(QUADRANT_COLOURS, regions, strict=True):
        ax.fill_between([x0, x1], y0, y1, color=colour, zorder=0)
        ax.text((x0 + x1) / 2, y1 - (y1 - y0) * 0.08, label, ha="center", va="top", fontsize=8, color="#444")
    ax.axvline(time_threshold, color="#555", linestyle="--", linewidth=1)
    ax.axhline(size_threshold, color="#555", linestyle="--", linewidth=1)
    for index, arm in enumerate(dict.fromkeys(a for *_, a in points)):
        mine = [p for p in points if p[2] == arm]
        ax.scatter([p[0] for p in mine], [p[1] for p in mine], s=36, label=f"Arm {arm}",
                   color=COLOURS[index % len(COLOURS)], edgecolor="black", linewidth=0.5, zorder=3)  # fmt: skip
    if points:
        ax.legend(loc="lower right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no patient with both measures yet", transform=ax.transAxes, ha="center")
    ax.set_xlim(x_low, x_high)
    ax.set_ylim(y_low, y_high)
    ax.set_xlabel("Delineation active time (s)")
    ax.set_ylabel("Size of the panel's corrections: added path length at 1 mm (mm)")
    ax.set_title("Time used against size of corrections")
    return _png(fig)


def bang_bars(indices: dict[str, tuple[float | None, float | None, float | None]]) -> bytes:
    """Bang's index per arm with its 95% Wald interval; 0 is random guessing, ±1 complete unblinding."""
    labels = list(indices)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for position, label in enumerate(labels):
        index, low, high = indices[label]
        if index is None:
            ax.text(position, 0.05, "no answers", ha="center", fontsize=8, color="#7f8c8d")
            continue
        ax.bar(position, index, width=0.5, color=COLOURS[position % len(COLOURS)], alpha=0.8)
        if low is not None and high is not None:
            ax.errorbar(position, index, yerr=[[index - low], [high - index]], color="black", capsize=6)
    ax.axhline(0, color="#555", linewidth=1)
    ax.set_xticks(range(len(labels)), [f"Arm {label}" for label in labels])
    ax.set_xlim(-0.7, len(labels) - 0.3)
    ax.set_ylim(-1.1, 1.1)
    ax.set_ylabel("Bang's blinding index")
    ax.set_title("Blinding of the panel (Bang's index, 95% CI)")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)
