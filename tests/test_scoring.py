"""Score normalisation against a per-trial reference like SpeechBrain's recipe; calibration."""

import numpy as np
import pytest
import torch

from custom_modules.evaluation.metrics import cllr
from custom_modules.evaluation.scoring_fit import fit_calibration, fit_lda
from custom_modules.scoring.scores import (
    cohort_stats,
    cosine_scores,
    normalize_scores,
    speaker_means,
)


def per_trial_reference(embeddings, cohort, enrol, test, top_k):
    """One cohort pass per trial, the way SpeechBrain's verification recipe does it."""
    cos = torch.nn.CosineSimilarity(dim=-1)
    out = []
    for e, t in zip(enrol.tolist(), test.tolist(), strict=True):
        score = cos(embeddings[e], embeddings[t])
        sides = []
        for side in (e, t):
            cohort_scores = cos(embeddings[side].unsqueeze(0), cohort)
            if top_k is not None:
                cohort_scores = torch.topk(cohort_scores, k=top_k, dim=0)[0]
            sides.append((score - cohort_scores.mean()) / cohort_scores.std())
        out.append((sides[0] + sides[1]) / 2)
    return torch.stack(out)


@pytest.mark.parametrize("top_k", [None, 5, 50])
def test_snorm_and_asnorm_equal_the_per_trial_reference(top_k):
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(30, 16, generator=generator, dtype=torch.float64)
    cohort = torch.randn(60, 16, generator=generator, dtype=torch.float64)
    enrol = torch.randint(0, 30, (200,), generator=generator)
    test = torch.randint(0, 30, (200,), generator=generator)
    scores = cosine_scores(embeddings, enrol, test)
    ours = normalize_scores(scores, cohort_stats(embeddings, cohort, top_k, chunk=7), enrol,
                            test)
    expected = per_trial_reference(embeddings, cohort, enrol, test, top_k)
    assert (ours - expected).abs().max() < 1e-6


def test_bad_top_k():
    with pytest.raises(ValueError, match="top_k=300 must be between 2 and the cohort size 10"):
        cohort_stats(torch.randn(3, 4), torch.randn(10, 4), top_k=300)


def test_speaker_means_average_unit_embeddings():
    embeddings = torch.tensor([[3.0, 4.0], [0.0, 1.0], [6.0, 8.0]])
    means = speaker_means(embeddings, ["b", "a", "b"])
    assert torch.allclose(means, torch.tensor([[0.0, 1.0], [0.6, 0.8]]))


def test_calibration_gives_llrs():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(0.6, 0.2, 2000), rng.normal(0.1, 0.2, 8000)
    scores = torch.from_numpy(np.concatenate([pos, neg]))
    labels = np.r_[np.ones(2000), np.zeros(8000)]
    calibration = fit_calibration(scores, labels)
    # Equal-variance Gaussians: llr = (mu1 - mu0) / var * (s - (mu1 + mu0) / 2) = 12.5 s - 4.375
    assert abs(calibration.scale - 12.5) < 1.25
    assert abs(calibration.offset + 4.375) < 0.45
    llr = calibration(scores)
    assert cllr(llr[:2000], llr[2000:]) < cllr(scores[:2000], scores[2000:])
    with pytest.raises(ValueError, match="both target and non-target"):
        fit_calibration(scores[:10], np.ones(10))


def test_lda_projection_is_sklearns_and_removes_within_speaker_directions():
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(6, 10, generator=generator, dtype=torch.float64)
    channel = torch.zeros(10, dtype=torch.float64)
    channel[0] = 1.0            # a strong nuisance direction shared by every speaker
    nuisance = 3.0 * torch.randn(60, 1, generator=generator, dtype=torch.float64) * channel
    embeddings = (centres.repeat_interleave(10, 0) + nuisance
                  + 0.05 * torch.randn(60, 10, generator=generator, dtype=torch.float64))
    speakers = [f"s{n}" for n in range(6) for _ in range(10)]
    projection = fit_lda(embeddings, speakers, dim=5)
    unit = torch.nn.functional.normalize(embeddings, dim=1).numpy()
    reference = LinearDiscriminantAnalysis(n_components=5).fit(unit, speakers).transform(unit)
    assert np.allclose(projection(embeddings).numpy(), reference, atol=1e-8)
    enrol, test = torch.arange(60).repeat(3), torch.arange(60).roll(5).repeat(3)
    test[60:] = torch.randint(0, 60, (120,), generator=generator)
    same = torch.tensor([speakers[e] == speakers[t] for e, t in zip(enrol, test, strict=True)])
    raw = cosine_scores(embeddings, enrol, test)
    projected = cosine_scores(projection(embeddings), enrol, test)
    gap = lambda s: float(s[same].mean() - s[~same].mean())  # noqa: E731
    assert gap(projected) > gap(raw) + 0.2


@pytest.mark.parametrize("dim", [0, 6, 11])
def test_lda_dimension_is_checked(dim):
    with pytest.raises(ValueError, match=f"lda_dim={dim} must be between 1 and"):
        fit_lda(torch.randn(30, 10), [f"s{n % 6}" for n in range(30)], dim)
