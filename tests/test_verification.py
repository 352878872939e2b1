"""Verification end to end on a tiny generated corpus with a tiny random model, saved the way
a pretrained folder and a training checkpoint are."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from conftest import TINY_MODEL, tiny_pretrained
from speechbrain.utils.checkpoints import Checkpointer

from custom_modules import ECAPA_TDNN
from custom_modules.embedding import Utterance, embed_utterances, model_fingerprint
from custom_modules.pretrained import load_embedder
from data_prep.folder_prepare import prepare_folder
from data_prep.synthetic_audio import speech_like


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("verification")
    rng = np.random.default_rng(0)
    for speaker in range(12):
        for utterance in range(4):
            path = root / "corpus" / f"spk{speaker:02d}" / f"u{utterance}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            seconds = 75.0 if (speaker, utterance) == (0, 0) else rng.uniform(1.0, 2.5)
            soundfile.write(path, speech_like(seconds, 16000, rng), 16000)
    prepare_folder(str(root / "corpus"), str(root / "exp/data"), test_speakers=4,
                   test_trials=60, split_ratio=(75, 25), valid_trials=30, num_workers=1)
    tiny_pretrained(root / "exp/pretrained")
    return root / "exp"


def run_script(experiment: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "recipes/speaker_verification.py",
                           "hparams/verify.yaml", f"--experiment={experiment}", *overrides],
                          capture_output=True, text=True, check=False)


def test_script_end_to_end_with_as_norm_and_calibration(experiment):
    done = run_script(experiment)
    assert done.returncode == 0, done.stderr
    assert "as-norm" in done.stdout
    metrics = json.loads((experiment / "verification/metrics.json").read_text())
    trials = len((experiment / "data/test_trials.txt").read_text().splitlines())
    for variant in ("cosine", "as-norm"):
        assert 0 <= metrics["test"][variant]["eer"] <= 100
        assert metrics["test"][variant]["trials"] == trials
    out = experiment / "verification/test"
    assert (out / "det.png").stat().st_size > 10000
    assert (out / "score_histogram.png").stat().st_size > 10000
    lines = (out / "scores.txt").read_text().splitlines()
    assert lines[0] == "enrol test label cosine as-norm"
    assert len(lines) == trials + 1
    caches = list((experiment / "embeddings").glob("embeddings_*.pt"))
    assert len(caches) == 1
    stamp = caches[0].stat().st_mtime_ns
    again = run_script(experiment)
    assert again.returncode == 0, again.stderr
    assert caches[0].stat().st_mtime_ns == stamp  # everything came from the cache


def test_lda_back_end_adds_its_variants(experiment, tmp_path):
    done = run_script(experiment, "--lda_dim=3", "--cohort=utterances",
                      f"--output_folder={tmp_path / 'lda'}")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "lda/metrics.json").read_text())["test"]
    assert list(metrics) == ["cosine", "as-norm", "lda+cosine", "lda+as-norm"]
    header = (tmp_path / "lda/test/scores.txt").read_text().splitlines()[0]
    assert header == "enrol test label cosine as-norm lda+cosine lda+as-norm"
    assert "lda+as-norm" in done.stdout
    too_many = run_script(experiment, "--lda_dim=50", f"--output_folder={tmp_path / 'bad'}")
    assert too_many.returncode != 0
    assert "lda_dim=50 must be between 1 and" in too_many.stderr.strip().splitlines()[-1]


def test_calibration_and_training_checkpoint(experiment, tmp_path):
    torch.manual_seed(1)
    other = ECAPA_TDNN(**TINY_MODEL)
    checkpointer = Checkpointer(tmp_path / "save", {"embedding_model": other})
    checkpoint = checkpointer.save_checkpoint()
    embedder = load_embedder(experiment / "pretrained", checkpoint.path)
    assert torch.equal(embedder.embedding_model.fc.conv.weight, other.fc.conv.weight)
    data = experiment / "data"
    done = run_script(experiment, f"--checkpoint_path={checkpoint.path}",
                      f"--output_folder={tmp_path / 'out'}")
    assert done.returncode == 0, done.stderr
    hparams = tmp_path / "calibrated.yaml"
    text = Path("hparams/verify.yaml").read_text()
    text = text.replace("calibration_trials: null", f"calibration_trials: {data}/valid_trials.txt")
    text = text.replace("calibration_csv: null", f"calibration_csv: {data}/valid.csv")
    hparams.write_text(text)
    done = subprocess.run([sys.executable, "recipes/speaker_verification.py", str(hparams),
                           f"--experiment={experiment}", f"--output_folder={tmp_path / 'cal'}"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    calibrated = json.loads((tmp_path / "cal/metrics.json").read_text())["test"]["calibrated"]
    assert np.isfinite(calibrated["cllr"])
    assert 0 <= calibrated["act_dcf_0.01"]


@pytest.mark.parametrize(("lines", "words"), [
    ("", "the trial list is empty"),
    ("1 spk00/u0.wav\n", ":1: expected 'label enrol test'"),
    ("1 spk00/u0.wav nobody/x.wav\n0 gone/a.wav spk00/u1.wav\n",
     "2 trial utterances are missing, e.g. gone/a.wav, nobody/x.wav"),
])
def test_bad_trial_lists_are_one_line_errors(experiment, tmp_path, lines, words):
    trials = tmp_path / "trials.txt"
    trials.write_text(lines)
    hparams = tmp_path / "h.yaml"
    hparams.write_text(Path("hparams/verify.yaml").read_text().replace(
        "test: !ref <data_folder>/test_trials.txt", f"test: {trials}"))
    done = subprocess.run([sys.executable, "recipes/speaker_verification.py", str(hparams),
                           f"--experiment={experiment}"], capture_output=True, text=True,
                          check=False)
    assert done.returncode != 0
    assert words in done.stderr
    assert "Traceback" not in done.stderr


def test_long_files_in_windows_and_cache(experiment, tmp_path):
    embedder = load_embedder(experiment / "pretrained")
    long_file = str(next((experiment.parent / "corpus/spk00").glob("u0.wav")))
    utterances = [Utterance("long", long_file), Utterance("head", long_file, 0, 16000 * 20)]
    embeddings, problems = embed_utterances(embedder, utterances, tmp_path, window_seconds=20)
    assert not problems
    assert embeddings["long"].shape == (24,)
    with torch.inference_mode():
        alone = embedder(torch.from_numpy(soundfile.read(long_file, stop=16000 * 20,
                                                         dtype="float32")[0]).unsqueeze(0))
    assert torch.allclose(embeddings["head"], alone[0], atol=1e-5)
    cache = tmp_path / f"embeddings_{model_fingerprint(embedder)}.pt"
    assert len(torch.load(cache, weights_only=True)) == 2
    moved, _ = embed_utterances(embedder, [Utterance("head", long_file, 16000, 16000 * 21)],
                                tmp_path)
    assert not torch.allclose(moved["head"], embeddings["head"])
    assert len(torch.load(cache, weights_only=True)) == 3
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"junk" * 100)
    with pytest.raises(ValueError, match="1 utterances cannot be embedded"):
        embed_utterances(embedder, [Utterance("bad", str(bad))])
    _, problems = embed_utterances(embedder, [Utterance("bad", str(bad))], skip_bad=True)
    assert "unreadable audio" in problems[0]


def test_embedding_does_not_depend_on_the_batch(experiment):
    embedder = load_embedder(experiment / "pretrained")
    rng = np.random.default_rng(5)
    waves = [torch.from_numpy(speech_like(s, 16000, rng)).float() for s in (1.37, 3.0, 2.2)]
    padded = torch.zeros(3, 48000)
    for row, wave in enumerate(waves):
        padded[row, :len(wave)] = wave
    lengths = torch.tensor([len(w) / 48000 for w in waves])
    with torch.inference_mode():
        together = embedder(padded, lengths)
        for row, wave in enumerate(waves):
            alone = embedder(wave.unsqueeze(0))[0]
            cosine = torch.nn.functional.cosine_similarity(alone, together[row], dim=0)
            assert cosine >= 0.9999, (row, float(cosine))
            assert torch.allclose(alone, together[row], atol=1e-4)
