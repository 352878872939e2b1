"""A rehearsal of the VoxCeleb recipe at VoxCeleb's shape, on generated data: what the CPU
(``rehearse_voxceleb.py``) and GPU (``rehearse_voxceleb_gpu.py``) rehearsals share.

The tree has VoxCeleb2 dev's 5,994 speakers (short files), VoxCeleb1-O's 40 test speakers
with a 10,000-trial list, a MUSAN-shaped corpus (noise files of 1 to 8 minutes, music and
speech of minutes) and RIRS_NOISES-shaped impulse responses. The audio is coloured noise, not
speech: the rehearsal is about the data path, the loader and the bookkeeping at VoxCeleb's
scale, not about accuracy.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from custom_modules.audio import write_wav
from custom_modules.config import load_recipe
from custom_modules.data.trials import make_trials, write_trials
from custom_modules.training.examples import training_set
from custom_modules.training.recipe import KEYS, RUN_OPTIONS
from data_prep.fake_voxceleb import write_voxceleb_tree
from data_prep.synthetic_audio import coloured_noise, room_impulse_response, tone_music

RATE = 16000
VOX2_SPEAKERS = 5994
TEST_SPEAKERS = [f"id{10270 + n}" for n in range(40)]        # VoxCeleb1-O's


def training(epochs: int) -> list[str]:
    """A small model and the recipe's data path: every augmentation, bounded validation,
    export; ``epochs`` epochs, one triangular2 cycle."""
    return ["--channels=[64, 64, 64, 64, 192]", "--lin_neurons=64",
            f"--number_of_epochs={epochs}", f"--lr_schedule={{cycle_epochs: {epochs}}}",
            "--valid_utterances=400"]


def generate(root: Path, speakers: int) -> dict:
    """Write the tree under ``root`` (skipped when there); returns its folders and list."""
    done = root / "generated.json"
    if done.is_file():
        return json.loads(done.read_text())
    rng = np.random.default_rng(0)
    vox2 = [f"id{n:05d}" for n in range(1, speakers + 1)]
    write_voxceleb_tree(root / "voxceleb2", vox2, sessions=1, utterances=2, seconds=(1.5, 2.5))
    write_voxceleb_tree(root / "voxceleb1", TEST_SPEAKERS, sessions=5, utterances=5,
                        seconds=(2.0, 4.0), seed=1)
    for part, minutes, make in (("noise", np.linspace(1, 8, 8), "noise"),
                                ("music", np.full(4, 3.0), "music"),
                                ("speech", np.full(8, 2.0), "speech")):
        for n, length in enumerate(minutes):
            wave = coloured_noise(60 * length, RATE, rng, exponent=n % 3) if make != "music" \
                else tone_music(60 * length, RATE, rng)
            write_wav(root / "musan" / part / f"{part}-{n:04d}.wav", wave.astype(np.float32), RATE)
    for n in range(50):
        write_wav(root / "RIRS_NOISES/simulated_rirs/smallroom" / f"Room{n:03d}-00001.wav",
                  room_impulse_response(RATE, rng).astype(np.float32), RATE)
    files = {s: [f"{s}/sess{v}/{u:05d}.wav" for v in range(5) for u in range(1, 6)]
             for s in TEST_SPEAKERS}
    write_trials(root / "trials_O.txt", make_trials(files, 10000, seed=0))
    folders = {"voxceleb2": str(root / "voxceleb2"), "voxceleb1": str(root / "voxceleb1"),
               "musan": str(root / "musan"), "rirs": str(root / "RIRS_NOISES"),
               "trials": str(root / "trials_O.txt")}
    done.write_text(json.dumps(folders))
    return folders


def data_arguments(folders: dict) -> list[str]:
    """The training YAML's data options for the generated tree."""
    return [f"--data_folder={folders['voxceleb2']}", f"--voxceleb1_folder={folders['voxceleb1']}",
            f"--musan_folder={folders['musan']}", f"--rirs_folder={folders['rirs']}",
            f"--trial_lists={{vox1_O: {folders['trials']}}}"]


def timed(command: list[str]) -> dict:
    """Run ``command``; its wall-clock seconds and the peak resident memory of its largest
    process (a wrapper counts its own descendants only, DataLoader workers included)."""
    wrapper = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", wrapper, *command], check=True,
                          stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": os.getcwd()})
    return {"seconds": time.perf_counter() - start,
            "peak_mb": int(done.stdout.strip().splitlines()[-1]) / 1024}


def train_log(output: Path) -> dict:
    """The last epoch's figures from ``train_log.txt`` (``name: value`` pairs)."""
    line = (output / "train_log.txt").read_text().strip().splitlines()[-1]
    figures = {}
    for part in line.replace(" - ", ", ").split(", "):
        name, _, value = part.rpartition(": ")
        try:
            figures[name.strip()] = float(value)
        except ValueError:
            continue
    return figures


def crops_per_second(argv: list[str], seconds: float = 20.0) -> float:
    """Training examples one process makes per second with the recipe ``argv`` loads (crop,
    speed perturbation, augmentation): what one DataLoader worker delivers."""
    hparams = load_recipe(argv, KEYS, RUN_OPTIONS).hparams
    with tempfile.TemporaryDirectory() as scratch:
        data = training_set(hparams["train_csv"], f"{scratch}/labels.txt",
                            hparams["crop_seconds"], hparams["sample_rate"],
                            hparams["speaker_speeds"], hparams["example_augment"])
        torch.manual_seed(0)
        start, made = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            data.dataset[made % len(data.dataset)]
            made += 1
        return made / (time.perf_counter() - start)


def report(name: str, figures: dict) -> None:
    """Print the figures and write them to ``exps/<name>/report.json``."""
    path = Path("exps", name, "report.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")
    for key, value in figures.items():
        print(f"{key:<40} {value:.3f}" if isinstance(value, float) else f"{key:<40} {value}")
    print(f"figures in {path}")
