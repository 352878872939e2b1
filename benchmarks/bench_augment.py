"""Augmentation at MUSAN's scale: our per-example augmenter against SpeechBrain's, each set up
as its own recipe runs it, on the same generated corpora and the same clean crops.

    python -m benchmarks.bench_augment [batches]

SpeechBrain as its VoxCeleb recipe (``recipes/VoxCeleb/SpeakerRec/hparams/train_ecapa_tdnn.yaml``)
sets it up: ``AddNoise(csv_file, snr_low=0, snr_high=15, num_workers=4)`` and
``AddReverb(csv_file, num_workers=4)``, called on the whole batch in the training process (its
``wav_augment``), their noise and impulse responses read by their own DataLoaders of 4
workers; babble, which SpeechBrain 1.x has no class for, as ``AddNoise`` over a speech corpus
(13-20 dB), the way MUSAN's speech is used. Its recipe downloads its own noise clips, which
cannot be reached here: both read the same MUSAN-shaped files. Ours: ``ExampleAugmenter`` with
one kind at a time, one example after the other in one process, as one DataLoader worker
makes them (``W`` workers divide that time by ``W``; SpeechBrain's call blocks the training
step).

Corpora: noise, 16 coloured-noise files of 1 to 8 minutes (two more sets of 16, all 1 minute
or all 8 minutes, show how memory follows the files' length); babble, 16 speech-like files of
2 minutes; reverberation, 50 generated room impulse responses (RIRS_NOISES' small rooms). A
batch is 128 crops of 2 s. Each measurement runs in a fresh process (its peak resident memory
is its own). First the two are checked to agree: noise and babble mixed at the SNR asked for
(10 dB, fixed) within 0.1 dB, reverberation keeping each crop's length and reaching every
crop; then the time per batch (SNRs drawn from the recipes' ranges) and the peak memory are
printed with the ratio.
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

BATCH, SECONDS, RATE, WORKERS = 128, 2.0, 16000, 4
NOISE = {"noise 1-8 min": np.linspace(1, 8, 16), "noise 1 min": np.ones(16),
         "noise 8 min": np.full(16, 8.0)}
SNRS = {"noise": (0.0, 15.0), "babble": (13.0, 20.0)}


def write_corpus(folder: Path, kind: str, minutes: np.ndarray) -> str:
    """Files of ``kind`` (noise, babble or reverb) and their CSV (SpeechBrain's extended
    format, which ours reads too)."""
    from custom_modules.audio import write_wav
    from data_prep.synthetic_audio import coloured_noise, room_impulse_response, speech_like

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = ["ID,duration,wav,wav_format,wav_opts"]
    for n, length in enumerate(minutes):
        wave = (coloured_noise(60 * length, RATE, rng, exponent=n % 3) if kind == "noise"
                else speech_like(60 * length, RATE, rng) if kind == "babble"
                else room_impulse_response(RATE, rng))
        path = folder / f"{kind}_{n:02d}.wav"
        write_wav(path, wave.astype(np.float32), RATE)
        rows.append(f"{kind[0]}{n},{len(wave) / RATE:.3f},{path},wav,")
    (folder / f"{kind}.csv").write_text("\n".join(rows) + "\n")
    return str(folder / f"{kind}.csv")


def clean_batch() -> torch.Tensor:
    from data_prep.synthetic_audio import speech_like

    rng = np.random.default_rng(1)
    return torch.from_numpy(np.stack([speech_like(SECONDS, RATE, rng)
                                      for _ in range(BATCH)])).float()


def augmenters(method: str, kind: str, csv_path: str, snr: tuple[float, float] | None):
    """A function mixing the clean batch ``(batch, samples)`` with ``kind``."""
    from speechbrain.augment.time_domain import AddNoise, AddReverb

    from custom_modules.training.augment import ExampleAugmenter

    lengths = torch.ones(BATCH)
    if method == "speechbrain":
        augment = AddReverb(csv_file=csv_path, reverb_sample_rate=RATE, clean_sample_rate=RATE,
                            num_workers=WORKERS) if kind == "reverb" else \
            AddNoise(csv_file=csv_path, snr_low=snr[0], snr_high=snr[1], noise_sample_rate=RATE,
                     clean_sample_rate=RATE, num_workers=WORKERS)
        if kind == "reverb":                               # AddReverb takes the batch alone
            return lambda clean: augment(clean)
        return lambda clean: augment(clean, lengths)
    csvs = {"noise": None, "babble": None, "reverb": None, kind: csv_path}
    snr = snr or (0.0, 0.0)
    ours = ExampleAugmenter(csvs["noise"], None, csvs["babble"], csvs["reverb"], 1.0, snr, snr,
                            snr, (3, 7), RATE)
    ours.load()
    return lambda clean: torch.stack([ours(row) for row in clean])


def measure(method: str, kind: str, csv_path: str, batches: int,
            snr: tuple[float, float] | None) -> dict:
    """In this process: augment ``batches`` batches; seconds per batch, peak memory, and the
    check's figures (SNRs of the added part; the rows changed, the length kept)."""
    clean = clean_batch()
    augment = augmenters(method, kind, csv_path, snr)
    augment(clean)                                          # warm-up: loaders, caches
    start = time.perf_counter()
    for _ in range(batches):
        out = augment(clean)
    seconds = (time.perf_counter() - start) / batches
    result = {"seconds_per_batch": seconds,
              "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "shape_kept": list(out.shape) == list(clean.shape),
              "rows_changed": int(((out - clean).abs().amax(dim=1) > 1e-3).sum())}
    if kind != "reverb":
        rms = lambda x: x.pow(2).mean(dim=1).sqrt()  # noqa: E731
        # SpeechBrain scales the clean signal down by 1 / (1 + 10^(snr/20)) as it adds noise
        # (keeping the peak level); ours keeps the clean signal. Either way the SNR of the mix
        # is that of its clean part against what was added.
        gain = 1.0 if method == "ours" else 1 / (10 ** (snr[0] / 20) + 1)
        signal = clean * (1 - gain) if method == "speechbrain" else clean
        snrs = 20 * torch.log10(rms(signal) / rms(out - signal))
        result.update(snr_min=float(snrs.min()), snr_max=float(snrs.max()))
    return result


def run(method: str, kind: str, csv_path: str, batches: int,
        snr: tuple[float, float] | None) -> dict:
    """``measure`` in a fresh process."""
    code = ("import json, sys; from benchmarks.bench_augment import measure; "
            "snr = json.loads(sys.argv[5]); print(json.dumps(measure(sys.argv[1], sys.argv[2], "
            "sys.argv[3], int(sys.argv[4]), None if snr is None else tuple(snr))))")
    done = subprocess.run([sys.executable, "-c", code, method, kind, csv_path, str(batches),
                           json.dumps(snr)], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": os.getcwd()})
    return json.loads(done.stdout.strip().splitlines()[-1])


def check(csvs: dict[str, str]) -> None:
    """Both mix at the SNR asked for and reverberate every crop, or the benchmark stops."""
    for method in ("ours", "speechbrain"):
        for kind, path in (("noise", csvs["noise 1-8 min"]), ("babble", csvs["babble"])):
            got = run(method, kind, path, 1, (10.0, 10.0))
            if not 9.9 < got["snr_min"] <= got["snr_max"] < 10.1:
                sys.exit(f"error: {method} mixes {kind} at {got['snr_min']:.2f} to "
                         f"{got['snr_max']:.2f} dB, asked for 10 dB")
        got = run(method, "reverb", csvs["reverb"], 1, None)
        if not got["shape_kept"] or got["rows_changed"] != BATCH:
            sys.exit(f"error: {method} reverberation changed {got['rows_changed']} of {BATCH} "
                     f"crops (shape kept: {got['shape_kept']})")
    print("both agree: noise and babble at the SNR asked for (10 dB, every crop within 0.1 dB), "
          "every crop reverberated at its length")


def main() -> None:
    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print(f"{describe()}; batch {BATCH} x {SECONDS:g} s; SpeechBrain's loaders: {WORKERS} "
          f"workers")
    with tempfile.TemporaryDirectory() as scratch:
        csvs = {name: write_corpus(Path(scratch, name.replace(" ", "")), "noise", minutes)
                for name, minutes in NOISE.items()}
        csvs["babble"] = write_corpus(Path(scratch, "babble"), "babble", np.full(16, 2.0))
        csvs["reverb"] = write_corpus(Path(scratch, "reverb"), "reverb", np.zeros(50))
        check(csvs)
        results = {name: {method: run(method, name.split()[0], path, batches,
                                      SNRS.get(name.split()[0]))
                          for method in ("ours", "speechbrain")}
                   for name, path in csvs.items()}
    print(f"{'corpus':<16}{'ours s/batch':>14}{'SpeechBrain':>13}{'ratio':>8}"
          f"{'ours MB':>10}{'SpeechBrain MB':>16}")
    for name, result in results.items():
        ours, theirs = result["ours"], result["speechbrain"]
        print(f"{name:<16}{ours['seconds_per_batch']:>14.3f}"
              f"{theirs['seconds_per_batch']:>13.3f}"
              f"{theirs['seconds_per_batch'] / ours['seconds_per_batch']:>7.2f}x"
              f"{ours['peak_mb']:>10.0f}{theirs['peak_mb']:>16.0f}")


if __name__ == "__main__":
    main()
