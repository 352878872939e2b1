"""A model's scoring back-end: how two embeddings become a score, a log-likelihood ratio and a
decision, the same way in the verification recipe, ``SpeakerEncoder`` and the command line.

A back-end has two parts:

- ``Scoring`` (fitted on training utterances): optional subtraction of a mean embedding, an
  optional LDA projection (``scores.Projection``), cosine scoring, and optional symmetric
  normalisation against a cohort (AS-norm over the ``top_k`` best cohort scores, S-norm over
  all with ``top_k=None``). Its ``variant`` is the verification recipe's name for it
  (``cosine``, ``as-norm``, ``lda+cosine``, ``lda+as-norm``...).
- ``Decisions`` (fitted on labelled trials, by default the validation trials): an affine
  calibration from scores to log-likelihood ratios and named operating points, thresholds on
  the score: ``eer`` (where misses and false accepts are equal on those trials) and
  ``far_1%``, ``far_0.1%``... (the lowest threshold whose false-accept rate is at most that;
  where fewer than ``FEW_FALSE_ACCEPTS`` non-target trials would lie above it, that count is
  noise, so the threshold is the stricter of it and the rate's quantile of a normal fitted to
  the non-target scores: on the real council speech the empirical ``far_0.1%`` of 2,334
  development non-targets accepted 0.68 % of the test impostors, the stricter one 0.26 %).

A pretrained folder or a back-end sidecar keeps it as ``backend.json`` (options, decisions,
the earlier decisions a ``calibrate`` replaced, newest last) and ``backend.pt`` (the tensors,
read with ``weights_only=True``). ``speech_detection`` records whether the embeddings it was
fitted on were cut to their speech, which the interface then does too.
"""

import json
import math
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import torch

from custom_modules.errors import InputError, finite_number
from custom_modules.files import within, write_atomic
from custom_modules.scoring.scores import (
    Calibration,
    CohortStats,
    Projection,
    cohort_stats,
    cosine_scores,
    normalize_scores,
)
from custom_modules.sidecars import KIND_FILES

BACKEND_JSON, BACKEND_TENSORS = KIND_FILES["backend"]
SCHEMA_VERSION = 1
FEW_FALSE_ACCEPTS = 10   # fewer non-target trials above a threshold: too few to set it alone


class Space(NamedTuple):
    """Embeddings in a back-end's scoring space ``(n, d)``, with their cohort statistics."""

    vectors: torch.Tensor
    stats: CohortStats | None


@dataclass
class Scoring:
    """Scores from embeddings: ``space`` once per set of embeddings, then ``scores`` per pair.

    >>> scoring = Scoring("cosine")
    >>> space = scoring.space(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    >>> scoring.scores(space, space, torch.tensor([0]), torch.tensor([1])).round(decimals=4)
    tensor([0.7071])
    """

    variant: str
    mean: torch.Tensor | None = None             # (dim,) subtracted first
    projection: Projection | None = None         # LDA
    cohort: torch.Tensor | None = None           # (cohort, dim), raw embeddings
    top_k: int | None = None                     # AS-norm; None with a cohort: S-norm

    def transform(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``(n, dim)`` embeddings -> ``(n, d)`` vectors that are cosine-scored."""
        embeddings = embeddings.float()
        if self.mean is not None:
            embeddings = embeddings - self.mean
        return embeddings if self.projection is None else self.projection(embeddings)

    @cached_property
    def _cohort_vectors(self) -> torch.Tensor | None:
        return None if self.cohort is None else self.transform(self.cohort)

    def space(self, embeddings: torch.Tensor) -> Space:
        """Transform ``(n, dim)`` embeddings and compute their cohort statistics."""
        vectors = self.transform(embeddings)
        stats = None if self._cohort_vectors is None else \
            cohort_stats(vectors, self._cohort_vectors, self.top_k)
        return Space(vectors, stats)

    def scores(self, first: Space, second: Space, first_rows: torch.Tensor,
               second_rows: torch.Tensor) -> torch.Tensor:
        """Scores ``(pairs,)`` of ``first.vectors[first_rows[i]]`` against
        ``second.vectors[second_rows[i]]`` (``second`` may be ``first``)."""
        if second is first:
            both, stats, other = first.vectors, first.stats, second_rows
        else:
            both = torch.cat([first.vectors, second.vectors])
            other = second_rows + len(first.vectors)
            stats = None if first.stats is None else CohortStats(
                torch.cat([first.stats.mean, second.stats.mean]),
                torch.cat([first.stats.std, second.stats.std]))
        cosine = cosine_scores(both, first_rows, other)
        return cosine if stats is None else normalize_scores(cosine, stats, first_rows, other)

    def cross_scores(self, first: Space, second: Space) -> torch.Tensor:
        """Scores ``(len(first), len(second))`` of every row of ``first`` against every row
        of ``second`` (queries against enrolled profiles)."""
        rows, columns = len(first.vectors), len(second.vectors)
        return self.scores(first, second, torch.arange(rows).repeat_interleave(columns),
                           torch.arange(columns).repeat(rows)).reshape(rows, columns)


class OperatingPoint(NamedTuple):
    """A decision threshold on the score (accept above it) and its rates on the trials it was
    chosen on."""

    threshold: float
    false_accept: float
    false_reject: float


class Decisions(NamedTuple):
    """What a score means: calibration and operating points, and the trials they came from."""

    calibration: Calibration
    operating_points: dict[str, OperatingPoint]
    fitted_on: str
    targets: int
    nontargets: int
    fitted: str                                  # date and time, UTC


def far_name(rate: float) -> str:
    """``far_name(0.01) == 'far_1%'``: the operating point of a target false-accept rate."""
    return f"far_{100 * rate:g}%"


def far_rates(decisions: Decisions) -> list[float]:
    """The target false-accept rates of ``decisions``' ``far_x%`` operating points.

    >>> far_rates(Decisions(Calibration(1.0, 0.0), {"eer": None, "far_1%": None,
    ...                                             "far_0.1%": None}, "", 1, 1, ""))
    [0.01, 0.001]
    """
    return [float(name[4:-1]) / 100 for name in decisions.operating_points
            if name.startswith("far_")]




def rates_at(threshold: float, targets: torch.Tensor, nontargets: torch.Tensor
             ) -> OperatingPoint:
    """The false-accept and false-reject rates of target and non-target scores at a
    threshold (accept above it)."""
    return OperatingPoint(threshold, float((nontargets > threshold).double().mean()),
                          float((targets <= threshold).double().mean()))


@dataclass
class Backend:
    """A scoring with its decisions (``None`` until calibrated), the earlier decisions, the
    operating point used when none is named and the prior probabilities are given at."""

    scoring: Scoring
    decisions: Decisions | None
    operating_point: str
    prior: float
    speech_detection: bool
    history: list[Decisions] = field(default_factory=list)

    def llr(self, scores: torch.Tensor) -> torch.Tensor:
        """Calibrated log-likelihood ratios of ``scores``."""
        return self._decisions("log-likelihood ratios").calibration(scores)

    def probability(self, scores: torch.Tensor, prior: float | None = None) -> torch.Tensor:
        """Probability of "same speaker" at ``prior`` (default: the back-end's)."""
        prior = self.prior if prior is None else prior
        if not 0 < prior < 1:
            raise InputError(f"prior {prior} must be between 0 and 1")
        return torch.sigmoid(self.llr(scores) + math.log(prior / (1 - prior)))

    def threshold(self, operating_point: str | None = None) -> float:
        """The score threshold of a named operating point (default: the back-end's)."""
        name = self.operating_point if operating_point is None else operating_point
        points = self._decisions(f"operating point {name!r}").operating_points
        if name not in points:
            raise InputError(f"no operating point {name!r}; this model has "
                             f"{', '.join(points)}")
        return points[name].threshold

    def recalibrated(self, decisions: Decisions) -> "Backend":
        """The same scoring with new decisions; the current ones join the history."""
        history = self.history + ([self.decisions] if self.decisions is not None else [])
        return Backend(self.scoring, decisions, self.operating_point, self.prior,
                       self.speech_detection, history)

    def _decisions(self, wanted: str) -> Decisions:
        if self.decisions is None:
            raise InputError(f"{wanted}: this model's scores are not calibrated (run "
                             f"calibrate on labelled pairs first)")
        return self.decisions

    def save(self, folder: str | os.PathLike) -> None:
        """Write ``backend.json`` and ``backend.pt`` into ``folder`` (each replaced whole)."""
        folder = Path(folder)
        scoring = self.scoring
        tensors = {"mean": scoring.mean, "cohort": scoring.cohort,
                   "lda_mean": None if scoring.projection is None else scoring.projection.mean,
                   "lda_matrix": None if scoring.projection is None
                   else scoring.projection.matrix}
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items() if v is not None}
        meta = {"schema_version": SCHEMA_VERSION, "variant": scoring.variant,
                "top_k": scoring.top_k, "speech_detection": self.speech_detection,
                "operating_point": self.operating_point, "prior": self.prior,
                "decisions": _decisions_json(self.decisions),
                "history": [_decisions_json(d) for d in self.history]}
        write_atomic(folder / BACKEND_TENSORS, lambda sink: torch.save(tensors, sink))
        write_atomic(folder / BACKEND_JSON, json.dumps(meta, indent=2) + "\n")


def has_backend(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` keeps a back-end."""
    return (Path(folder) / BACKEND_JSON).is_file()


def load_backend(folder: str | os.PathLike) -> Backend:
    """Read the back-end of a pretrained folder; a missing or malformed one (a value of the
    wrong type or out of range, tensors that are a pickle or of the wrong shape) is an
    ``InputError`` naming the file."""
    path = within(folder, BACKEND_JSON)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"schema version {meta.get('schema_version')!r}, not "
                             f"{SCHEMA_VERSION}" if isinstance(meta, dict) else "not an object")
        _expect(meta, "variant", str)
        _expect(meta, "operating_point", str)
        _expect(meta, "speech_detection", bool)
        if meta["top_k"] is not None and (_expect(meta, "top_k", int) < 1):
            raise ValueError(f"top_k {meta['top_k']} is below 1")
        if not 0 < _expect(meta, "prior", float) < 1:
            raise ValueError(f"prior {meta['prior']} is not between 0 and 1")
        try:
            tensors = torch.load(within(folder, BACKEND_TENSORS), map_location="cpu",
                                 weights_only=True)
        except Exception as error:  # a pickle, a damaged file: the folder's problem
            raise ValueError(f"{BACKEND_TENSORS} cannot be read safely "
                             f"({type(error).__name__})") from None
        _check_tensors(tensors)
        projection = (Projection(tensors["lda_mean"], tensors["lda_matrix"])
                      if "lda_matrix" in tensors else None)
        scoring = Scoring(meta["variant"], tensors.get("mean"), projection,
                          tensors.get("cohort"), meta["top_k"])
        return Backend(scoring, _decisions_of(meta["decisions"]), meta["operating_point"],
                       float(meta["prior"]), meta["speech_detection"],
                       [_decisions_of(d) for d in _expect(meta, "history", list)])
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, OverflowError) as error:
        raise InputError(f"{path}: not a readable back-end ({type(error).__name__}: "
                         f"{error})") from None


def _expect(entry: dict, key: str, kind: type):
    """``entry[key]``, which must be of ``kind`` (an int counts as a float, a bool as
    neither, a float must be finite); else a ``TypeError`` naming the key."""
    value = entry[key]
    fits = finite_number(value) if kind is float else \
        isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if not fits:
        raise TypeError(f"{key} is {value!r}, not a{' finite' if kind is float else ''} "
                        f"{kind.__name__}")
    return value


def _check_tensors(tensors) -> None:
    """The tensors of ``backend.pt``: finite float tensors of shapes that fit together."""
    if not isinstance(tensors, dict) or not set(tensors) <= {"mean", "cohort", "lda_mean",
                                                              "lda_matrix"} or \
            not all(isinstance(t, torch.Tensor) and t.is_floating_point()
                    and bool(torch.isfinite(t).all()) for t in tensors.values()):
        raise ValueError(f"{BACKEND_TENSORS} is not finite float tensors named mean, cohort, "
                         f"lda_mean, lda_matrix")
    if ("lda_matrix" in tensors) != ("lda_mean" in tensors) or \
            any(tensors[k].dim() != 1 for k in ("mean", "lda_mean") if k in tensors) or \
            any(tensors[k].dim() != 2 for k in ("cohort", "lda_matrix") if k in tensors):
        raise ValueError(f"{BACKEND_TENSORS}: tensors of the wrong shapes")


def _decisions_json(decisions: Decisions | None) -> dict | None:
    if decisions is None:
        return None
    return {**decisions._asdict(), "calibration": decisions.calibration._asdict(),
            "operating_points": {name: point._asdict()
                                 for name, point in decisions.operating_points.items()}}


def _decisions_of(entry: dict | None) -> Decisions | None:
    if entry is None:
        return None
    calibration = entry["calibration"]
    points = entry["operating_points"]
    if not isinstance(points, dict) or not points:
        raise TypeError("operating_points is not a non-empty object")
    for point in points.values():
        for key in ("threshold", "false_accept", "false_reject"):
            _expect(point, key, float)
    for key in ("scale", "offset"):
        _expect(calibration, key, float)
    for key in ("targets", "nontargets"):
        _expect(entry, key, int)
    return Decisions(**{**entry, "calibration": Calibration(**calibration),
                        "operating_points": {str(name): OperatingPoint(**point) for name, point
                                             in points.items()}})


def describe(backend: Backend) -> str:
    """Lines for people: the scoring, and each operating point with its rates (flagged when
    fewer than ``FEW_FALSE_ACCEPTS`` non-target trials lie above it: a normal fitted to the
    non-target scores set it, or could have)."""
    scoring = backend.scoring
    cohort = "" if scoring.cohort is None else f", cohort of {len(scoring.cohort)}"
    lines = [f"scoring: {scoring.variant}{cohort}; speech detection "
             f"{'on' if backend.speech_detection else 'off'}"]
    decisions = backend.decisions
    if decisions is None:
        return "\n".join(lines + ["not calibrated"])
    lines.append(f"calibrated on {decisions.fitted_on} ({decisions.targets} target, "
                 f"{decisions.nontargets} non-target trials, {decisions.fitted} UTC); "
                 f"{len(backend.history)} earlier calibrations kept")
    for name, point in decisions.operating_points.items():
        few = point.false_accept * decisions.nontargets < FEW_FALSE_ACCEPTS and name != "eer"
        lines.append(f"  {name:<10} threshold {point.threshold:+.4f}: false accepts "
                     f"{100 * point.false_accept:.2f} %, false rejects "
                     f"{100 * point.false_reject:.2f} %"
                     + (" (few non-target trials above: the stricter of their count and a "
                        "normal fit)" if few else "")
                     + ("  <- default" if name == backend.operating_point else ""))
    return "\n".join(lines)
