"""AS-norm on a VoxCeleb1-O-sized problem: ours end to end vs a per-trial cohort pass.

    python benchmarks/bench_norm.py [reference_trials]

4,708 test embeddings (192-d), 37,611 trials, a 20,000-embedding cohort, top-k 300. Ours:
cosine scores, per-utterance cohort statistics (one matrix product per chunk and top-k),
normalisation. Reference: the loop of SpeechBrain's ``speaker_verification_cosine.py``, one
cohort pass per trial for each side, timed on the first ``reference_trials`` (default 300)
trials and extrapolated; on those trials both must agree within 1e-5.
"""

import sys
import time

import torch

from custom_modules.scoring.scores import cohort_stats, cosine_scores, normalize_scores

UTTERANCES, TRIALS, COHORT, DIM, TOP_K = 4708, 37611, 20000, 192, 300


def reference_scores(embeddings: torch.Tensor, cohort: torch.Tensor, enrol: torch.Tensor,
                     test: torch.Tensor) -> torch.Tensor:
    """Per trial: repeat each side over the cohort, cosine, top-k, mean/std (the recipe)."""
    similarity = torch.nn.CosineSimilarity(dim=-1, eps=1e-6)
    train_cohort = cohort.unsqueeze(1)
    out = []
    for e, t in zip(enrol.tolist(), test.tolist(), strict=True):
        enrol_emb, test_emb = embeddings[e].view(1, 1, -1), embeddings[t].view(1, 1, -1)
        sides = []
        for side in (enrol_emb, test_emb):
            cohort_scores = similarity(side.repeat(train_cohort.shape[0], 1, 1), train_cohort)
            cohort_scores = torch.topk(cohort_scores, k=TOP_K, dim=0)[0]
            sides.append((cohort_scores.mean(dim=0), cohort_scores.std(dim=0)))
        score = similarity(enrol_emb, test_emb)[0]
        out.append(0.5 * ((score - sides[0][0]) / sides[0][1]
                          + (score - sides[1][0]) / sides[1][1]))
    return torch.cat(out)


def main() -> None:
    reference_trials = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    generator = torch.Generator().manual_seed(0)
    embeddings = torch.randn(UTTERANCES, DIM, generator=generator)
    cohort = torch.randn(COHORT, DIM, generator=generator)
    enrol = torch.randint(0, UTTERANCES, (TRIALS,), generator=generator)
    test = torch.randint(0, UTTERANCES, (TRIALS,), generator=generator)

    start = time.perf_counter()
    ours = normalize_scores(cosine_scores(embeddings, enrol, test),
                            cohort_stats(embeddings, cohort, TOP_K), enrol, test)
    our_seconds = time.perf_counter() - start

    start = time.perf_counter()
    expected = reference_scores(embeddings, cohort, enrol[:reference_trials],
                                test[:reference_trials])
    per_trial = (time.perf_counter() - start) / reference_trials
    difference = (ours[:reference_trials] - expected).abs().max().item()
    assert difference < 1e-5, difference
    print(f"{TRIALS} trials, {UTTERANCES} utterances, cohort {COHORT}, top-k {TOP_K}, "
          f"{torch.get_num_threads()} threads; max difference on {reference_trials} trials "
          f"{difference:.1e}")
    print(f"ours, all trials:             {our_seconds:8.2f} s")
    print(f"per-trial reference:          {per_trial * 1000:8.2f} ms a trial -> "
          f"{per_trial * TRIALS:8.1f} s for all trials (extrapolated)")
    print(f"speed-up: {per_trial * TRIALS / our_seconds:.0f}x")


if __name__ == "__main__":
    main()
