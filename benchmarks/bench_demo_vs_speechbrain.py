"""The demo recipe with SpeechBrain's stock ECAPA_TDNN + Fbank against ours: same recipe, same
data, same seed, same epochs, same wall-clock budget; EER on the demo's held-out voices.

    python -m benchmarks.bench_demo_vs_speechbrain [minutes] [--key=value ...]

Needs the demo corpus (``make demo``, or ``python recipes/prepare_data.py hparams/demo.yaml``).
Both models are trained one after the other by ``recipes/train_speaker_embeddings.py`` on the
prepared corpus in ``exps/demo``: ours with ``hparams/demo.yaml``, SpeechBrain's with a YAML
that extends it and swaps only ``compute_features`` (``Fbank`` + sentence mean normalisation)
and ``embedding_model`` (``speechbrain.lobes.models.ECAPA_TDNN``, same channels), the modules
of ``benchmarks/speechbrain_stock.py``. Each gets the YAML's epochs and at most ``minutes`` of
training (default 14; the recipe stops before an epoch that would overrun it). Extra
``--key=value`` arguments go to both runs. Both exported folders are then scored by the
verification recipe with ``hparams/demo_verify.yaml``, as ``make demo`` scores: the standard and
hard trial lists, cosine and AS-norm, without and with the LDA back-end.

Before training, the two are checked to be the same computation: same state-dict keys and
parameter count, and SpeechBrain's features equal to ours within 1e-3 dB on a corpus file.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.speechbrain_stock import SpeechBrainFrontend, SpeechBrainStockECAPA
from custom_modules.audio import read_audio
from custom_modules.evaluation.verification import summary_table
from custom_modules.models.ecapa import ECAPA_TDNN
from custom_modules.models.frontend import MelFrontend

DEMO = Path("exps/demo")
OUTPUT = Path("exps/bench_demo")
CHANNELS = [256, 256, 256, 256, 768]
# SpeechBrain's run: the demo YAML with these two modules swapped, nothing else.
SPEECHBRAIN_YAML = """extends: {demo}
compute_features: !new:benchmarks.speechbrain_stock.SpeechBrainFrontend
    sample_rate: !ref <sample_rate>
    n_mels: !ref <n_mels>
embedding_model: !new:benchmarks.speechbrain_stock.SpeechBrainStockECAPA
    input_size: !ref <n_mels>
    channels: !ref <channels>
    lin_neurons: !ref <lin_neurons>
"""
# The recipes import benchmarks.speechbrain_stock from the repository root.
ENVIRONMENT = {**os.environ, "PYTHONPATH": os.getcwd()}


def speechbrain_yaml(folder: Path) -> Path:
    """``hparams/demo.yaml`` with SpeechBrain's frontend and model."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "speechbrain_demo.yaml"
    path.write_text(SPEECHBRAIN_YAML.format(demo=Path("hparams/demo.yaml").resolve()),
                    encoding="utf-8")
    return path


def check_same_computation(wav: str) -> None:
    """Same architecture and the same features, or stop."""
    ours = ECAPA_TDNN(80, channels=CHANNELS)
    theirs = SpeechBrainStockECAPA(input_size=80, channels=CHANNELS)
    if ours.state_dict().keys() != theirs.state_dict().keys() or \
            sum(p.numel() for p in ours.parameters()) != \
            sum(p.numel() for p in theirs.parameters()):
        sys.exit("error: the two ECAPA_TDNN differ in their parameters")
    audio = read_audio(wav).unsqueeze(0)
    lengths = torch.ones(1)
    with torch.no_grad():
        difference = (MelFrontend()(audio, lengths)
                      - SpeechBrainFrontend()(audio, lengths)).abs().max().item()
    if difference > 1e-3:
        sys.exit(f"error: features differ by {difference:.2e} dB")
    count = sum(p.numel() for p in ours.parameters())
    print(f"same state-dict keys and parameter count ({count:,}); features differ by at most "
          f"{difference:.1e} dB")


def train(name: str, hparams: Path, minutes: float, extra: list[str]) -> dict:
    """Run the recipe for one model from scratch; returns its wall-clock minutes and epochs."""
    folder = OUTPUT / name
    shutil.rmtree(folder, ignore_errors=True)
    command = [sys.executable, "recipes/train_speaker_embeddings.py", str(hparams),
               f"--output_folder={folder}", f"--corpus_folder={DEMO / 'corpus'}",
               f"--prepared_folder={DEMO / 'data'}", f"--max_train_minutes={minutes}", *extra]
    start = time.perf_counter()
    subprocess.run(command, check=True, env=ENVIRONMENT)
    spent = (time.perf_counter() - start) / 60
    epochs = (folder / "train_log.txt").read_text(encoding="utf-8").strip().splitlines()
    return {"minutes": spent, "epochs": len(epochs), "last_epoch": epochs[-1]}


def verify(name: str) -> dict:
    """Both trial lists, scored like the demo (``hparams/demo_verify.yaml``), with the model
    the recipe exported; returns ``metrics.json``."""
    folder = OUTPUT / name
    subprocess.run([sys.executable, "recipes/speaker_verification.py",
                    "hparams/demo_verify.yaml", f"--experiment={folder}",
                    f"--data_folder={DEMO / 'data'}"], check=True, env=ENVIRONMENT)
    return json.loads((folder / "verification" / "metrics.json").read_text(encoding="utf-8"))


def main() -> None:
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 and not sys.argv[1].startswith("--") \
        else 14.0
    extra = [a for a in sys.argv[1:] if a.startswith("--")]
    if not (DEMO / "data" / "train.csv").is_file():
        sys.exit(f"error: {DEMO / 'data' / 'train.csv'} not found: generate the demo corpus "
                 "first (make demo, or python recipes/prepare_data.py hparams/demo.yaml)")
    first_wav = (DEMO / "data" / "train.csv").read_text().splitlines()[1].split(",")[2]
    check_same_computation(first_wav)
    runs = {"ours": train("ours", Path("hparams/demo.yaml"), minutes, extra),
            "speechbrain": train("speechbrain", speechbrain_yaml(OUTPUT), minutes, extra)}
    for name, run in runs.items():
        run["metrics"] = verify(name)
        print(f"\n{name}: {run['epochs']} epochs in {run['minutes']:.1f} min "
              f"(recipe wall clock, budget {minutes:g} min)\n{summary_table(run['metrics'])}")
    (OUTPUT / "results.json").write_text(json.dumps(runs, indent=2) + "\n")
    variant = runs["ours"]["metrics"]["primary_variant"]
    for trials in ("standard", "hard"):
        ours, theirs = (runs[n]["metrics"]["lists"][trials]["variants"][variant]["eer"]
                        for n in runs)
        print(f"EER on the {trials} list ({variant}): ours {ours:.2f} %, SpeechBrain "
              f"{theirs:.2f} % (SpeechBrain / ours {theirs / max(ours, 1e-9):.2f}x)")
    print(f"results in {OUTPUT / 'results.json'}")


if __name__ == "__main__":
    main()
