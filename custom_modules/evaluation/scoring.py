"""Scoring trials: cosine similarity, an LDA back-end, score normalisation (S-norm, AS-norm)
and calibration.

Everything is computed per *utterance*, not per trial: each embedding is scored against the
cohort once (one matrix product per chunk, then top-k), and trials only look up the
statistics of their two sides. SpeechBrain's recipe instead makes one cohort pass per trial.

AS-norm (adaptive symmetric normalisation) of a trial score ``s`` between enrolment ``e`` and
test ``t``: ``((s - mean_e) / std_e + (s - mean_t) / std_t) / 2``, where ``mean_x`` and
``std_x`` are the mean and (unbiased) standard deviation of ``x``'s ``top_k`` highest cosine
scores against the cohort; S-norm uses the whole cohort.

The LDA back-end is the classical one before cosine scoring (as in Kaldi's x-vector recipe):
length-normalise, centre, and project onto the ``dim`` directions that best separate the
training speakers, which drops within-speaker (channel, session) directions.
"""

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression

from custom_modules.errors import InputError


class CohortStats(NamedTuple):
    """Per-utterance mean and standard deviation of cohort scores, each ``(utterances,)``."""

    mean: torch.Tensor
    std: torch.Tensor


def cosine_scores(embeddings: torch.Tensor, enrol: torch.Tensor, test: torch.Tensor,
                  chunk: int = 1_000_000) -> torch.Tensor:
    """Cosine score of each trial.

    Arguments
    ---------
    embeddings : torch.Tensor
        ``(utterances, dim)``.
    enrol, test : torch.Tensor
        ``(trials,)`` row indices into ``embeddings``.

    >>> emb = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    >>> cosine_scores(emb, torch.tensor([0, 0]), torch.tensor([1, 2])).round(decimals=4)
    tensor([0.0000, 0.7071])
    """
    unit = F.normalize(embeddings, dim=1)
    return torch.cat([(unit[enrol[i:i + chunk]] * unit[test[i:i + chunk]]).sum(dim=1)
                      for i in range(0, len(enrol), chunk)])


def cohort_stats(embeddings: torch.Tensor, cohort: torch.Tensor, top_k: int | None = 300,
                 chunk: int = 2048) -> CohortStats:
    """Mean and std of each embedding's cosine scores against the cohort, over its ``top_k``
    highest (AS-norm) or over the whole cohort (``top_k=None``, S-norm).

    ``embeddings``: ``(utterances, dim)``; ``cohort``: ``(cohort_size, dim)``.
    """
    if top_k is not None and not 2 <= top_k <= len(cohort):
        raise InputError(f"AS-norm top_k={top_k} must be between 2 and the cohort size "
                         f"{len(cohort)}")
    unit_cohort = F.normalize(cohort, dim=1)
    means, stds = [], []
    for rows in F.normalize(embeddings, dim=1).split(chunk):
        scores = rows @ unit_cohort.T
        if top_k is not None:
            scores = scores.topk(top_k, dim=1).values
        means.append(scores.mean(dim=1))
        stds.append(scores.std(dim=1))
    return CohortStats(torch.cat(means), torch.cat(stds))


def normalize_scores(scores: torch.Tensor, stats: CohortStats, enrol: torch.Tensor,
                     test: torch.Tensor) -> torch.Tensor:
    """Symmetric normalisation of trial ``scores`` with per-utterance cohort statistics."""
    enrol_side = (scores - stats.mean[enrol]) / stats.std[enrol]
    test_side = (scores - stats.mean[test]) / stats.std[test]
    return (enrol_side + test_side) / 2


def speaker_means(embeddings: torch.Tensor, speakers: list[str]) -> torch.Tensor:
    """One cohort entry per speaker: the mean of their length-normalised embeddings.

    >>> speaker_means(torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]), ["a", "b", "a"])
    tensor([[1., 0.],
            [0., 1.]])
    """
    names, index = np.unique(np.asarray(speakers), return_inverse=True)
    index = torch.from_numpy(index)
    unit = F.normalize(embeddings, dim=1)
    sums = torch.zeros(len(names), unit.shape[1], dtype=unit.dtype).index_add_(0, index, unit)
    counts = torch.bincount(index, minlength=len(names)).unsqueeze(1).to(unit.dtype)
    return sums / counts


class Projection(NamedTuple):
    """``(unit(x) - mean) @ matrix``: a linear back-end applied to embeddings ``(n, dim)``."""

    mean: torch.Tensor
    matrix: torch.Tensor

    def __call__(self, embeddings: torch.Tensor) -> torch.Tensor:
        return (F.normalize(embeddings, dim=1) - self.mean) @ self.matrix


def fit_lda(embeddings: torch.Tensor, speakers: list[str], dim: int) -> Projection:
    """LDA of length-normalised ``embeddings`` ``(n, d)`` labelled by ``speakers``, keeping
    ``dim`` directions (at most ``d`` and one less than the number of speakers).

    >>> gen = torch.Generator().manual_seed(0)
    >>> centres = torch.randn(4, 8, generator=gen)
    >>> emb = centres.repeat_interleave(5, 0) + 0.1 * torch.randn(20, 8, generator=gen)
    >>> fit_lda(emb, [s for s in "abcd" for _ in range(5)], dim=3)(emb).shape
    torch.Size([20, 3])
    """
    unit = F.normalize(embeddings, dim=1).double()
    classes = len(set(speakers))
    if not 1 <= dim <= min(unit.shape[1], classes - 1):
        raise InputError(f"LDA: lda_dim={dim} must be between 1 and min(embedding size "
                         f"{unit.shape[1]}, speakers - 1 = {classes - 1})")
    lda = LinearDiscriminantAnalysis(n_components=dim).fit(unit.numpy(), np.asarray(speakers))
    return Projection(torch.from_numpy(lda.xbar_).to(embeddings.dtype),
                      torch.from_numpy(lda.scalings_[:, :dim]).to(embeddings.dtype))


class Calibration(NamedTuple):
    """Affine map from scores to log-likelihood ratios: ``llr = scale * score + offset``."""

    scale: float
    offset: float

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        return self.scale * scores + self.offset


def fit_calibration(scores: torch.Tensor, labels: torch.Tensor) -> Calibration:
    """Logistic-regression calibration on held-out trials (``labels``: 1 target, 0 not).

    Classes are weighted equally, so the fitted log-odds are prior-free log-likelihood
    ratios: a Bayes decision at prior ``p`` thresholds them at ``log((1 - p) / p)``.
    """
    labels = np.asarray(labels)
    if len(np.unique(labels)) != 2:
        raise InputError("calibration needs both target and non-target trials")
    model = LogisticRegression(C=1e6, class_weight="balanced", tol=1e-8, max_iter=1000)
    model.fit(np.asarray(scores, dtype=np.float64).reshape(-1, 1), labels)
    return Calibration(float(model.coef_[0, 0]), float(model.intercept_[0]))
