"""The cost of speech detection: Silero VAD (``inference.speech.SpeechDetector``) against
embedding the same audio with the demo model, per hour of audio, on the demo's held-out
recordings (after ``make demo``).

    python -m benchmarks.bench_speech [minutes]        # of audio; default 10

Prints the seconds each costs per hour of audio (one process, the machine's threads), their
ratio and the share of the audio kept as speech.
"""

import csv
import sys
import time

import torch

from benchmarks.machine import describe
from custom_modules.audio import read_audio
from custom_modules.inference.pretrained import load_embedder
from custom_modules.inference.speech import SpeechDetector


def main() -> None:
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    print(describe())
    with open("exps/demo/data/test.csv", newline="", encoding="utf-8") as f:
        files = [row["wav"] for row in csv.DictReader(f)]
    waves, total = [], 0.0
    for path in files:
        if total >= 60 * minutes:
            break
        waves.append(read_audio(path, 16000))
        total += waves[-1].numel() / 16000
    detector = SpeechDetector()
    embedder = load_embedder("exps/demo/pretrained")
    start = time.perf_counter()
    kept = sum(detector(wave, "x")[1] for wave in waves)
    detection = time.perf_counter() - start
    start = time.perf_counter()
    with torch.inference_mode():
        for wave in waves:
            embedder(wave.unsqueeze(0))
    embedding = time.perf_counter() - start
    hours = total / 3600
    print(f"{len(waves)} files, {total / 60:.1f} min of audio, {100 * kept / total:.1f} % kept "
          f"as speech")
    print(f"speech detection: {detection:.1f} s ({detection / hours:.0f} s per hour of audio)")
    print(f"embedding (C=256 demo model, one file at a time): {embedding:.1f} s "
          f"({embedding / hours:.0f} s per hour of audio)")
    print(f"detection / embedding: {detection / embedding:.2f}")


if __name__ == "__main__":
    main()
