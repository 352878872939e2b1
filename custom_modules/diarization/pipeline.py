"""Diarization of one recording: speech regions -> overlapping windows -> batched embeddings
-> spectral clustering -> frame-level resegmentation -> segments.

1. **Speech**: Silero VAD (``inference.speech``) at ``speech_threshold`` finds the speech;
   regions closer than ``merge_gap`` are joined (pauses inside a turn), regions shorter than
   ``min_region`` are dropped. Oracle regions (the reference's) can be given instead.
2. **Windows** of ``window`` seconds every ``hop`` seconds inside each region (a region
   shorter than a window is one window), embedded in batches by the model.
3. **Clustering**: spectral clustering of the cosine affinities (``cluster``), the number of
   speakers estimated from the eigengap or given. (Average-linkage agglomerative clustering
   with a tuned threshold did worse on the demo's development conversations: it splits
   speakers into extra small clusters; docs/BENCHMARKS.md.)
4. **Resegmentation**: every 10 ms frame of speech takes the cluster whose centroid its
   covering windows are most similar to (on average); so boundaries fall between window
   centres where the evidence changes, not at window edges. Runs of one cluster are the
   segments.

``analyse`` does steps 1 and 2 (the costly part) once (``streaming.analyse_file`` for a file,
block by block); ``segments`` does 3 and 4 for any settings or number of speakers, which is how
the settings are tuned on development recordings. ``SpeakerEncoder.diarize`` and the
evaluation run this one sequence.
"""

import json
import logging
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy.linalg import eigh
from sklearn.cluster import KMeans

from custom_modules.diarization.rttm import Segment
from custom_modules.errors import InputError, finite_number
from custom_modules.files import within
from custom_modules.inference.speech import SpeechDetector
from custom_modules.models.embedder import Embedder
from custom_modules.sidecars import KIND_FILES

logger = logging.getLogger(__name__)
FRAME = 0.01                 # seconds: the resolution of the segments
(SETTINGS,) = KIND_FILES["diarization"]   # tuned settings (a sidecar, or older folders)
# More windows than this (25 minutes of speech) are clustered through an even subsample of
# this many, every window then going to the nearest centroid: the spectral clustering's
# affinity and eigendecomposition stay this size (10 hours: 9.2 GB and an hour otherwise).
MAX_CLUSTERED = 2000
# Used for a folder without tuned settings (an imported model, a fresh export): the same
# file format, tuned for SpeechBrain's VoxCeleb ECAPA on real conversations.
DEFAULT_SETTINGS = Path(__file__).with_name("default_settings.json")


class DiarizationOptions(NamedTuple):
    """Speech, window and clustering settings (``hparams/diarize.yaml``)."""

    speech_threshold: float  # speech probability of the detector's frames
    merge_gap: float         # speech regions closer than this are one
    min_region: float        # shorter speech regions are dropped
    window: float            # seconds per embedding window
    hop: float               # seconds between window starts
    batch: int               # windows per embedding batch
    max_speakers: int        # the most speakers the estimate considers


class Analysis(NamedTuple):
    """A recording's speech regions ``(regions, 2)``, windows ``(windows, 2)`` (seconds) and
    their unit vectors in the back-end's space ``(windows, d)``."""

    duration: float
    regions: np.ndarray
    windows: np.ndarray
    vectors: torch.Tensor


def speech_regions(wave: torch.Tensor, detector: SpeechDetector, options: DiarizationOptions,
                   rate: int) -> np.ndarray:
    """Speech ``(regions, 2)`` in seconds: the detector's, joined across short gaps, short
    ones dropped."""
    found = np.array(detector.segments(wave, options.speech_threshold),
                     dtype=np.float64).reshape(-1, 2) / rate
    return merge_regions(found, options.merge_gap, options.min_region)


def merge_regions(regions: np.ndarray, gap: float, shortest: float) -> np.ndarray:
    """Join regions ``(n, 2)`` (sorted) closer than ``gap``; drop those under ``shortest``.

    >>> merge_regions(np.array([[0.0, 1.0], [1.1, 2.0], [3.0, 3.1]]), 0.3, 0.2)
    array([[0., 2.]])
    """
    if not len(regions):
        return regions
    starts_new = np.concatenate([[True], regions[1:, 0] - regions[:-1, 1] >= gap])
    merged = np.stack([regions[starts_new, 0],
                       np.maximum.reduceat(regions[:, 1], np.flatnonzero(starts_new))], axis=1)
    return merged[merged[:, 1] - merged[:, 0] >= shortest]


def window_grid(regions: np.ndarray, window: float, hop: float) -> np.ndarray:
    """Windows ``(n, 2)`` of ``window`` seconds every ``hop`` inside each region; the last
    one ends at the region's end; a region shorter than a window is one window.

    >>> window_grid(np.array([[0.0, 3.0], [4.0, 4.5]]), 1.5, 0.75)
    array([[0.  , 1.5 ],
           [0.75, 2.25],
           [1.5 , 3.  ],
           [4.  , 4.5 ]])
    """
    pieces = []
    for start, end in regions:
        length = end - start
        if length <= window:
            pieces.append(np.array([[start, end]]))
            continue
        starts = start + hop * np.arange(int(np.floor((length - window) / hop + 1e-9)) + 1)
        if starts[-1] + window < end - 1e-9:
            starts = np.append(starts, end - window)
        pieces.append(np.stack([starts, starts + window], axis=1))
    return np.concatenate(pieces) if pieces else np.zeros((0, 2))


def analyse(embedder: Embedder, wave: torch.Tensor, regions: np.ndarray,
            options: DiarizationOptions) -> Analysis:
    """Windows and their unit embeddings for the speech ``regions`` of ``wave``
    ``(samples,)``."""
    rate = embedder.sample_rate
    windows = window_grid(regions, options.window, options.hop)
    bounds = np.round(windows * rate).astype(np.int64)
    vectors = []
    with torch.inference_mode():
        for first in range(0, len(bounds), options.batch):
            chunk = bounds[first:first + options.batch]
            lengths = chunk[:, 1] - chunk[:, 0]
            batch = torch.zeros(len(chunk), int(lengths.max()))
            for row, (a, b) in enumerate(chunk):
                batch[row, :b - a] = wave[a:b]
            embeddings = embedder(batch.to(embedder.device),
                                  torch.from_numpy(lengths).to(embedder.device))
            vectors.append(F.normalize(embeddings.float().cpu(), dim=1))
    dim = embedder.embedding_model.config["lin_neurons"]
    return Analysis(len(wave) / rate, regions, windows,
                    torch.cat(vectors) if vectors else torch.zeros(0, dim))


def cluster(vectors: torch.Tensor, pruning: float, max_speakers: int,
            num_speakers: int | None, merge: float | None = None) -> np.ndarray:
    """Spectral clustering of unit vectors ``(windows, d)``: labels ``(windows,)`` from 0.

    The affinity is the cosine similarity, each row keeping only its ``pruning`` share of
    highest entries (then made symmetric); the number of clusters is ``num_speakers``, or the
    largest gap among the smallest ``max_speakers + 1`` eigenvalues of the normalised
    Laplacian (the eigengap estimate); the rows of the first eigenvectors are clustered by
    k-means. When the number was estimated and ``merge`` is set, the two clusters whose
    centroids are closest are joined while their cosine is at least ``merge`` (the eigengap
    splits one voice in two more often than it joins two), and the clustering is done again
    for the number left. Above ``MAX_CLUSTERED`` windows, an even subsample is clustered
    and every window takes the nearest of its clusters' centroids.
    """
    count = len(vectors)
    if count > MAX_CLUSTERED:
        chosen = torch.from_numpy(np.linspace(0, count - 1, MAX_CLUSTERED).round().astype(int))
        found = cluster(vectors[chosen], pruning, max_speakers, num_speakers, merge)
        centres = F.normalize(torch.zeros(int(found.max()) + 1, vectors.shape[1]).index_add_(
            0, torch.from_numpy(found), vectors[chosen].float()), dim=1)
        return by_first_appearance((vectors.float() @ centres.T).argmax(dim=1).numpy())
    if count < 3:
        return np.zeros(count, dtype=np.int64)
    affinity = (vectors @ vectors.T).float().numpy()
    keep = max(2, int(np.ceil(pruning * count)))
    floor = np.partition(affinity, count - keep, axis=1)[:, count - keep][:, None]
    affinity = np.where(affinity >= floor, np.maximum(affinity, 0), 0)
    affinity = (affinity + affinity.T) / 2
    degree = 1 / np.sqrt(np.maximum(affinity.sum(axis=1), 1e-12))
    laplacian = np.eye(count, dtype=np.float32) - affinity * degree[:, None] * degree[None, :]
    top = min(max_speakers, count - 1)
    values, vectors_ = eigh(laplacian, subset_by_index=[0, top])
    clusters = num_speakers if num_speakers is not None else \
        int(np.argmax(np.diff(values)[1:]) + 2) if top >= 2 else 1
    clusters = min(clusters, count)
    if clusters == 1:
        return np.zeros(count, dtype=np.int64)
    labels = _spectral_labels(vectors_, clusters)
    if num_speakers is None and merge is not None:
        # The merging decides how many speakers there are; the spectral clustering is then
        # done again for that number (joining two of k clusters is not the best k-1).
        merged = int(merge_close_clusters(vectors, labels, merge).max()) + 1
        if merged == 1:
            return np.zeros(count, dtype=np.int64)
        if merged < clusters:
            labels = _spectral_labels(vectors_, merged)
    return labels


def _spectral_labels(eigenvectors: np.ndarray, clusters: int) -> np.ndarray:
    """k-means of the rows of the first ``clusters`` eigenvectors, normalised."""
    points = eigenvectors[:, :clusters]
    points = points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    return KMeans(clusters, n_init=10, random_state=0).fit_predict(points).astype(np.int64)


def merge_close_clusters(vectors: torch.Tensor, labels: np.ndarray, merge: float
                         ) -> np.ndarray:
    """Join the two clusters with the closest centroids while their cosine is at least
    ``merge``; labels renumbered from 0 in order of first appearance.

    >>> v = torch.tensor([[1.0, 0.0], [0.96, 0.28], [0.0, 1.0]])
    >>> merge_close_clusters(v, np.array([0, 1, 2]), 0.9).tolist()
    [0, 0, 1]
    """
    labels = labels.copy()
    while True:
        present = np.unique(labels)
        if len(present) < 2:
            break
        means = F.normalize(torch.stack([vectors[torch.from_numpy(labels == c)].mean(dim=0)
                                         for c in present]), dim=1)
        similarity = (means @ means.T).fill_diagonal_(-2.0)
        best = int(similarity.argmax())
        a, b = divmod(best, len(present))
        if float(similarity[a, b]) < merge:
            break
        labels[labels == present[b]] = present[a]
    return by_first_appearance(labels)


def by_first_appearance(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered from 0 in order of first appearance.

    >>> by_first_appearance(np.array([4, 4, 1, 4, 7])).tolist()
    [0, 0, 1, 0, 2]
    """
    _, first = np.unique(labels, return_index=True)
    order = {int(labels[i]): n for n, i in enumerate(sorted(first))}
    return np.array([order[int(c)] for c in labels], dtype=np.int64)


def resegment(analysis: Analysis, labels: np.ndarray, names: list[str] | None = None
              ) -> list[Segment]:
    """Frame-level assignment (see the module docstring), as segments named ``names[c]``
    for cluster ``c`` (clusters of one name are one speaker), or ``spk0``, ``spk1``... in
    order of first appearance."""
    if not len(labels):
        return []
    clusters = int(labels.max()) + 1
    similarity = (analysis.vectors @ centroids(analysis, labels).T).double().numpy()
    times = (np.arange(int(np.ceil(analysis.duration / FRAME))) + 0.5) * FRAME
    inside = _inside(times, analysis.regions)
    times = times[inside]
    order = np.argsort(analysis.windows[:, 0], kind="stable")
    starts, ends = analysis.windows[order, 0], analysis.windows[order, 1]
    similarity = similarity[order]
    # Windows are sorted by start and by end (one length per region, the last one ending at
    # the region's end): the windows covering time t run from the first ending after t to
    # the last starting before it, and every speech frame has one (they tile the regions).
    low = np.searchsorted(ends, times, side="right")
    high = np.searchsorted(starts, times, side="right")
    sums = np.concatenate([np.zeros((1, clusters)), np.cumsum(similarity, axis=0)])
    mean = (sums[high] - sums[low]) / np.maximum(high - low, 1)[:, None]
    frame_labels = mean.argmax(axis=1)
    if names is None:
        return _runs(times, frame_labels, None)
    distinct, index = np.unique(np.asarray(names), return_inverse=True)
    return _runs(times, index[frame_labels], list(distinct))


def centroids(analysis: Analysis, labels: np.ndarray) -> torch.Tensor:
    """Each cluster's mean unit embedding ``(clusters, dim)``, normalised."""
    count = int(labels.max()) + 1 if len(labels) else 0
    return F.normalize(torch.zeros(count, analysis.vectors.shape[1]).index_add_(
        0, torch.from_numpy(labels), analysis.vectors), dim=1)


def _inside(times: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Which ``times`` fall in one of the sorted ``regions``."""
    if not len(regions):
        return np.zeros(len(times), dtype=bool)
    index = np.searchsorted(regions[:, 0], times, side="right") - 1
    return (index >= 0) & (times < regions[np.maximum(index, 0), 1])


def _runs(times: np.ndarray, labels: np.ndarray, names: list[str] | None) -> list[Segment]:
    """Consecutive frames with one label (and no gap) as segments, named ``names[label]``,
    or ``spk0``, ``spk1``... by first appearance."""
    if not len(times):
        return []
    breaks = np.flatnonzero((np.diff(labels) != 0) | (np.diff(times) > 1.5 * FRAME)) + 1
    first = np.concatenate([[0], breaks])
    last = np.concatenate([breaks, [len(times)]]) - 1
    seen: dict[int, str] = {}
    segments = []
    for a, b in zip(first, last, strict=True):
        name = names[int(labels[a])] if names is not None else \
            seen.setdefault(int(labels[a]), f"spk{len(seen)}")
        segments.append(Segment(round(float(times[a] - FRAME / 2), 3),
                                round(float(times[b] + FRAME / 2), 3), name))
    return segments


class DiarizationSettings(NamedTuple):
    """What diarizes a recording: the options, the affinity pruning and the cluster merging
    threshold (``None``: no merging); tuned by ``recipes/diarize.py``."""

    options: DiarizationOptions
    pruning: float
    merge: float | None


def speaker_labels(analysis: Analysis, settings: DiarizationSettings,
                   num_speakers: int | None) -> np.ndarray:
    """The cluster of each window ``(windows,)``, the number of speakers estimated or
    given (``cluster`` with ``settings``)."""
    if num_speakers is not None and not 1 <= num_speakers <= settings.options.max_speakers:
        raise InputError(f"num_speakers={num_speakers}: give 1 to "
                         f"{settings.options.max_speakers} (the diarization settings' "
                         f"max_speakers)")
    return cluster(analysis.vectors, settings.pruning, settings.options.max_speakers,
                   num_speakers, settings.merge)


def segments(analysis: Analysis, settings: DiarizationSettings, num_speakers: int | None
             ) -> list[Segment]:
    """The recording's segments, the number of speakers estimated or given."""
    return resegment(analysis, speaker_labels(analysis, settings, num_speakers))


def read_settings(folder: str | os.PathLike | None) -> DiarizationSettings:
    """The settings tuned for a model (``<folder>/diarization.json``: a diarization sidecar,
    or a model folder of an earlier version; files from before the merging have none), else
    (or for no folder) the shipped ``DEFAULT_SETTINGS``; a malformed file is a one-line
    error.

    >>> settings = read_settings("a/folder/without/settings")
    >>> settings.options.window, settings.pruning, settings.merge
    (1.5, 0.3, None)
    """
    path = None if folder is None else within(folder, SETTINGS)
    if path is None or not path.is_file():
        logger.info("%s: no tuned diarization settings; using the shipped defaults (%s)",
                    folder, DEFAULT_SETTINGS.name)
        path = DEFAULT_SETTINGS
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
        return checked_settings(DiarizationSettings(
            DiarizationOptions(**settings["options"]), settings["pruning"],
            settings.get("merge")))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise InputError(f"{path}: not readable diarization settings "
                         f"({type(error).__name__}: {error})") from None


# Each setting's type and range: (kind, lowest, highest).
LIMITS = {"speech_threshold": (float, 0.0, 1.0), "merge_gap": (float, 0.0, 10.0),
          "min_region": (float, 0.0, 10.0), "window": (float, 0.5, 10.0),
          "hop": (float, 0.1, 10.0), "batch": (int, 1, 4096), "max_speakers": (int, 1, 100),
          "pruning": (float, 0.01, 1.0), "merge": (float, -1.0, 1.0)}


def checked_settings(settings: DiarizationSettings) -> DiarizationSettings:
    """The settings, each of its type and in its range (``LIMITS``; a hop above the window
    would leave speech unseen), else a ``ValueError`` naming the setting.

    >>> checked_settings(DiarizationSettings(
    ...     DiarizationOptions(0.2, 0.3, 0.2, 1.5, 0.0001, 64, 10), 0.3, None))
    Traceback (most recent call last):
    ValueError: hop is 0.0001, not a number from 0.1 to 10
    """
    options = settings.options
    values = {**options._asdict(), "pruning": settings.pruning, "merge": settings.merge}
    for name, (kind, low, high) in LIMITS.items():
        value = values[name]
        if name == "merge" and value is None:
            continue
        fits = finite_number(value) and (kind is float or isinstance(value, int))
        if not fits or not low <= value <= high:
            what = "an integer" if kind is int else "a number"
            raise ValueError(f"{name} is {value!r}, not {what} from {low:g} to {high:g}")
    if options.hop > options.window:
        raise ValueError(f"hop {options.hop} is longer than the window {options.window}")
    return DiarizationSettings(options, float(settings.pruning),
                               None if settings.merge is None else float(settings.merge))
