"""EER / minDCF: ours against SpeechBrain's on the same random scores, then ours at scale.

    python benchmarks/bench_metrics.py

Each measurement runs in a fresh process, which reports its wall time and its peak memory above
what it held before the call. At 20,000 trials both implementations run and must agree (EER
within 1/N, minDCF after normalising SpeechBrain's); larger sizes run ours only
(SpeechBrain's minDCF needs O(N^2) memory: about 18 GB at 37,611 trials).
"""

import multiprocessing
import resource
import time

import numpy as np
import torch

from custom_modules.evaluation.metrics import eer, min_dcf


def scores(trials: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(trials)
    half = trials // 2
    return rng.normal(3.0, 1.0, half), rng.normal(0.0, 1.2, trials - half)


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def _run(which: str, trials: int, queue) -> None:
    pos, neg = scores(trials)
    if which == "speechbrain":
        from speechbrain.utils.metric_stats import EER, minDCF
        pos, neg = torch.tensor(pos, dtype=torch.float32), torch.tensor(neg, dtype=torch.float32)
        eer_fn, dcf_fn = EER, minDCF
    else:
        eer_fn, dcf_fn = eer, min_dcf
    before = _rss_mb()
    start = time.perf_counter()
    result = (eer_fn(pos, neg), dcf_fn(pos, neg, p_target=0.01))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((seconds, peak - before, result))


def measure(which: str, trials: int) -> tuple[float, float, tuple]:
    """(seconds, peak extra MB, ((eer, threshold), (min_dcf, threshold))) in a new process."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_run, args=(which, trials, queue))
    process.start()
    outcome = queue.get()
    process.join()
    return outcome


def main() -> None:
    trials = 20000
    ours = measure("ours", trials)
    theirs = measure("speechbrain", trials)
    (our_eer, _), (our_dcf, _) = ours[2]
    (their_eer, _), (their_dcf, _) = theirs[2]
    assert abs(our_eer - their_eer) < 1 / trials, (our_eer, their_eer)
    assert abs(our_dcf * 0.01 - their_dcf) < 1e-6, (our_dcf, their_dcf)
    print(f"{trials} trials: EER {100 * our_eer:.3f}% (SpeechBrain {100 * their_eer:.3f}%), "
          f"minDCF(0.01) {our_dcf:.5f} (SpeechBrain {their_dcf:.7f} unnormalised = "
          f"{their_dcf / 0.01:.5f})")
    print(f"  ours        {ours[0]:8.3f} s  {ours[1]:8.1f} MB")
    print(f"  SpeechBrain {theirs[0]:8.3f} s  {theirs[1]:8.1f} MB")
    print(f"  speed-up {theirs[0] / ours[0]:.0f}x, memory ratio "
          f"{theirs[1] / max(ours[1], 0.1):.0f}x")
    for size in (37611, 579818, 10_000_000):
        seconds, megabytes, ((value, _), (dcf, _)) = measure("ours", size)
        print(f"ours at {size:>10,} trials: {seconds:7.3f} s  {megabytes:8.1f} MB  "
              f"(EER {100 * value:.3f}%, minDCF {dcf:.4f})")


if __name__ == "__main__":
    main()
