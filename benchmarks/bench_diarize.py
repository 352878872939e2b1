"""Diarization of a long recording (one hour unless told): peak memory and real-time factor,
in a fresh process.

    python benchmarks/bench_diarize.py [model_folder] [conversations.csv] [hours]

Defaults: the demo model (``exps/demo/pretrained``, tuned by ``recipes/diarize.py
hparams/demo_diarize.yaml``) and the demo's conversations. Their test recordings are put end
to end (repeated as needed) into ``hours`` of audio, which ``SpeakerEncoder.diarize`` then
diarizes with the number of speakers estimated. Prints the CPU, the speakers and segments
found, the seconds taken, the real-time factor and the peak resident memory (target 2 GB).
"""

import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from custom_modules.inference.precision import cpu_description

CODE = """
import sys, time
from custom_modules import SpeakerEncoder
encoder = SpeakerEncoder.from_hparams(sys.argv[1], savedir=sys.argv[3])
start = time.perf_counter()
found = encoder.diarize(sys.argv[2])
spent = time.perf_counter() - start
peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
print(len({s.speaker for s in found}), len(found), spent, int(peak) / 1024,
      encoder.embedder.precision)
"""


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "exps/demo/pretrained"
    listing = sys.argv[2] if len(sys.argv) > 2 else "exps/demo/conversations/conversations.csv"
    with open(listing, newline="", encoding="utf-8") as handle:
        files = [r["wav"] for r in csv.DictReader(handle) if r["part"] == "test"]
    hours = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
    conversations = np.concatenate([soundfile.read(f, dtype="float32")[0] for f in files])
    samples = int(hours * 3600 * 16000)
    folder = Path(tempfile.mkdtemp())
    with soundfile.SoundFile(folder / "long.wav", "w", 16000, 1, "PCM_16") as sink:
        for start in range(0, samples, len(conversations)):   # written piece by piece
            sink.write(conversations[:samples - start])
    done = subprocess.run([sys.executable, "-c", CODE, model, str(folder / "long.wav"),
                           str(folder)], capture_output=True, text=True, check=True)
    speakers, segments, spent, peak, precision = done.stdout.split()
    print(f"{cpu_description()[0]}; {hours:g} h ({len(files)} test conversations end to end, "
          f"repeated), precision {precision}: {speakers} speakers, {segments} segments in "
          f"{float(spent):.0f} s (real-time factor {float(spent) / 3600 / hours:.3f}); peak "
          f"memory {float(peak):.0f} MB")


if __name__ == "__main__":
    main()
