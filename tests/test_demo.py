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


def write_run(folder, standard_eer: float, hard_eer: float, primary: str = "as-norm") -> None:
    """The files the demo's steps leave behind, with chosen EERs for the primary variant
    (cosine does better on both lists)."""
    (folder / "corpus").mkdir(parents=True)
    (folder / "corpus/corpus_report.json").write_text(json.dumps(
        {"voices": 223, "voices_by_engine": {"festival": 5, "mbrola": 72, "espeak": 91},
         "utterances": 6681, "test_voices": 45}))
    (folder / "verification").mkdir()

    def entry(variants: dict[str, float]) -> dict:
        return {"file": "x.txt", "trials_dropped": 0, "calibrated": None,
                "variants": {v: {**METRICS, "eer": e, "min_dcf_0.01": e / 10}
                             for v, e in variants.items()}}

    (folder / "verification/metrics.json").write_text(json.dumps(
        {"schema_version": 1, "primary_variant": primary, "variants": ["cosine", primary],
         "lists": {"standard": entry({"cosine": standard_eer - 0.4, primary: standard_eer}),
                   "hard": entry({"cosine": hard_eer - 1.0, primary: hard_eer})},
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
    # Three operating points; the report's last (not the loosest, nor the first) is shown.
    (folder / "identification/report.json").write_text(json.dumps(
        {"enrolled_speakers": 20, "impostor_speakers": 21, "enrol_files": 3, "top1": 0.9914,
         "top5": 1.0, "operating_points": {"eer": {"detection": 0.99, "false_alarm": 0.35},
                                           "far_1%": {"detection": 0.955,
                                                      "false_alarm": 0.018},
                                           "far_0.1%": {"detection": 0.9312,
                                                        "false_alarm": 0.0617}}}))
    (folder / "diarization").mkdir()
    (folder / "diarization/report.json").write_text(json.dumps(
        {"test_recordings": 12, "test_seconds": 2630.0, "collar": 0.25,
         "estimated": {"der": 2.3, "missed": 1.61, "false_alarm": 0.04, "confusion": 0.64},
         "speaker_count_exact": 11 / 12, "real_time_factor": 0.019}))


def summary_of(folder, targets: dict[str, float] = TARGETS, der_target: float = 5.0) -> str:
    """The summary of a run written by ``write_run`` into ``folder``."""
    return demo_summary(str(folder), str(folder / "base"),
                        str(folder / "large_margin/train_log.txt"), str(folder / "corpus"),
                        str(folder / "pretrained"), targets, der_target)


# A figure of the summary: a number standing alone or a ratio (0.35x), not part of a name
# (top-1, far_0.1%, SHA-256, 1e-3) or of a path.
FIGURE = re.compile(r"(?<![\w.\-/])\d+(?:\.\d+)?(?=x\b|(?![\w/]|\.\d))")


def figures(line: str) -> list[float]:
    """The figures of a line of the summary, in order."""
    return [float(f) for f in FIGURE.findall(line)]


def line_of(text: str, start: str) -> str:
    """The one line of ``text`` that starts with ``start``."""
    found = [line for line in text.splitlines() if line.startswith(start)]
    assert len(found) == 1, (start, text)
    return found[0]


def verdicts(text: str) -> list[tuple[bool, list[float]]]:
    """Each target's verdict, in order: met or not, and the line's figures (target, result)."""
    return [("NOT met" not in line, figures(line)) for line in text.splitlines()
            if re.search(r"\bmet\b", line)]


@pytest.mark.parametrize("standard, hard, der_target, expected", [
    # A result equal to its target misses it (the targets are "below"); the cosine variant
    # (0.4 and 1.0 lower) would meet every target, but the verdict is the primary's.
    (2.99, 4.0, 5.0, [(True, [3, 2.99]), (False, [4, 4.0]), (True, [5, 2.3])]),
    (3.0, 3.99, 2.3, [(False, [3, 3.0]), (True, [4, 3.99]), (False, [2.3, 2.3])]),
])
def test_each_target_is_judged_on_the_primary_variant(tmp_path, standard, hard, der_target,
                                                      expected):
    write_run(tmp_path, standard_eer=standard, hard_eer=hard)
    # A target for a list the run did not score gets no verdict.
    text = summary_of(tmp_path, {**TARGETS, "other": 9.0}, der_target)
    assert verdicts(text) == expected
    assert (tmp_path / "summary.txt").read_text() == text + "\n"


def test_the_model_variants_verdict_names_the_folders_back_end(tmp_path):
    write_run(tmp_path, standard_eer=2.5, hard_eer=4.5, primary="model")
    (tmp_path / "pretrained").mkdir()
    (tmp_path / "pretrained/backend.json").write_text(json.dumps({"variant": "lda+s-norm"}))
    text = summary_of(tmp_path)
    assert verdicts(text)[:2] == [(True, [3, 2.5]), (False, [4, 4.5])]
    lines = [line for line in text.splitlines() if re.search(r"\bmet\b", line)]
    assert all("lda+s-norm" in line for line in lines[:2])


def test_the_table_puts_the_primary_variant_first_with_its_figures(tmp_path):
    write_run(tmp_path, standard_eer=2.5, hard_eer=4.2)
    rows = [line.split() for line in summary_of(tmp_path).splitlines()
            if line.startswith(("standard ", "hard "))]
    # Rows: list, variant, EER, minDCF(0.01) (EER / 10 here), minDCF(0.05), trials.
    assert [row[:2] for row in rows] == [["standard", "as-norm"], ["standard", "cosine"],
                                         ["hard", "as-norm"], ["hard", "cosine"]]
    assert [[float(x) for x in row[2:]] for row in rows] == [
        [2.5, 0.25, 0.12, 8000], [2.1, 0.21, 0.12, 8000], [4.2, 0.42, 0.12, 8000],
        [3.2, 0.32, 0.12, 8000]]


def test_corpus_identification_diarization_and_embedding_figures(tmp_path):
    write_run(tmp_path, standard_eer=2.5, hard_eer=4.2)
    text = summary_of(tmp_path)
    corpus = line_of(text, "Demo corpus")
    # voices, then the engines by their count (largest first), utterances, held-out voices
    assert figures(corpus) == [223, 91, 72, 5, 6681, 45]
    assert corpus.index("espeak") < corpus.index("mbrola") < corpus.index("festival")
    # enrolled, files each, never enrolled, top-1 %, top-5 %, then the report's last
    # operating point (far_0.1%): detection %, false alarms %
    assert figures(line_of(text, "Identification")) == [20, 3, 21, 99.1, 100.0, 93.1, 6.2]
    # recordings, minutes (2630 s), DER, collar, missed, false alarm, confusion, speaker
    # count exact % (11 of 12), real-time factor
    assert figures(line_of(text, "Diarization")) == [12, 44, 2.3, 0.25, 1.61, 0.04, 0.64, 92,
                                                     0.019]
    # silhouette, speakers, attention on silence
    assert figures(line_of(text, "Held-out speakers")) == [0.41, 12, 0.35]
    assert f'source="{tmp_path / "pretrained"}"' in line_of(text, "    enc = ")


@pytest.mark.parametrize("first, second, plan, expected", [
    (2, 1, None, [2, 1]),                          # epochs of each stage
    (3, 0, None, [3]),                             # no large-margin stage
    (2, 1, (2, 5), [2, 5, 9, 1]),                  # 2 of 5 planned epochs in 9 minutes
    (5, 1, (5, 5), [5, 1]),                        # the budget cut nothing
])
def test_training_counts_each_stages_epochs_and_the_budgets_cut(tmp_path, first, second, plan,
                                                                 expected):
    write_run(tmp_path, standard_eer=2.5, hard_eer=4.2)
    logs = [[f"epoch: {n}, lr: 1e-3 - valid EER: {10 - n}.5" for n in range(1, first + 1)],
            [f"epoch: {n}, lr: 3e-5 - valid EER: 0.{n}" for n in range(1, second + 1)]]
    for log, lines in zip(("base", "large_margin"), logs, strict=True):
        (tmp_path / log / "train_log.txt").write_text("".join(f"{line}\n" for line in lines))
    if plan is not None:
        counter = TimeBudgetEpochCounter(limit=plan[1], max_minutes=9.0)
        counter.current = counter.planned = plan[0]
        Checkpointer(tmp_path / "base/save", {"counter": counter}).save_checkpoint()
    training, last = line_of(summary_of(tmp_path), "Training").split("; last: ")
    assert figures(training) == expected
    assert last == (logs[0] + logs[1])[-1]          # the last epoch's log line


def test_a_damaged_epoch_counter_is_a_one_line_error(tmp_path):
    write_run(tmp_path, standard_eer=2.5, hard_eer=4.2)
    Checkpointer(tmp_path / "base/save",
                 {"counter": TimeBudgetEpochCounter(limit=5)}).save_checkpoint()
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
        "operating_points": {"eer": {"detection": 1.0, "false_alarm": 0.2},
                             "far_0.1%": {"detection": 0.9722, "false_alarm": 0.0351}}})
    put("diarization/conversations/report.json", {
        "test_recordings": 6, "test_seconds": 542.1, "speaker_count_exact": 5 / 6,
        "estimated": {"der": 0.98}})
    put("diarization/pyannote_sample/report.json", {"estimated": {"der": 1.35}})
    put("data/sets/sets.json", {"development": {"speakers": ["a", "b", "c", "d"]},
                                "test_speakers": ["e", "f", "g", "h", "i"]})


def test_the_real_speech_blocks_figures(tmp_path):
    write_run(tmp_path, standard_eer=2.5, hard_eer=3.2)
    write_real_speech(tmp_path / "real_speech")
    lines = summary_of(tmp_path).splitlines()
    # council members the back-end was fitted on, members reported on
    assert figures(lines[0]) == [4, 5]
    # trials, EER, minDCF(0.01)'s label and value, Cllr, false accepts at each operating
    # point (%), then the false rejects (%)
    assert figures(lines[1]) == [4578, 1.71, 0.01, 0.31, 0.057, 2.46, 0.26, 1.05, 4.74]
    assert lines[1].index(" eer ") < lines[1].index(" far_0.1% ")
    # enrolled, files each, never enrolled, top-1 %, the last operating point's detection
    # and false alarms (%)
    assert figures(lines[2]) == [2, 3, 3, 100.0, 97.2, 3.5]
    # conversations, minutes (542.1 s), DER, speaker count exact % (5 of 6), the sample's DER
    assert figures(lines[3]) == [6, 9, 0.98, 83, 1.35]


def test_the_blocks_come_in_order(tmp_path):
    """Stage times, real speech, the synthetic corpus and training, the table, the EER
    verdicts, identification, diarization and its verdict, the embeddings, the plots, the
    model, its use: each block found by one of its figures."""
    write_run(tmp_path, standard_eer=2.5, hard_eer=3.2)
    lines = summary_of(tmp_path).splitlines()
    write_real_speech(tmp_path / "real_speech")
    (tmp_path / "stage_times.tsv").write_text("stage\tseconds\nset-up\t120\ncorpus\t330\n"
                                              "training\t546\n")
    full = summary_of(tmp_path).splitlines()
    blocks = [lambda line: figures(line)[:1] == [16.6],            # 996 s of stages
              lambda line: figures(line)[:1] == [4578],            # real speech
              lambda line: figures(line)[:1] == [223],             # corpus
              lambda line: figures(line)[:2] == [2, 1],            # training
              lambda line: line.split()[:2] == ["standard", "as-norm"],
              lambda line: figures(line) == [3, 2.5],              # standard list's verdict
              lambda line: figures(line) == [4, 3.2],              # hard list's verdict
              lambda line: figures(line)[:1] == [20],              # identification
              lambda line: figures(line)[:1] == [12],              # diarization
              lambda line: figures(line) == [5, 2.3],              # its verdict
              lambda line: figures(line) == [0.41, 12, 0.35],      # embeddings
              lambda line: str(tmp_path / "plots") in line,
              lambda line: line.endswith(str(tmp_path / "pretrained") + "/"),
              lambda line: "from_hparams" in line]

    def order(text_lines: list[str]) -> list[int | None]:
        """The line of each block (None: not there); no block found on two lines."""
        found = [[n for n, line in enumerate(text_lines) if block(line)] for block in blocks]
        assert all(len(hits) <= 1 for hits in found), found
        return [hits[0] if hits else None for hits in found]

    everything = order(full)
    assert None not in everything, everything
    assert everything == sorted(everything)
    assert figures(full[0]) == [16.6, 2.0, 5.5, 9.1]     # the total, then each stage's
    # Without the stage times and the real-speech results neither block is there.
    fewer = order(lines)
    assert fewer[:2] == [None, None]
    assert None not in fewer[2:] and fewer[2:] == sorted(fewer[2:])


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


def test_summary_of_a_run_that_did_not_happen(tmp_path):
    with pytest.raises(ValueError, match="corpus_report.json: not found"):
        summary_of(tmp_path)
    write_run(tmp_path, 1.0, 1.0)
    (tmp_path / "stage_times.tsv").write_text("stage\tseconds\nset-up 114\n")
    with pytest.raises(ValueError, match="stage_times.tsv: not a table of stage names"):
        summary_of(tmp_path)
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
