"""The end-to-end demo: its summary, and the steps `make demo` runs, in miniature (a few espeak-ng
voices, a C=32 model, one epoch)."""

import json
import shutil
import subprocess
import sys

import pytest

from custom_modules.demo_report import demo_summary

METRICS = {"eer": 2.5, "min_dcf_0.01": 0.31, "min_dcf_0.05": 0.12, "trials": 8000}


def write_run(folder, standard_eer: float, hard_eer: float) -> None:
    """The files the demo's steps leave behind, with chosen EERs."""
    (folder / "corpus").mkdir(parents=True)
    (folder / "corpus/corpus_report.json").write_text(json.dumps(
        {"voices": 223, "voices_by_engine": {"espeak": 91, "mbrola": 72}, "utterances": 6681,
         "test_voices": 45}))
    (folder / "verification").mkdir()
    (folder / "verification/metrics.json").write_text(json.dumps(
        {"standard": {"cosine": {**METRICS, "eer": standard_eer - 0.4},
                      "as-norm": {**METRICS, "eer": standard_eer}},
         "hard": {"cosine": {**METRICS, "eer": hard_eer}}, "problems": []}))
    (folder / "plots").mkdir()
    (folder / "plots/visualization.json").write_text(json.dumps(
        {"speakers": 12, "silhouette_cosine": 0.41,
         "attention": {"ratio": 0.35}}))
    (folder / "train_log.txt").write_text("epoch: 1, lr: 1e-3 - valid EER: 9.0\n"
                                          "epoch: 2, lr: 1e-4 - valid EER: 3.1\n")


def test_summary_reports_both_lists_the_targets_and_the_three_lines(tmp_path):
    write_run(tmp_path, standard_eer=2.5, hard_eer=4.2)
    text = demo_summary(str(tmp_path))
    assert "223 voices (espeak 91, mbrola 72)" in text
    assert "Training: 2 epochs" in text
    assert "standard        as-norm          2.50" in text
    # the verdict is the last variant's (as-norm), even where cosine did better
    assert "Target EER < 3 % on the standard list: met (as-norm 2.50 %)" in text
    assert "Target EER < 4 % on the hard list: NOT met (cosine 4.20 %)" in text
    assert "silhouette (cosine) 0.410" in text
    assert f'SpeakerEncoder.from_hparams(source="{tmp_path / "pretrained"}")' in text
    assert (tmp_path / "summary.txt").read_text() == text + "\n"


def test_summary_of_a_run_that_did_not_happen(tmp_path):
    with pytest.raises(ValueError, match="corpus_report.json: not found"):
        demo_summary(str(tmp_path))
    write_run(tmp_path, 1.0, 1.0)
    (tmp_path / "verification/metrics.json").write_text("{")
    with pytest.raises(ValueError, match="metrics.json: not valid JSON"):
        demo_summary(str(tmp_path))


def run(*command: str) -> str:
    done = subprocess.run([sys.executable, *command], capture_output=True, text=True,
                          timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_demo_steps_end_to_end(tmp_path):
    """The Makefile's demo steps on a tiny corpus: train (generating and preparing the corpus
    first), verify both lists with and without AS-norm and LDA, plots, summary."""
    out = tmp_path / "demo"
    run("recipes/train_speaker_embeddings.py", "hparams/demo.yaml", f"--output_folder={out}",
        "--max_voices=10", "--utterances_per_voice=8", "--sessions_per_voice=2",
        "--test_voices=0.4", "--trials=300", "--split_ratio=[67, 33]",
        "--validation_trials=200", "--channels=[32, 32, 32, 32, 96]", "--n_mels=40",
        "--number_of_epochs=1", "--batch_size=8", "--num_workers=0", "--warmup_epochs=0.5")
    lists = {"test": None, "standard": f"{out}/corpus/trials_standard.txt"}
    if (out / "corpus/trials_hard.txt").is_file():
        lists["hard"] = f"{out}/corpus/trials_hard.txt"
    run("recipes/speaker_verification.py", "hparams/verify.yaml", f"--experiment={out}",
        f"--trial_lists={json.dumps(lists)}", f"--audio_folder={out}/corpus/wav",
        "--cohort=utterances", "--lda_dim=2")
    run("recipes/visualize.py", "hparams/visualize.yaml", f"--experiment={out}",
        "--speakers=4", "--utterances_per_speaker=4", "--perplexity=3")
    summary = run("recipes/demo_summary.py", "hparams/demo.yaml", f"--output_folder={out}")
    metrics = json.loads((out / "verification/metrics.json").read_text())
    assert set(metrics) - {"problems"} == set(lists) - {"test"}
    assert list(metrics["standard"]) == ["cosine", "as-norm", "lda+cosine", "lda+as-norm"]
    assert "Target EER < 3 % on the standard list" in summary
    for picture in ("tsne_held_out.png", "attention.png", "attention_with_silence.png"):
        assert (out / "plots" / picture).stat().st_size > 10_000
    assert (out / "pretrained/embedding_model.ckpt").is_file()
