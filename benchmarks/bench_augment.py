"""Noise augmentation at MUSAN's scale: our per-example augmenter against SpeechBrain's
``AddNoise`` as our recipe used it (``AddNoise(csv_file=noise.csv, snr_low=0, snr_high=15)``
on each batch), on the same generated noise corpus and the same clean crops.

    python benchmarks/bench_augment.py [batches]

The corpus is MUSAN-shaped: 16 coloured-noise files of 1 to 8 minutes (MUSAN's music and
speech files last minutes); two more of 16 files each, all 1 minute or all 8 minutes, show how
memory follows the files' length. A batch is 128 crops of 2 s. Each measurement runs in a
fresh process (its peak resident memory is its own): SpeechBrain mixes a batch in one call;
ours makes the 128 examples one after the other in one process, as one DataLoader worker
does (W workers divide that time by W). First both are checked to mix at the SNR asked for
(10 dB, fixed); then the time per batch at SNRs of 0-15 dB and the peak memory are printed,
with the ratio.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.machine import describe

BATCH, SECONDS, RATE = 128, 2.0, 16000
CORPORA = {"1-8 min": np.linspace(1, 8, 16), "1 min": np.ones(16), "8 min": np.full(16, 8.0)}


def write_corpus(folder: Path, minutes: np.ndarray) -> str:
    """Coloured-noise files of these lengths and their CSV (SpeechBrain's extended format)."""
    from custom_modules.audio import write_wav
    from data_prep.synthetic_audio import coloured_noise

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = ["ID,duration,wav,wav_format,wav_opts"]
    for n, length in enumerate(minutes):
        path = folder / f"noise_{n:02d}.wav"
        write_wav(path, coloured_noise(60 * length, RATE, rng, exponent=n % 3).astype(np.float32),
                  RATE)
        rows.append(f"n{n},{60 * length:.3f},{path},wav,")
    (folder / "noise.csv").write_text("\n".join(rows) + "\n")
    return str(folder / "noise.csv")


def clean_batch() -> torch.Tensor:
    from data_prep.synthetic_audio import speech_like

    rng = np.random.default_rng(1)
    return torch.from_numpy(np.stack([speech_like(SECONDS, RATE, rng)
                                      for _ in range(BATCH)])).float()


def measure(method: str, csv_path: str, batches: int, snr: tuple[float, float]) -> dict:
    """In this process: mix ``batches`` batches; seconds per batch, peak memory, SNRs."""
    from speechbrain.augment.time_domain import AddNoise

    from custom_modules.training.augment import ExampleAugmenter

    clean = clean_batch()
    lengths = torch.ones(BATCH)
    if method == "speechbrain":
        noise = AddNoise(csv_file=csv_path, snr_low=snr[0], snr_high=snr[1],
                         noise_sample_rate=RATE, clean_sample_rate=RATE)

        def mix() -> tuple[torch.Tensor, torch.Tensor]:
            noisy = noise(clean, lengths)
            factor = 1 / (10 ** (torch.full((BATCH, 1), snr[0]) / 20) + 1)   # fixed-SNR check
            return clean * (1 - factor), noisy - clean * (1 - factor)
    else:
        augmenter = ExampleAugmenter(csv_path, None, None, None, 1.0, snr, snr, snr, (3, 7),
                                     RATE)
        augmenter.load()

        def mix() -> tuple[torch.Tensor, torch.Tensor]:
            noisy = torch.stack([augmenter(row) for row in clean])
            return clean, noisy - clean

    mix()                                                   # warm-up: loaders, caches
    start = time.perf_counter()
    for _ in range(batches):
        signal, added = mix()
    seconds = (time.perf_counter() - start) / batches
    rms = lambda x: x.pow(2).mean(dim=1).sqrt()  # noqa: E731
    snrs = 20 * torch.log10(rms(signal) / rms(added))
    return {"seconds_per_batch": seconds,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "snr_min": float(snrs.min()), "snr_max": float(snrs.max())}


def run(method: str, csv_path: str, batches: int, snr: tuple[float, float]) -> dict:
    """``measure`` in a fresh process."""
    code = ("import json, sys; from benchmarks.bench_augment import measure; "
            "print(json.dumps(measure(sys.argv[1], sys.argv[2], int(sys.argv[3]), "
            "(float(sys.argv[4]), float(sys.argv[5])))))")
    done = subprocess.run([sys.executable, "-c", code, method, csv_path, str(batches),
                           str(snr[0]), str(snr[1])], capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print(f"{describe()}; batch {BATCH} x {SECONDS:g} s")
    with tempfile.TemporaryDirectory() as scratch:
        csvs = {name: write_corpus(Path(scratch, name.replace(" ", "")), minutes)
                for name, minutes in CORPORA.items()}
        for method in ("ours", "speechbrain"):
            check = run(method, csvs["1-8 min"], 1, (10.0, 10.0))
            if not 9.9 < check["snr_min"] <= check["snr_max"] < 10.1:
                sys.exit(f"error: {method} mixes at {check['snr_min']:.2f} to "
                         f"{check['snr_max']:.2f} dB, asked for 10 dB")
        print("both mix at the SNR asked for (10 dB: every row within 0.1 dB)")
        results = {name: {method: run(method, path, batches, (0.0, 15.0))
                          for method in ("ours", "speechbrain")}
                   for name, path in csvs.items()}
    print(f"{'noise files':<12}{'ours s/batch':>14}{'SpeechBrain':>13}{'ratio':>8}"
          f"{'ours MB':>10}{'SpeechBrain MB':>16}")
    for name, result in results.items():
        ours, theirs = result["ours"], result["speechbrain"]
        print(f"{name:<12}{ours['seconds_per_batch']:>14.3f}{theirs['seconds_per_batch']:>13.3f}"
              f"{theirs['seconds_per_batch'] / ours['seconds_per_batch']:>7.1f}x"
              f"{ours['peak_mb']:>10.0f}{theirs['peak_mb']:>16.0f}")


if __name__ == "__main__":
    main()
