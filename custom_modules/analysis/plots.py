"""Figures as PNG files (matplotlib, Agg backend: no screen needed). The only module of the
package that imports matplotlib.

DET curves on normal-deviate axes, target / non-target score histograms with the decision
threshold (``verification_figures`` draws both for every trial list of a verification run),
2-D maps of embeddings by speaker, the attention of one utterance, and the identification
report's rank and open-set curves.
"""

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.gridspec import GridSpec  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from scipy.stats import norm  # noqa: E402

from custom_modules.evaluation.identification import IdentificationRates  # noqa: E402
from custom_modules.evaluation.metrics import det_curve  # noqa: E402
from custom_modules.evaluation.verification import Verification, safe_name  # noqa: E402

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


def verification_figures(verification: Verification, output_folder: str | os.PathLike) -> None:
    """``<list>/det.png`` (every score variant) and ``<list>/score_histogram.png`` (the
    primary variant, with its EER threshold) for each list of a verification run."""
    primary = verification.metrics["primary_variant"]
    for name, scores in verification.scores.items():
        folder = Path(output_folder, safe_name(name))
        folder.mkdir(parents=True, exist_ok=True)
        labels = scores.labels
        curves = {variant: det_curve(s[labels], s[~labels])
                  for variant, s in scores.variants.items()}
        plot_det(curves, folder / "det.png", title=f"DET: {name}")
        threshold = verification.metrics["lists"][name]["variants"][primary]["eer_threshold"]
        chosen = scores.variants[primary]
        plot_score_histogram(chosen[labels].numpy(), chosen[~labels].numpy(), threshold,
                             folder / "score_histogram.png", title=f"{name}: {primary} scores")


def plot_identification(identification: IdentificationRates, path: str | os.PathLike) -> None:
    """Two panels: the closed-set rank curve, and the open-set curve (detection and
    identification rate against false-alarm rate) with the operating points marked."""
    report = identification.report
    figure, (closed, opened) = plt.subplots(1, 2, figsize=(11, 4.5))
    ranks = np.arange(1, len(identification.ranks) + 1)
    closed.plot(ranks, 100 * identification.ranks, marker="o", markersize=3)
    closed.set_xlabel("rank")
    closed.set_ylabel("own speaker within rank (%)")
    closed.set_title(f"closed set: top-1 {100 * report['top1']:.1f} %, "
                     f"top-5 {100 * report['top5']:.1f} %")
    closed.set_xlim(1, min(len(ranks), 20))
    closed.xaxis.set_major_locator(MaxNLocator(integer=True))
    closed.grid(alpha=0.3)
    opened.plot(100 * identification.false_alarm, 100 * identification.detection)
    for (name, point), marker in zip(report["operating_points"].items(), MARKERS, strict=False):
        opened.plot(100 * point["false_alarm"], 100 * point["detection"], marker, markersize=8,
                    label=f"{name}: {100 * point['detection']:.1f} % at "
                          f"{100 * point['false_alarm']:.1f} % false alarms")
    opened.set_xscale("symlog", linthresh=1)
    opened.set_xlabel("false alarms: impostor queries accepted (%)")
    opened.set_ylabel("detected and identified (%)")
    opened.set_title(f"open set: {report['enrolled_speakers']} enrolled, "
                     f"{report['impostor_speakers']} impostors")
    opened.legend(loc="lower right", fontsize=8)
    opened.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_timeline(reference: list, hypothesis: list, path: str | os.PathLike,
                  title: str) -> None:
    """Who spoke when: per speaker, the reference's turns (upper bar) and the hypothesis'
    (lower bar); segments are ``(start, end, speaker)`` and hypothesis clusters carry the
    name of the reference speaker they map to (unmapped ones their own)."""
    speakers = sorted({s[2] for s in reference})
    speakers += sorted({s[2] for s in hypothesis} - set(speakers))
    colours = plt.get_cmap("tab10")
    end = max(s[1] for s in reference + hypothesis)
    figure, axes = plt.subplots(figsize=(12, 0.6 * len(speakers) + 1.5))
    for row, speaker in enumerate(speakers):
        for segments, offset, alpha in ((reference, -0.18, 1.0), (hypothesis, 0.18, 0.55)):
            spans = [(s[0], s[1] - s[0]) for s in segments if s[2] == speaker]
            axes.broken_barh(spans, (row + offset - 0.15, 0.3), color=colours(row % 10),
                             alpha=alpha)
    axes.set_yticks(range(len(speakers)), speakers)
    axes.invert_yaxis()
    axes.set_xlim(0, end)
    axes.set_xlabel("seconds (per speaker: upper bar reference, lower bar hypothesis, paler)")
    axes.set_title(f"who spoke when: {title}")
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


MARKERS = "os^vD<>pP*Xh"


def plot_embedding_map(points: np.ndarray, labels: list[str], path: str | os.PathLike,
                       title: str) -> None:
    """Scatter of 2-D ``points``, one colour and marker per label, with a legend."""
    figure, axes = plt.subplots(figsize=(8, 6.5))
    names = sorted(set(labels))
    colours = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    labels_array = np.array(labels)
    for i, name in enumerate(names):
        chosen = labels_array == name
        axes.scatter(points[chosen, 0], points[chosen, 1], s=22, label=name,
                     color=colours(i % colours.N), marker=MARKERS[i % len(MARKERS)],
                     edgecolors="none", alpha=0.85)
    axes.set_title(title, fontsize=10)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7,
                ncol=1 if len(names) <= 25 else 2, title="speaker" if len(names) > 2 else None)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_attention(maps: dict[str, np.ndarray], sample_rate: int, hop: int,
                   path: str | os.PathLike, title: str, silent: np.ndarray | None = None
                   ) -> None:
    """One figure, time-aligned: the model's log-mel input, the pooling weights (channels
    sorted by their attention's centre in time, relative to uniform weights), and their
    mean over channels; below, the SE gates of every block. ``silent`` marks frames."""
    features, weights, gates = maps["features"], maps["weights"], maps["gates"]
    frames = weights.shape[1]
    seconds = frames * hop / sample_rate
    extent_time = (0.0, seconds)
    relative = weights * frames  # 1 = uniform attention
    centre = (weights * np.arange(frames)).sum(axis=1)
    relative = relative[np.argsort(centre)]
    figure = plt.figure(figsize=(11, 10))
    grid = GridSpec(4, 2, figure=figure, height_ratios=[1.0, 1.4, 0.7, 0.6],
                    width_ratios=[1, 0.02], hspace=0.55, wspace=0.03, top=0.95, bottom=0.06)
    axes_mel = figure.add_subplot(grid[0, 0])
    image = axes_mel.imshow(features.T, origin="lower", aspect="auto", cmap="magma",
                            extent=(*extent_time, 0, features.shape[1]))
    figure.colorbar(image, cax=figure.add_subplot(grid[0, 1]), label="dB (mean-normalised)")
    axes_mel.set_ylabel("mel bin")
    axes_mel.set_title(title, fontsize=10)
    axes_weights = figure.add_subplot(grid[1, 0], sharex=axes_mel)
    high = max(float(np.percentile(relative, 99.5)), 1.0 + 1e-6)
    image = axes_weights.imshow(relative, origin="lower", aspect="auto", cmap="viridis",
                                extent=(*extent_time, 0, relative.shape[0]), vmin=0, vmax=high)
    figure.colorbar(image, cax=figure.add_subplot(grid[1, 1]), label="weight x frames")
    axes_weights.set_ylabel("channel (sorted by\nattention centre)")
    axes_mean = figure.add_subplot(grid[2, 0], sharex=axes_mel)
    times = (np.arange(frames) + 0.5) * hop / sample_rate
    axes_mean.plot(times, relative.mean(axis=0), linewidth=1.0)
    axes_mean.axhline(1.0, color="grey", linestyle=":", linewidth=0.8, label="uniform")
    if silent is not None and silent.any():
        axes_mean.fill_between(times, 0, 1, where=silent, color="orange", alpha=0.3,
                               transform=axes_mean.get_xaxis_transform(), label="silence")
    axes_mean.set_ylabel("mean weight\nx frames")
    axes_mean.set_xlabel("time (s)")
    axes_mean.set_xlim(*extent_time)
    axes_mean.legend(loc="upper right", fontsize=8)
    axes_gates = figure.add_subplot(grid[3, 0])
    image = axes_gates.imshow(gates, aspect="auto", cmap="cividis", vmin=0, vmax=1,
                              interpolation="nearest")
    figure.colorbar(image, cax=figure.add_subplot(grid[3, 1]), label="gate")
    axes_gates.set_yticks(range(len(gates)), [f"block {i + 1}" for i in range(len(gates))])
    axes_gates.set_xlabel("channel")
    axes_gates.set_title("squeeze-excitation gates", fontsize=9)
    figure.savefig(path, dpi=100, bbox_inches=None)
    plt.close(figure)
