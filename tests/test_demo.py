"""The end-to-end demo: its summary, its preparation (held-out voices come from the generator),
and the steps `make demo` runs, in miniature (a few espeak-ng voices, a C=32 model, one epoch)."""

import csv
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile
from conftest import read_csv
from speechbrain.utils.checkpoints import Checkpointer

from custom_modules.data.trials import Trial, write_trials
from custom_modules.errors import InputError
from custom_modules.training.schedules import TimeBudgetEpochCounter
from data_prep.demo.prepare import prepare_demo
from recipes.demo_summary import BLOCK, demo_summary, publish

METRICS = {"eer": 2.5, "eer_threshold": 0.4, "min_dcf_0.01": 0.31, "min_dcf_0.05": 0.12,
           "trials": 8000}
TARGETS = {"standard": 3.0, "hard": 4.0}


def write_run(folder, standard_eer: float, hard_eer: float) -> None:
    """The files the demo's steps leave behind, with chosen EERs."""
    (folder / "corpus").mkdir(parents=True)
    (folder / "corpus/corpus_report.json").write_text(json.dumps(
        {"voices": 223, "voices_by_engine": {"espeak": 91, "mbrola": 72}, "utterances": 6681,
         "test_voices": 45}))
    (folder / "verification").mkdir()

    def entry(variants: dict[str, float]) -> dict:
        return {"file": "x.txt", "trials_dropped": 0, "calibrated": None,
                "variants": {v: {**METRICS, "eer": e} for v, e in variants.items()}}

    (folder / "verification/metrics.json").write_text(json.dumps(
        {"schema_version": 1, "primary_variant": "as-norm", "variants": ["cosine", "as-norm"],
         "lists": {"standard": entry({"cosine": standard_eer - 0.4, "as-norm": standard_eer}),
                   "hard": entry({"cosine": hard_eer - 1.0, "as-norm": hard_eer})},
         "calibration": None, "skipped_utterances": []}))
    (folder / "plots").mkdir()
    (folder / "plots/visualization.json").write_text(json.dumps(
        {"speakers": 12, "silhouette_cosine": 0.41, "attention": {"ratio": 0.35}}))
    (folder / "base").mkdir()
    (folder / "base/train_log.txt").write_text("epoch: 1, lr: 1e-3 - valid EER: 9.0\n"
                                               "epoch: 2, lr: 1e-4 - valid EER: 3.1\n")
    (folder / "large_margin").mkdir()
    (folder / "large_margin/train_log.txt").write_text("epoch: 1, lr: 3e-5, margin: 5.00e-01 - "
                                                       "valid EER: 2.9\n")
    (folder / "identification").mkdir()
    (folder / "identification/report.json").write_text(json.dumps(
        {"enrolled_speakers": 20, "impostor_speakers": 21, "enrol_files": 3, "top1": 0.991,
         "top5": 1.0, "operating_points": {"eer": {"detection": 0.99, "false_alarm": 0.35},
                                           "far_0.1%": {"detection": 0.931,
                                                        "false_alarm": 0.062}}}))
    (folder / "diarization").mkdir()
    (folder / "diarization/report.json").write_text(json.dumps(
        {"test_recordings": 12, "test_seconds": 2574.0, "collar": 0.25,
         "estimated": {"der": 2.3, "missed": 1.61, "false_alarm": 0.04, "confusion": 0.64},
         "speaker_count_exact": 0.9167, "real_time_factor": 0.019}))


def summary_of(folder) -> str:
    """The summary of a run written by ``write_run`` into ``folder``."""
    return demo_summary(str(folder), str(folder / "base"),
                        str(folder / "large_margin/train_log.txt"), str(folder / "corpus"),
                        str(folder / "pretrained"), TARGETS, 5.0)


def test_summary_reports_both_lists_the_targets_and_the_three_lines(tmp_path):
    write_run(tmp_path, standard_eer=2.5, hard_eer=4.2)
    text = summary_of(tmp_path)
    assert "223 voices (espeak 91, mbrola 72)" in text
    assert ("Training: 2 epochs + 1 large-margin epoch; last: epoch: 1, lr: 3e-5, margin: "
            "5.00e-01 - valid EER: 2.9") in text
    # The primary variant (as-norm) first, the others after it in their order.
    rows = [line.split()[:2] for line in text.splitlines()
            if line.startswith(("standard ", "hard "))]
    assert rows == [["standard", "as-norm"], ["standard", "cosine"], ["hard", "as-norm"],
                    ["hard", "cosine"]]
    assert "standard        as-norm          2.50" in text
    # the verdict is the primary variant's (as-norm), even where cosine did better
    assert "Target EER < 3 % on the standard list: met (as-norm: 2.50 %)" in text
    assert "Target EER < 4 % on the hard list: NOT met (as-norm: 4.20 %)" in text
    assert "silhouette (cosine) 0.410" in text
    assert ("Identification (20 held-out voices enrolled from 3 files, 21 never enrolled): "
            "top-1 99.1 %, top-5 100.0 %; open set at far_0.1%: 93.1 % identified, 6.2 % "
            "false alarms.") in text
    assert ("Diarization (12 generated conversations of held-out voices, 43 min): DER 2.30 % "
            "(collar 0.25 s, overlap scored; missed 1.61, false alarm 0.04, confusion 0.64), "
            "number of speakers exact on 92 % of them, real-time factor 0.019.") in text
    assert "Target DER < 5 % on the generated conversations: met (2.30 %)." in text
    assert text.startswith("Real speech: not run (make real-speech).")
    assert f'SpeakerEncoder.from_hparams(source="{tmp_path / "pretrained"}")' in text
    assert "trained on synthetic voices" in text and "exps/demo/real_speech/pretrained" in text
    assert "make demo took" not in text          # steps run by hand: no stage times
    assert (tmp_path / "summary.txt").read_text() == text + "\n"
    # A first stage that its time budget stopped after 2 of 5 epochs says so (its epoch
    # counter's checkpoint).
    counter = TimeBudgetEpochCounter(limit=5, max_minutes=9.0)
    counter.current = counter.planned = 2
    Checkpointer(tmp_path / "base/save", {"counter": counter}).save_checkpoint()
    assert "Training: 2 epochs of 5 (the 9-minute budget) + 1 large-margin epoch; last" in \
        summary_of(tmp_path)
    # A damaged counter file is a one-line error naming it.
    counter_file = next((tmp_path / "base/save").glob("CKPT+*/counter.ckpt"))
    counter_file.write_text('{"planned": ')
    with pytest.raises(InputError, match=rf"^{re.escape(str(counter_file))}: not an epoch"):
        summary_of(tmp_path)


def write_real_speech(folder) -> None:
    """What ``make real-speech`` leaves behind, with chosen figures."""
    def put(path: str, content: dict) -> None:
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(json.dumps(content))

    points = {"eer": {"false_accept": 0.0246, "false_reject": 0.0105},
              "far_0.1%": {"false_accept": 0.0026, "false_reject": 0.0474}}
    put("verification/council/metrics.json", {
        "primary_variant": "model", "lists": {"standard": {
            "variants": {"model": {**METRICS, "eer": 1.71, "trials": 4578}},
            "calibrated": {"cllr": 0.0572}, "operating_points": points}}})
    put("identification/council/report.json", {
        "enrolled_speakers": 2, "impostor_speakers": 3, "enrol_files": 3, "top1": 1.0,
        "operating_points": {"far_0.1%": {"detection": 0.9722, "false_alarm": 0.0351}}})
    put("diarization/conversations/report.json", {
        "test_recordings": 6, "test_seconds": 542.1, "speaker_count_exact": 5 / 6,
        "estimated": {"der": 0.98}})
    put("diarization/pyannote_sample/report.json", {"estimated": {"der": 1.35}})
    put("data/sets/sets.json", {"development": {"speakers": ["a", "b", "c", "d"]},
                                "test_speakers": ["e", "f", "g", "h", "i"]})


def test_summary_opens_with_the_real_speech_block(tmp_path):
    write_run(tmp_path, standard_eer=2.5, hard_eer=3.2)
    write_real_speech(tmp_path / "real_speech")
    lines = summary_of(tmp_path).splitlines()
    assert lines[0].endswith("its back-end fitted on 4 council members, reported on 5 others.")
    assert lines[1] == ("  verification (4578 trials): EER 1.71 %, minDCF(0.01) 0.310, Cllr "
                        "0.057; false accepts at eer 2.46 %, far_0.1% 0.26 % (false rejects "
                        "1.05 / 4.74 %)")
    assert lines[2] == ("  identification (2 members enrolled from 3 files, 3 never enrolled): "
                        "top-1 100.0 %; open set at far_0.1%: 97.2 % identified, 3.5 % false "
                        "alarms")
    assert lines[3].endswith("DER 0.98 %, number of speakers exact on 83 %; pyannote.audio's "
                             "sample: DER 1.35 %")
    assert lines[6].startswith("Synthetic voices: the training recipe's demonstration")


def test_the_readme_block_is_the_summary_a_run_wrote(tmp_path):
    write_run(tmp_path, standard_eer=2.5, hard_eer=3.2)
    text = summary_of(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{BLOCK[0]}\nan old run\n{BLOCK[1]}\n\n## Next\n")
    publish(text, readme)
    assert readme.read_text() == (f"# Title\n\n{BLOCK[0]}\n```text\n{text}\n```\n"
                                  f"{BLOCK[1]}\n\n## Next\n")
    publish(text, readme)                                # again: the same page
    assert readme.read_text().count("an old run") == 0 and readme.read_text().count(text) == 1
    readme.write_text("# Title without the block\n")
    with pytest.raises(ValueError, match=r"README.md: no <!-- demo-summary:begin -->"):
        publish(text, readme)


def test_summary_opens_with_the_stage_times_make_demo_measured(tmp_path):
    write_run(tmp_path, standard_eer=2.5, hard_eer=3.2)
    (tmp_path / "stage_times.tsv").write_text("stage\tseconds\nset-up\t114\ncorpus\t321\n"
                                              "training\t555\n")
    text = summary_of(tmp_path)
    # 990 s in all; each stage in minutes
    assert text.splitlines()[0] == ("make demo took 16.5 min (wall clock; set-up 1.9, corpus "
                                    "5.3, training 9.2).")
    (tmp_path / "stage_times.tsv").write_text("stage\tseconds\nset-up 114\n")
    with pytest.raises(ValueError, match="stage_times.tsv: not a table of stage names"):
        summary_of(tmp_path)


def test_summary_of_a_run_that_did_not_happen(tmp_path):
    with pytest.raises(ValueError, match="corpus_report.json: not found"):
        summary_of(tmp_path)
    write_run(tmp_path, 1.0, 1.0)
    (tmp_path / "verification/metrics.json").write_text("{")
    with pytest.raises(ValueError, match="metrics.json: not valid JSON"):
        summary_of(tmp_path)


def write_corpus(folder) -> None:
    """What the generator writes, for 8 voices: 3 held out, one of which (id10008) only the hard
    list names."""
    rng = np.random.default_rng(0)
    speakers = [f"id1000{i}" for i in range(1, 9)]
    test = {"id10006", "id10007", "id10008"}
    with open(folder / "speakers.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ID", "engine", "voice", "language", "gender", "split", "files"])
        for speaker in speakers:
            writer.writerow([speaker, "espeak", "v", "en", "male",
                             "test" if speaker in test else "train", 4])
    rows = []
    for speaker in speakers:
        for n in range(1, 5):
            path = folder / "wav" / speaker / "sess01" / f"{n:05d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(path, 0.1 * rng.standard_normal(16000), 16000)
            rows.append([f"{speaker}/sess01/{n:05d}", "1.000", str(path), 0, 16000, speaker])
    with open(folder / "utterances.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ID", "duration", "wav", "start", "stop", "spk_id"])
        writer.writerows(rows)
    entry = "{}/sess01/{:05d}.wav".format
    write_trials(folder / "trials_standard.txt",
                 [Trial(1, entry("id10006", 1), entry("id10006", 2)),
                  Trial(0, entry("id10006", 1), entry("id10007", 1))])
    write_trials(folder / "trials_hard.txt",
                 [Trial(1, entry("id10008", 1), entry("id10008", 3)),
                  Trial(0, entry("id10007", 2), entry("id10008", 4))])


def test_held_out_voices_never_reach_training_even_when_one_list_names_them(tmp_path):
    corpus, save = tmp_path / "corpus", tmp_path / "data"
    corpus.mkdir()
    write_corpus(corpus)
    summary = prepare_demo(str(corpus), str(save), (67, 33), valid_trials=6, seed=1)
    training = {r["spk_id"] for name in ("train.csv", "dev.csv", "valid.csv")
                for r in read_csv(save / name)}
    assert training == {f"id1000{i}" for i in range(1, 6)}
    assert summary["test_voices"] == 3 and summary["hard_trials"] == 2
    # Both lists resolve through the prepared CSVs.
    ids = {r["ID"] for name in ("enrol.csv", "test.csv") for r in read_csv(save / name)}
    for name in ("standard", "hard"):
        for line in (save / f"{name}_trials.txt").read_text().splitlines():
            _, enrol, test = line.split()
            assert enrol[:-4] in ids and test[:-4] in ids
    assert prepare_demo(str(corpus), str(save), (67, 33), valid_trials=6, seed=1)["skipped"]


def test_a_corpus_without_a_hard_list_says_why(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_corpus(corpus)
    (corpus / "trials_hard.txt").unlink()
    with pytest.raises(ValueError, match="trials_hard.txt: the generator made no hard list"):
        prepare_demo(str(corpus), str(tmp_path / "data"), (67, 33), valid_trials=6, seed=1)


def test_a_trial_naming_a_training_voice_is_refused(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_corpus(corpus)
    write_trials(corpus / "trials_hard.txt",
                 [Trial(1, "id10001/sess01/00001.wav", "id10001/sess01/00002.wav")])
    with pytest.raises(ValueError, match="trials_hard.txt: id10001/sess01/00001.wav is not a "
                                         "held-out voice's utterance"):
        prepare_demo(str(corpus), str(tmp_path / "data"), (67, 33), valid_trials=6, seed=1)


def run(*command: str) -> str:
    done = subprocess.run([sys.executable, *command], capture_output=True, text=True,
                          timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_demo_steps_end_to_end(tmp_path):
    """The Makefile's demo steps on a tiny corpus: train (generating and preparing the corpus
    first), fine-tune with a large margin, verify both lists with and without AS-norm and LDA,
    plots, identification, diarization, summary."""
    out = tmp_path / "demo"
    # 14 voices, seed 1: 6 held out (identification enrols 3, the conversations need 4) and 8
    # to train on, both with every Debian voice installed and with espeak-ng's alone; which
    # voices a small corpus draws, and so how many its language-and-gender groups hold out,
    # depends on what is installed.
    sizes = ("--max_voices=14", "--corpus_seed=1", "--utterances_per_voice=8",
             "--sessions_per_voice=2",
             "--test_voices=0.5", "--trials=300", "--split_ratio=[67, 33]",
             "--validation_trials=200", "--channels=[32, 32, 32, 32, 96]", "--n_mels=40",
             "--batch_size=8", "--num_workers=0", "--warmup_epochs=0.5", "--lda_dim=2")
    run("recipes/train_speaker_embeddings.py", "hparams/demo.yaml", f"--demo_folder={out}",
        "--number_of_epochs=1", "--backend=null", *sizes)
    assert not (out / "base/pretrained/backend.json").exists()
    run("recipes/train_speaker_embeddings.py", "hparams/demo_lm.yaml", f"--demo_folder={out}",
        *sizes)
    assert "margin: 5.00e-01" in (out / "large_margin/train_log.txt").read_text()
    assert "started from: the pretrained folder" in (out / "pretrained/README.md").read_text()
    run("recipes/speaker_verification.py", "hparams/demo_verify.yaml", f"--experiment={out}",
        "--lda_dim=2")   # as the training's back-end was given
    run("recipes/visualize.py", "hparams/demo_visualize.yaml", f"--experiment={out}",
        "--speakers=4", "--utterances_per_speaker=4", "--perplexity=3")
    identified = run("recipes/identification.py", "hparams/demo_identify.yaml",
                     f"--experiment={out}")
    diarized = run("recipes/diarize.py", "hparams/demo_diarize.yaml", f"--experiment={out}",
                   "--dev_recordings=1", "--test_recordings=1", "--min_minutes=0.3",
                   "--max_minutes=0.4", "--timeline_recording=test_000")
    summary = run("recipes/demo_summary.py", "hparams/demo_lm.yaml", f"--demo_folder={out}")
    assert "Training: 1 epoch + 1 large-margin epoch; last: epoch: 1" in summary
    metrics = json.loads((out / "verification/metrics.json").read_text())
    assert list(metrics["lists"]) == ["standard", "hard"]
    assert metrics["variants"] == ["cosine", "as-norm", "lda+cosine", "lda+as-norm", "model"]
    assert metrics["primary_variant"] == "model"
    standard = metrics["lists"]["standard"]["variants"]
    # The exported back-end is the recipe's lda+as-norm, fitted on the same utterances.
    assert standard["model"]["eer"] == pytest.approx(standard["lda+as-norm"]["eer"], abs=1e-6)
    eer = standard["model"]["eer"]
    assert (f"on the standard list: {'met' if eer < 3 else 'NOT met'} (SpeakerEncoder's "
            f"scoring, the model's lda+as-norm back-end: {eer:.2f} %)") in summary
    report = json.loads((out / "identification/report.json").read_text())
    diarization = json.loads((out / "diarization/report.json").read_text())
    # Both embed as the verification did (its cache serves identification).
    assert report["precision"] == diarization["precision"] == "fp32-fast"
    assert f"top-1 {100 * report['top1']:.1f} %" in summary and "closed set" in identified
    assert f"DER {diarization['estimated']['der']:.2f} %" in summary
    assert "speakers estimated" in diarized
    assert (out / "diarization/timeline.png").stat().st_size > 10_000
    for picture in ("tsne_held_out.png", "attention.png", "attention_with_silence.png"):
        assert (out / "plots" / picture).stat().st_size > 10_000
    for name in ("standard", "hard"):
        assert (out / "verification" / name / "det.png").stat().st_size > 10_000
    assert (out / "pretrained/embedding_model.ckpt").is_file()
