"""Speaker verification metrics, exact, in O(N log N) time and O(N) memory.

One sort of all scores and two cumulative sums give the miss and false-alarm rates at every
distinct threshold; EER, minDCF and the DET curve are read off those arrays. A trial is
accepted when its score is above the threshold (SpeechBrain's convention), so at threshold
``t``: miss rate = share of target scores ``<= t``, false-alarm rate = share of non-target
scores ``> t``.

``min_dcf`` is the *normalised* detection cost, divided by
``min(c_miss * p_target, c_fa * (1 - p_target))`` as NIST and the published VoxCeleb results
report it. SpeechBrain's ``minDCF`` returns the unnormalised cost: multiply ours by that
denominator to compare.
"""

import math
from typing import NamedTuple

import numpy as np
import torch

Scores = np.ndarray | torch.Tensor | list


class ErrorRates(NamedTuple):
    """Miss and false-alarm rates at each candidate threshold (ascending)."""

    thresholds: np.ndarray
    miss: np.ndarray
    false_alarm: np.ndarray


def _as_array(scores: Scores, name: str) -> np.ndarray:
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().numpy()
    array = np.asarray(scores, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError(f"{name}: no scores")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: {int((~np.isfinite(array)).sum())} scores are NaN or infinite")
    return array


def error_rates(positive_scores: Scores, negative_scores: Scores) -> ErrorRates:
    """Miss / false-alarm rates at every distinct score used as threshold, plus ``-inf``
    (accept everything). Exact under ties: equal scores share one threshold."""
    positive = _as_array(positive_scores, "positive_scores")
    negative = _as_array(negative_scores, "negative_scores")
    scores = np.concatenate([positive, negative])
    is_target = np.concatenate([np.ones(positive.size, np.int64),
                                np.zeros(negative.size, np.int64)])
    order = np.argsort(scores, kind="stable")
    scores, is_target = scores[order], is_target[order]
    targets_up_to = np.cumsum(is_target)
    last_of_value = np.flatnonzero(np.diff(scores, append=np.inf))
    targets_below = targets_up_to[last_of_value]
    nontargets_below = last_of_value + 1 - targets_below
    return ErrorRates(
        thresholds=np.concatenate([[-np.inf], scores[last_of_value]]),
        miss=np.concatenate([[0.0], targets_below / positive.size]),
        false_alarm=np.concatenate([[1.0], 1.0 - nontargets_below / negative.size]))


def eer(positive_scores: Scores, negative_scores: Scores) -> tuple[float, float]:
    """Equal error rate and its threshold, as ``speechbrain.utils.metric_stats.EER``
    defines them: at the distinct score where the miss and false-alarm rates are closest,
    their mean.

    >>> eer([0.6, 0.7, 0.8, 0.5], [0.4, 0.3, 0.2, 0.1])
    (0.0, 0.4)
    """
    return _eer(error_rates(positive_scores, negative_scores))


def min_dcf(positive_scores: Scores, negative_scores: Scores, c_miss: float = 1.0,
            c_fa: float = 1.0, p_target: float = 0.01) -> tuple[float, float]:
    """Minimum normalised detection cost over all thresholds, and that threshold.

    >>> min_dcf([0.6, 0.7, 0.8, 0.5], [0.4, 0.3, 0.2, 0.1])
    (0.0, 0.4)
    """
    return _min_dcf(error_rates(positive_scores, negative_scores), c_miss, c_fa, p_target)


def act_dcf(positive_llrs: Scores, negative_llrs: Scores, c_miss: float = 1.0,
            c_fa: float = 1.0, p_target: float = 0.01) -> float:
    """Normalised detection cost of calibrated log-likelihood ratios at the Bayes threshold
    ``log(c_fa (1 - p_target) / (c_miss p_target))``."""
    positive = _as_array(positive_llrs, "positive_llrs")
    negative = _as_array(negative_llrs, "negative_llrs")
    threshold = math.log(c_fa * (1 - p_target) / (c_miss * p_target))
    cost = (c_miss * p_target * np.mean(positive <= threshold)
            + c_fa * (1 - p_target) * np.mean(negative > threshold))
    return float(cost / _dcf_norm(c_miss, c_fa, p_target))


def cllr(positive_llrs: Scores, negative_llrs: Scores) -> float:
    """Log-likelihood-ratio cost in bits: 0 is perfect, 1 is an uninformative system.

    >>> round(cllr([0.0], [0.0]), 6)
    1.0
    """
    positive = _as_array(positive_llrs, "positive_llrs")
    negative = _as_array(negative_llrs, "negative_llrs")
    return float((np.logaddexp(0, -positive).mean() + np.logaddexp(0, negative).mean())
                 / (2 * math.log(2)))


def det_curve(positive_scores: Scores, negative_scores: Scores,
              max_points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Points of the DET curve, ``(false_alarm, miss)`` rates, at most ``max_points`` of
    them (evenly spaced along the curve, ends kept) for plotting."""
    rates = error_rates(positive_scores, negative_scores)
    keep = np.unique(np.linspace(0, rates.thresholds.size - 1, max_points).round().astype(int))
    return rates.false_alarm[keep], rates.miss[keep]


def verification_metrics(positive_scores: Scores, negative_scores: Scores,
                         p_targets: tuple[float, ...] = (0.01, 0.05)) -> dict:
    """EER (in %) and minDCF at each ``p_target`` with their thresholds, from one sort."""
    rates = error_rates(positive_scores, negative_scores)
    value, threshold = _eer(rates)
    metrics = {"eer": 100 * value, "eer_threshold": threshold,
               "trials": len(positive_scores) + len(negative_scores)}
    for p_target in p_targets:
        cost, at = _min_dcf(rates, 1.0, 1.0, p_target)
        metrics[f"min_dcf_{p_target:g}"] = cost
        metrics[f"min_dcf_{p_target:g}_threshold"] = at
    return metrics


def _eer(rates: ErrorRates) -> tuple[float, float]:
    # SpeechBrain's candidate thresholds are the scores themselves: skip the -inf entry.
    best = 1 + int(np.argmin(np.abs(rates.false_alarm[1:] - rates.miss[1:])))
    return (float((rates.false_alarm[best] + rates.miss[best]) / 2),
            float(rates.thresholds[best]))


def _min_dcf(rates: ErrorRates, c_miss: float, c_fa: float,
             p_target: float) -> tuple[float, float]:
    cost = c_miss * p_target * rates.miss + c_fa * (1 - p_target) * rates.false_alarm
    best = int(np.argmin(cost))
    return float(cost[best] / _dcf_norm(c_miss, c_fa, p_target)), float(rates.thresholds[best])


def _dcf_norm(c_miss: float, c_fa: float, p_target: float) -> float:
    return min(c_miss * p_target, c_fa * (1 - p_target))
