"""Applying a scoring to embeddings: cosine similarity, score normalisation (S-norm, AS-norm),
a linear projection (the LDA back-end's) and calibration to log-likelihood ratios. What is
fitted on data (the LDA, the calibration) is fitted in ``evaluation.scoring_fit``.

Everything is computed per *utterance*, not per trial: each embedding is scored against the
cohort once (one matrix product per chunk, then top-k), and trials only look up the
statistics of their two sides. SpeechBrain's recipe instead makes one cohort pass per trial.

AS-norm (adaptive symmetric normalisation) of a trial score ``s`` between enrolment ``e`` and
test ``t``: ``((s - mean_e) / std_e + (s - mean_t) / std_t) / 2``, where ``mean_x`` and
``std_x`` are the mean and (unbiased) standard deviation of ``x``'s ``top_k`` highest cosine
scores against the cohort; S-norm uses the whole cohort.
"""

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

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




class Calibration(NamedTuple):
    """Affine map from scores to log-likelihood ratios: ``llr = scale * score + offset``."""

    scale: float
    offset: float

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        return self.scale * scores + self.offset
