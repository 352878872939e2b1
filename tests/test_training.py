"""Training: loss goes down on a learnable toy set, interrupted runs resume, two CPU processes
agree, and the exported folder loads. Tiny model (C=32), seconds of audio."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from custom_modules.losses import AAMSoftmaxHead
from custom_modules.pretrained import load_embedder
from custom_modules.schedules import TimeBudgetEpochCounter, WarmupSchedule
from custom_modules.spec_augment import PerSampleSpecAugment
from data_prep.synthetic_audio import speech_like

TINY = ["--channels=[32, 32, 32, 32, 96]", "--n_mels=40", "--num_workers=0",
        "--test_speakers=2", "--split_ratio=[75, 25]", "--warmup_epochs=0.5"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """10 speakers with a consistent voice each (learnable), 6 utterances of 2-3.5 s."""
    root = tmp_path_factory.mktemp("train_corpus")
    rng = np.random.default_rng(0)
    for speaker in range(10):
        for utterance in range(6):
            path = root / f"spk{speaker:02d}" / f"u{utterance}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            voice = speech_like(rng.uniform(2.0, 3.5), 16000, np.random.default_rng(speaker))
            soundfile.write(path, voice, 16000)
    return root


def train(corpus: Path, output: Path, *overrides: str, launcher=(sys.executable,),
          wait: bool = True):
    if not any(o.startswith("--batch_size") for o in overrides):
        overrides = (*overrides, "--batch_size=8")
    command = [*launcher, "recipes/train_speaker_embeddings.py", "hparams/ecapa_demo.yaml",
               f"--data_folder={corpus}", f"--output_folder={output}", *TINY, *overrides]
    if not wait:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)


def epochs_logged(output: Path) -> list[int]:
    lines = (output / "train_log.txt").read_text().splitlines()
    return [int(line.split(",")[0].split(":")[1]) for line in lines if line.startswith("epoch")]


def test_loss_decreases_on_learnable_batches():
    torch.manual_seed(0)
    head = AAMSoftmaxHead(16, num_classes=4, margin=0.2, scale=30)
    encoder = torch.nn.Linear(32, 16)
    centres = torch.randn(4, 32)
    labels = torch.arange(4).repeat(8)
    optimizer = torch.optim.Adam([*head.parameters(), *encoder.parameters()], lr=0.01)
    losses = []
    for _ in range(30):
        loss, _ = head(encoder(centres[labels] + 0.3 * torch.randn(32, 32)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_margin_warmup_schedule_and_per_sample_masks():
    head = AAMSoftmaxHead(8, 3, margin=0.2, warmup_epochs=2)
    assert [round(head.set_epoch(e), 3) for e in (1, 2, 3, 9)] == [0.0, 0.1, 0.2, 0.2]
    schedule = WarmupSchedule(0.01, warmup_epochs=1, total_epochs=5, decay="cyclic",
                              cycle_epochs=2, final_ratio=0.1)
    assert schedule(0.5) == pytest.approx(0.005)
    assert schedule(2.0) == pytest.approx(0.001)
    assert schedule(3.0) == pytest.approx(0.01)
    cosine = WarmupSchedule(0.01, warmup_epochs=1, total_epochs=5, decay="cosine",
                            final_ratio=0.1)
    assert [cosine(e) for e in (1.0, 3.0, 5.0, 7.0)] == pytest.approx([0.01, 0.0055, 0.001,
                                                                       0.001])
    masks = PerSampleSpecAugment(time_masks=2, max_time=20, freq_masks=0).train()
    out = masks(torch.ones(16, 100, 10))
    patterns = {tuple((out[i, :, 0] == 0).nonzero().flatten().tolist()) for i in range(16)}
    assert len(patterns) > 8  # masks differ between samples


def test_time_budget_stops_before_an_epoch_that_would_overrun(monkeypatch):
    clock = iter([0.0, 100.0, 200.0, 300.0])        # each epoch takes 100 s
    monkeypatch.setattr("custom_modules.schedules.time.monotonic", lambda: next(clock))
    counter = TimeBudgetEpochCounter(limit=10, max_minutes=250 / 60)
    assert list(counter) == [1, 2]                   # a third would end at 300 s > 250 s
    assert counter.current == 2
    assert list(TimeBudgetEpochCounter(limit=3, max_minutes=None)) == [1, 2, 3]


@pytest.mark.slow
def test_recipe_trains_resumes_and_exports(corpus, tmp_path):
    output = tmp_path / "exp"
    done = train(corpus, output, "--number_of_epochs=1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert epochs_logged(output) == [1]
    embedder = load_embedder(output / "pretrained")
    for name in ("hyperparams.yaml", "embedding_model.ckpt", "classifier.ckpt",
                 "label_encoder.txt", "README.md"):
        assert (output / "pretrained" / name).is_file()
    assert embedder.threshold is not None
    wave = torch.from_numpy(soundfile.read(next(corpus.glob("spk00/*.wav")),
                                           dtype="float32")[0]).unsqueeze(0)
    with torch.inference_mode():
        assert embedder(wave).shape == (1, 192)
    resumed = train(corpus, output, "--number_of_epochs=2")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert epochs_logged(output) == [1, 2]


@pytest.mark.slow
def test_kill_minus_nine_then_resume(corpus, tmp_path):
    output = tmp_path / "exp"
    process = train(corpus, output, "--number_of_epochs=3", "--ckpt_interval_steps=1",
                    wait=False)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((output / "save").glob("CKPT+*"))) < 2:
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    for checkpoint in (output / "save").glob("CKPT+*"):
        assert (checkpoint / "CKPT.yaml").is_file()
        assert (checkpoint / "embedding_model.ckpt").is_file()
    done = train(corpus, output, "--number_of_epochs=3", "--ckpt_interval_steps=1")
    assert done.returncode == 0, done.stderr[-2000:]
    logged = epochs_logged(output)
    assert logged == sorted(set(logged))
    assert logged[-1] == 3


@pytest.mark.slow
def test_two_cpu_processes_end_with_identical_weights(corpus, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    done = train(corpus, tmp_path / "exp", "--number_of_epochs=1", "--batch_size=4",
                 launcher=(str(torchrun), "--nproc_per_node=2"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "weights identical on 2 processes" in done.stderr + done.stdout


@pytest.mark.slow
def test_same_seed_same_weights_with_speed_perturbed_speakers(corpus, tmp_path):
    for name in ("a", "b"):
        done = train(corpus, tmp_path / name, "--number_of_epochs=1",
                     "--speaker_speeds=[1.0, 0.9, 1.1]")
        assert done.returncode == 0, done.stderr[-2000:]
    first, second = (torch.load(tmp_path / n / "pretrained/embedding_model.ckpt",
                                weights_only=True) for n in ("a", "b"))
    assert all(torch.equal(first[k], second[k]) for k in first)
    pretrained = tmp_path / "a" / "pretrained"
    classes = torch.load(pretrained / "classifier.ckpt", weights_only=True)["weight"].shape[0]
    labels = (pretrained / "label_encoder.txt").read_text().split("\n=")[0].splitlines()
    speakers = len(labels)
    assert classes == 3 * speakers
