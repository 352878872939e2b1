"""Figures as PNG files (matplotlib, Agg backend: no screen needed).

DET curves on normal-deviate axes, and target / non-target score histograms with the decision
threshold.
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import norm  # noqa: E402

DET_TICKS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8]


def plot_det(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike,
             title: str = "DET curve") -> None:
    """One DET curve per entry of ``curves``: name -> (false-alarm rates, miss rates). The
    axes reach 40 %, or 80 % when a curve's equal error rate is above 30 %."""
    figure, axes = plt.subplots(figsize=(6, 6))
    floor = 1e-4
    for name, (false_alarm, miss) in curves.items():
        axes.plot(norm.ppf(np.clip(false_alarm, floor, 1 - floor)),
                  norm.ppf(np.clip(miss, floor, 1 - floor)), label=name)
    worst_eer = max(float(np.min(np.maximum(fa, miss))) for fa, miss in curves.values())
    shown = [t for t in DET_TICKS if t <= (0.4 if worst_eer < 0.3 else 0.8)]
    ticks = norm.ppf(shown)
    labels = [f"{100 * t:g}" for t in shown]
    axes.set_xticks(ticks, labels)
    axes.set_yticks(ticks, labels)
    axes.set_xlim(ticks[0], ticks[-1])
    axes.set_ylim(ticks[0], ticks[-1])
    axes.plot([ticks[0], ticks[-1]], [ticks[0], ticks[-1]], color="grey", linewidth=0.5,
              linestyle=":")
    axes.set_xlabel("False alarm rate (%)")
    axes.set_ylabel("Miss rate (%)")
    axes.set_title(title)
    axes.grid(True, linewidth=0.3)
    axes.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_score_histogram(positive: np.ndarray, negative: np.ndarray, threshold: float,
                         path: str | os.PathLike, title: str = "Scores") -> None:
    """Overlaid histograms of target and non-target scores with the threshold marked."""
    figure, axes = plt.subplots(figsize=(7, 4))
    edges = np.histogram_bin_edges(np.concatenate([positive, negative]), bins=80)
    axes.hist(negative, bins=edges, alpha=0.6, density=True,
              label=f"non-target ({len(negative):,})")
    axes.hist(positive, bins=edges, alpha=0.6, density=True, label=f"target ({len(positive):,})")
    axes.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    axes.set_xlabel("score")
    axes.set_ylabel("density")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
