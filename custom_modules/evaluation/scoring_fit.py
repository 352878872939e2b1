"""Fitting a scoring's parts on labelled data: the LDA back-end's projection, the calibration
from scores to log-likelihood ratios and a back-end's decisions (calibration and operating
points); ``scoring`` applies them.

The LDA back-end is the classical one before cosine scoring (as in Kaldi's x-vector recipe):
length-normalise, centre, and project onto the ``dim`` directions that best separate the
training speakers, which drops within-speaker (channel, session) directions.
"""

import math
import time
from statistics import NormalDist

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression

from custom_modules.errors import InputError
from custom_modules.evaluation.metrics import eer
from custom_modules.scoring.backend import FEW_FALSE_ACCEPTS, Decisions, far_name, rates_at
from custom_modules.scoring.scores import Calibration, Projection


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


def fit_decisions(scores: torch.Tensor, labels: torch.Tensor, target_false_accepts: list[float],
                  fitted_on: str) -> Decisions:
    """Calibration and operating points from labelled trial ``scores`` ``(trials,)``
    (``labels`` 1 target, 0 non-target): ``eer`` and one ``far_x%`` per target rate."""
    labels = torch.as_tensor(labels).bool()
    targets, nontargets = scores[labels].double(), scores[~labels].double()
    if not len(targets) or not len(nontargets):
        raise InputError(f"{fitted_on}: calibration needs both target and non-target trials")
    points = {"eer": rates_at(float(eer(targets, nontargets)[1]), targets, nontargets)}
    ranked = nontargets.sort(descending=True).values
    for rate in target_false_accepts:
        if not 1e-9 <= rate < 1:
            raise InputError(f"target false-accept rate {rate} must be from 1e-9 to below 1")
        allowed = math.floor(rate * len(ranked))   # non-targets that may stay above
        threshold = float(ranked[min(allowed, len(ranked) - 1)])
        if allowed < FEW_FALSE_ACCEPTS and len(ranked) > 1:
            tail = float(nontargets.mean() + nontargets.std() * NormalDist().inv_cdf(1 - rate))
            threshold = max(threshold, tail) if math.isfinite(tail) else threshold
        points[far_name(rate)] = rates_at(threshold, targets, nontargets)
    return Decisions(fit_calibration(scores, labels.long()), points, fitted_on,
                     len(targets), len(nontargets), time.strftime("%Y-%m-%d %H:%M:%S",
                                                                  time.gmtime()))
