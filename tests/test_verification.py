"""Verification end to end on a tiny generated corpus with a tiny random model, saved the way
a pretrained folder and a training checkpoint are. Each speaker's utterances are renderings of
one voice, so that even a random model scores targets above non-targets."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from conftest import TINY_MODEL, split_options, tiny_pretrained, write_corpus
from sklearn.linear_model import LogisticRegression
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.metric_stats import EER

from custom_modules import ECAPA_TDNN
from custom_modules.data.catalogue import Utterance, read_utterance_csvs
from custom_modules.inference.embedding import embed_utterances, model_fingerprint
from custom_modules.inference.pretrained import load_embedder
from data_prep.folder_prepare import prepare_folder
from data_prep.synthetic_audio import speech_like


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("verification")
    write_corpus(root / "corpus", 12, 4, (1.0, 2.5), voice_seed=100, first_seconds=75.0)
    prepare_folder(str(root / "corpus"), str(root / "exp/data"), 4, 60,
                   split_options(split_ratio=(75, 25), valid_trials=30), num_workers=1)
    tiny_pretrained(root / "exp/pretrained", seen_data=True)
    return root / "exp"


def run_script(experiment: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "recipes/speaker_verification.py",
                           "hparams/verify.yaml", f"--experiment={experiment}", *overrides],
                          capture_output=True, text=True, check=False)


def read_scores(path: Path) -> dict[str, np.ndarray]:
    """Columns of a scores.txt, by name."""
    lines = path.read_text().splitlines()
    header, rows = lines[0].split(), [line.split() for line in lines[1:]]
    return {name: np.array([float(r[i]) for r in rows]) for i, name in enumerate(header)
            if name not in ("enrol", "test")}


def test_script_end_to_end_with_as_norm(experiment):
    done = run_script(experiment)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((experiment / "verification/metrics.json").read_text())
    assert set(metrics) == {"schema_version", "primary_variant", "variants", "precision",
                            "lists", "calibration", "skipped_utterances"}
    assert metrics["precision"] == "fp32"
    assert (metrics["primary_variant"], metrics["variants"]) == ("as-norm", ["cosine", "as-norm"])
    trials = len((experiment / "data/test_trials.txt").read_text().splitlines())
    out = experiment / "verification/test"
    scores = read_scores(out / "scores.txt")
    assert len(scores["label"]) == trials
    labels = scores["label"] == 1
    for variant in ("cosine", "as-norm"):
        entry = metrics["lists"]["test"]["variants"][variant]
        assert entry["trials"] == trials
        # The EER in metrics.json is SpeechBrain's EER of the scores in scores.txt.
        reference, _ = EER(torch.tensor(scores[variant][labels]),
                           torch.tensor(scores[variant][~labels]))
        assert entry["eer"] == pytest.approx(100 * float(reference), abs=1e-4)
        assert f"test            {variant:<13}{entry['eer']:>8.2f}" in done.stdout
    assert scores["cosine"][labels].mean() > scores["cosine"][~labels].mean()
    assert (out / "det.png").stat().st_size > 10000
    assert (out / "score_histogram.png").stat().st_size > 10000
    caches = list((experiment / "embeddings").glob("embeddings_*.pt"))
    assert len(caches) == 1
    stamp = caches[0].stat().st_mtime_ns
    again = run_script(experiment)
    assert again.returncode == 0, again.stderr
    assert caches[0].stat().st_mtime_ns == stamp  # everything came from the cache


def test_eer_is_zero_for_copies_and_fifty_for_ties(experiment, tmp_path):
    """Targets that pair a file with a copy of itself score above every non-target: EER 0.
    The same pair labelled once each way, three times: every score ties, EER 50 %."""
    audio = tmp_path / "audio"
    audio.mkdir()
    sources = sorted((experiment.parent / "corpus").glob("spk0[4-7]/u1.wav"))
    for n, source in enumerate(sources):
        shutil.copy(source, audio / f"{n}.wav")
        shutil.copy(source, audio / f"{n}_copy.wav")
    (tmp_path / "copies.txt").write_text(
        "".join(f"1 {n}.wav {n}_copy.wav\n" for n in range(4))
        + "".join(f"0 {a}.wav {b}_copy.wav\n" for a in range(4) for b in range(4) if a != b))
    (tmp_path / "ties.txt").write_text("1 0.wav 0_copy.wav\n0 0.wav 0_copy.wav\n" * 3)
    lists = f"{{test: null, copies: {tmp_path}/copies.txt, ties: {tmp_path}/ties.txt}}"
    done = run_script(experiment, f"--trial_lists={lists}", f"--audio_folder={audio}",
                      f"--output_folder={tmp_path / 'out'}")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "out/metrics.json").read_text())["lists"]
    assert metrics["copies"]["variants"]["cosine"]["eer"] == 0.0
    assert metrics["ties"]["variants"]["cosine"]["eer"] == 50.0


def test_lda_back_end_adds_its_variants(experiment, tmp_path):
    done = run_script(experiment, "--lda_dim=3", "--cohort=utterances",
                      "--primary_variant=lda+as-norm", f"--output_folder={tmp_path / 'lda'}")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "lda/metrics.json").read_text())
    assert metrics["variants"] == ["cosine", "as-norm", "lda+cosine", "lda+as-norm"]
    assert list(metrics["lists"]["test"]["variants"]) == metrics["variants"]
    header = (tmp_path / "lda/test/scores.txt").read_text().splitlines()[0]
    assert header == "enrol test label cosine as-norm lda+cosine lda+as-norm"
    too_many = run_script(experiment, "--lda_dim=50", f"--output_folder={tmp_path / 'bad'}")
    assert too_many.returncode != 0
    assert "lda_dim=50 must be between 1 and" in too_many.stderr.strip().splitlines()[-1]
    no_lda = run_script(experiment, "--primary_variant=lda+as-norm")
    assert no_lda.stderr.strip().splitlines()[-1] == (
        "error: primary_variant 'lda+as-norm' is not among the variants scored (cosine, "
        "as-norm): choose one of them (lda+ variants need lda_dim, normalised ones cohort_csv, "
            "model model_backend)")


def test_calibrated_llrs_carry_information(experiment, tmp_path):
    """Calibrated on the test trials themselves (the toy corpus has too few validation
    speakers to calibrate on): logistic regression minimises Cllr, so it must end below the
    1 bit of a system that knows nothing."""
    data = experiment / "data"
    done = run_script(experiment, f"--calibration_trials={data}/test_trials.txt",
                      f"--calibration_csv={data}/test.csv", f"--output_folder={tmp_path}")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["calibration"]["variant"] == "as-norm"
    assert metrics["calibration"]["file"] == f"{data}/test_trials.txt"
    calibrated = metrics["lists"]["test"]["calibrated"]
    scores = read_scores(tmp_path / "test/scores.txt")
    labels = scores["label"] == 1
    assert scores["llr"][labels].mean() > scores["llr"][~labels].mean()
    assert calibrated["cllr"] < 1.0
    # The map is the logistic regression of these labels on the primary variant's scores,
    # and the LLRs are that map of them.
    reference = LogisticRegression(C=1e6, class_weight="balanced", tol=1e-8, max_iter=1000)
    reference.fit(scores["as-norm"].reshape(-1, 1), labels)
    scale, offset = metrics["calibration"]["scale"], metrics["calibration"]["offset"]
    assert (scale, offset) == pytest.approx((reference.coef_[0, 0], reference.intercept_[0]),
                                            rel=1e-3, abs=1e-3)
    assert np.allclose(scores["llr"], scale * scores["as-norm"] + offset, atol=1e-4)


def test_mean_subtraction_scores_the_centred_embeddings(experiment, tmp_path):
    done = run_script(experiment, "--mean_subtraction=True", "--cohort=utterances",
                      f"--output_folder={tmp_path}")
    assert done.returncode == 0, done.stderr
    embedder = load_embedder(experiment / "pretrained")
    training = list(read_utterance_csvs([str(experiment / "data/train.csv")]).values())
    pool, _ = embed_utterances(embedder, training, experiment / "embeddings")
    mean = torch.stack(list(pool.values())).mean(dim=0)
    lines = (tmp_path / "test/scores.txt").read_text().splitlines()[1:]
    entries = sorted({e for line in lines for e in line.split()[:2]})
    catalogue = read_utterance_csvs([str(experiment / f"data/{n}.csv") for n in ("enrol", "test")])
    embedded, _ = embed_utterances(embedder, [catalogue[e[:-4]] for e in entries],
                                   experiment / "embeddings")
    for line in lines:
        enrol, test, _, cosine, _ = line.split()
        expected = torch.nn.functional.cosine_similarity(embedded[enrol[:-4]] - mean,
                                                         embedded[test[:-4]] - mean, dim=0)
        assert float(cosine) == pytest.approx(float(expected), abs=2e-6)


def test_training_checkpoint_and_device(experiment, tmp_path):
    torch.manual_seed(1)
    other = ECAPA_TDNN(**TINY_MODEL)
    checkpoint = Checkpointer(tmp_path / "save", {"embedding_model": other}).save_checkpoint()
    embedder = load_embedder(experiment / "pretrained", checkpoint.path)
    assert torch.equal(embedder.embedding_model.fc.conv.weight, other.fc.conv.weight)
    done = run_script(experiment, f"--checkpoint_path={checkpoint.path}", "--device=cpu",
                      f"--output_folder={tmp_path / 'out'}")
    assert done.returncode == 0, done.stderr
    refused = run_script(experiment, "--precision=bf16")
    assert refused.stderr.strip().splitlines()[-1].startswith(
        "error: --precision has no effect on this recipe")
    if not torch.cuda.is_available():
        cuda = run_script(experiment, "--device=cuda:0")
        assert cuda.stderr.strip().splitlines()[-1] == \
            "error: --device=cuda:0: CUDA is not available here"


@pytest.mark.parametrize(("lines", "words"), [
    ("", "the trial list is empty"),
    ("1 spk00/u0.wav\n", ":1: expected 'label enrol test'"),
    ("1 spk00/u0.wav nobody/x.wav\n0 gone/a.wav spk00/u1.wav\n",
     "2 trial utterances are missing, e.g. gone/a.wav, nobody/x.wav; set skip_missing=True"),
])
def test_bad_trial_lists_are_one_line_errors(experiment, tmp_path, lines, words):
    trials = tmp_path / "trials.txt"
    trials.write_text(lines)
    done = run_script(experiment, f"--trial_lists={{test: {trials}}}")
    assert done.returncode != 0
    assert words in done.stderr.strip().splitlines()[-1]
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
    with pytest.raises(ValueError, match=f"^{bad}: unreadable audio"):
        embed_utterances(embedder, [Utterance("bad", str(bad))])
    with pytest.raises(ValueError, match="^2 utterances cannot be embedded: .*bad.wav: "
                                         "unreadable audio .*; .*missing.wav: no such file$"):
        embed_utterances(embedder, [Utterance("bad", str(bad)),
                                    Utterance("gone", str(tmp_path / "missing.wav"))])
    _, problems = embed_utterances(embedder, [Utterance("bad", str(bad))], skip_bad=True)
    assert "unreadable audio" in problems[0]
    # A file found bad only when read stops the run, but what was embedded stays cached.
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(32000, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="silent.wav: silent"):
        embed_utterances(embedder, [Utterance("quiet", str(silent)),
                                    Utterance("tail", long_file, 16000, 16000 * 5)], tmp_path)
    assert len(torch.load(cache, weights_only=True)) == 4


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
