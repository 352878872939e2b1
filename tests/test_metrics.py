"""Metrics against a brute-force reference and SpeechBrain's implementations."""

import math

import numpy as np
import pytest
import torch
from speechbrain.utils.metric_stats import EER, minDCF

from custom_modules.evaluation.metrics import (
    act_dcf,
    cllr,
    det_curve,
    eer,
    min_dcf,
    verification_metrics,
)


def brute_force_min_dcf(pos, neg, p_target, c_miss=1.0, c_fa=1.0):
    """Every distinct score (and -inf) as threshold, counted directly."""
    best = math.inf
    for threshold in [-math.inf, *sorted(set(pos) | set(neg))]:
        miss = np.mean(pos <= threshold)
        fa = np.mean(neg > threshold)
        best = min(best, c_miss * p_target * miss + c_fa * (1 - p_target) * fa)
    return best / min(c_miss * p_target, c_fa * (1 - p_target))


def score_sets():
    rng = np.random.default_rng(0)
    random = (rng.normal(1.0, 1.0, 300), rng.normal(-1.0, 1.2, 700))
    tied = (np.round(rng.normal(0.5, 0.5, 400), 1), np.round(rng.normal(-0.5, 0.5, 500), 1))
    return {"random": random, "tied": tied}


@pytest.mark.parametrize("name", ["random", "tied"])
@pytest.mark.parametrize("p_target", [0.01, 0.05, 0.5])
def test_min_dcf_equals_brute_force_and_speechbrain(name, p_target):
    pos, neg = score_sets()[name]
    ours, threshold = min_dcf(pos, neg, p_target=p_target)
    assert abs(ours - brute_force_min_dcf(pos, neg, p_target)) < 1e-9
    theirs, their_threshold = minDCF(torch.tensor(pos), torch.tensor(neg), p_target=p_target)
    assert abs(ours * min(p_target, 1 - p_target) - theirs) < 1e-6
    assert math.isclose(threshold, their_threshold, rel_tol=1e-6)


@pytest.mark.parametrize("name", ["random", "tied"])
def test_eer_equals_speechbrain(name):
    pos, neg = score_sets()[name]
    ours, threshold = eer(torch.tensor(pos), torch.tensor(neg))
    theirs, their_threshold = EER(torch.tensor(pos), torch.tensor(neg))
    assert abs(ours - theirs) < 1 / (len(pos) + len(neg))
    assert math.isclose(threshold, their_threshold, rel_tol=1e-6)


def test_extremes_and_ties():
    assert eer([1.0, 2.0], [-1.0, 0.0]) == (0.0, 0.0)
    assert min_dcf([1.0, 2.0], [-1.0, 0.0])[0] == 0.0
    value, _ = eer([0.0] * 5, [0.0] * 5)
    assert value == 0.5
    assert min_dcf([0.0] * 5, [0.0] * 5, p_target=0.01)[0] == 1.0


def test_llr_metrics():
    assert math.isclose(cllr(np.zeros(10), np.zeros(10)), 1.0)
    assert cllr([20.0, 30.0], [-20.0, -25.0]) < 1e-8
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(2, 1, 500), rng.normal(-2, 1, 500)
    threshold = math.log(99)
    expected = (0.01 * np.mean(pos <= threshold) + 0.99 * np.mean(neg > threshold)) / 0.01
    assert math.isclose(act_dcf(pos, neg, p_target=0.01), expected)
    # Scores of N(2, 1) against N(-2, 1) have the log-likelihood ratio 4 s: those LLRs are
    # calibrated, so their actual cost is the minimum cost of the scores (up to sampling);
    # shifted by 3 nats they are not, and cost far more.
    pos, neg = rng.normal(2, 1, 20000), rng.normal(-2, 1, 20000)
    best = min_dcf(pos, neg, p_target=0.01)[0]
    assert act_dcf(4 * pos, 4 * neg, p_target=0.01) == pytest.approx(best, abs=0.02)
    assert act_dcf(4 * pos + 3, 4 * neg + 3, p_target=0.01) > best + 0.4


def test_det_curve_is_monotone_and_thinned():
    pos, neg = score_sets()["random"]
    false_alarm, miss = det_curve(pos, neg, max_points=50)
    assert len(false_alarm) <= 50
    assert (false_alarm[0], miss[0], false_alarm[-1], miss[-1]) == (1.0, 0.0, 0.0, 1.0)
    assert (np.diff(false_alarm) <= 0).all()
    assert (np.diff(miss) >= 0).all()


def test_summary_and_bad_input():
    pos, neg = score_sets()["random"]
    metrics = verification_metrics(pos, neg)
    assert metrics["trials"] == 1000
    assert math.isclose(metrics["eer"], 100 * eer(pos, neg)[0])
    assert math.isclose(metrics["min_dcf_0.05"], min_dcf(pos, neg, p_target=0.05)[0])
    with pytest.raises(ValueError, match="positive_scores: no scores"):
        eer([], [1.0])
    with pytest.raises(ValueError, match="1 scores are NaN"):
        eer([1.0, float("nan")], [0.0])
