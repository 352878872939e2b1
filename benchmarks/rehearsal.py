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
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

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


class Shape(NamedTuple):
    """The size of a rehearsal: the generated tree's and the model's."""

    speakers: int             # VoxCeleb2-like speakers (4 files each: 2 train, 2 validate)
    test_speakers: int        # VoxCeleb1-O-like test speakers (25 files each)
    corpus_scale: float       # of the MUSAN-like corpus's minutes (1: about an hour)
    channels: list[int]
    lin_neurons: int
    batch_size: int
    num_workers: int
    epochs: int
    valid_utterances: int


# The tiny shape every rehearsal runs in make test: the code path, not the figures.
TINY = Shape(speakers=12, test_speakers=4, corpus_scale=0.02, channels=[16, 16, 16, 16, 48],
             lin_neurons=16, batch_size=4, num_workers=1, epochs=1, valid_utterances=12)


def training(shape: Shape) -> list[str]:
    """The recipe's options for ``shape``: its model, batches and workers, and every
    augmentation, bounded validation (half of each speaker's 4 files: VoxCeleb has ~180) and
    export; ``shape.epochs`` epochs, one triangular2 cycle. The generated audio is noise, so
    the back-end is fitted without speech detection."""
    epochs = shape.epochs
    return [f"--channels={shape.channels}", f"--lin_neurons={shape.lin_neurons}",
            f"--number_of_epochs={epochs}", f"--lr_schedule={{cycle_epochs: {epochs}}}",
            f"--valid_utterances={shape.valid_utterances}", f"--batch_size={shape.batch_size}",
            f"--num_workers={shape.num_workers}", "--backend_speech_detection=False",
            "--check_precisions_at_export=False",
            "--split_ratio=[50, 50]"]


def generate(root: Path, speakers: int, test_speakers: int = len(TEST_SPEAKERS),
             corpus_scale: float = 1.0) -> dict:
    """Write the tree under ``root`` (skipped when there with the same sizes); returns its
    folders and list."""
    done = root / "generated.json"
    trials = min(10000, 250 * test_speakers)
    sizes = {"speakers": speakers, "test_speakers": test_speakers, "corpus_scale": corpus_scale,
             "trials": trials}
    if done.is_file() and json.loads(done.read_text()).get("sizes") == sizes:
        return json.loads(done.read_text())
    shutil.rmtree(root, ignore_errors=True)   # another size's tree: none of its files stay
    rng = np.random.default_rng(0)
    vox2 = [f"id{n:05d}" for n in range(1, speakers + 1)]
    write_voxceleb_tree(root / "voxceleb2", vox2, sessions=1, utterances=4, seconds=(1.5, 2.5))
    tested = TEST_SPEAKERS[:test_speakers]
    write_voxceleb_tree(root / "voxceleb1", tested, sessions=5, utterances=5,
                        seconds=(2.0, 4.0), seed=1)
    for part, minutes, make in (("noise", np.linspace(1, 8, 8), "noise"),
                                ("music", np.full(4, 3.0), "music"),
                                ("speech", np.full(8, 2.0), "speech")):
        for n, length in enumerate(minutes * corpus_scale):
            wave = coloured_noise(60 * length, RATE, rng, exponent=n % 3) if make != "music" \
                else tone_music(60 * length, RATE, rng)
            write_wav(root / "musan" / part / f"{part}-{n:04d}.wav", wave.astype(np.float32), RATE)
    for n in range(50):
        write_wav(root / "RIRS_NOISES/simulated_rirs/smallroom" / f"Room{n:03d}-00001.wav",
                  room_impulse_response(RATE, rng).astype(np.float32), RATE)
    files = {s: [f"{s}/sess{v}/{u:05d}.wav" for v in range(5) for u in range(1, 6)]
             for s in tested}
    write_trials(root / "trials_O.txt", make_trials(files, trials, seed=0))
    folders = {"voxceleb2": str(root / "voxceleb2"), "voxceleb1": str(root / "voxceleb1"),
               "musan": str(root / "musan"), "rirs": str(root / "RIRS_NOISES"),
               "trials": str(root / "trials_O.txt"), "sizes": sizes}
    done.write_text(json.dumps(folders))
    return folders


def data_arguments(folders: dict, prepared: Path) -> list[str]:
    """The training YAML's data options for the generated tree, prepared into ``prepared``
    (by ``recipes/prepare_data.py`` first, as before any multi-process launch)."""
    return [f"--data_folder={folders['voxceleb2']}", f"--voxceleb1_folder={folders['voxceleb1']}",
            f"--prepared_folder={prepared}",
            f"--musan_folder={folders['musan']}", f"--rirs_folder={folders['rirs']}",
            f"--trial_lists={{vox1_O: {folders['trials']}}}"]


def timed(command: list[str]) -> dict:
    """Run ``command``; its wall-clock seconds and the peak resident memory of its largest
    process (a wrapper counts its own descendants only, DataLoader workers included). A
    command that fails raises ``subprocess.CalledProcessError`` (its output was shown)."""
    wrapper = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
               "sys.exit(done.returncode)")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", wrapper, *command], check=False,
                          stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": os.getcwd()})
    print(done.stdout, end="")
    if done.returncode:
        raise subprocess.CalledProcessError(done.returncode, command)
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


def report(folder: Path, figures: dict) -> None:
    """Print the figures and write them to ``folder/report.json``."""
    path = folder / "report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")
    for key, value in figures.items():
        print(f"{key:<40} {value:.3f}" if isinstance(value, float) else f"{key:<40} {value}")
    print(f"figures in {path}")
