"""VoxCeleb preparation on tiny fake VoxCeleb1 / VoxCeleb2 trees."""

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import soundfile
from conftest import read_csv, split_options

from custom_modules.data.trials import read_trials
from data_prep.fake_voxceleb import write_voxceleb_tree
from data_prep.voxceleb_prepare import VoxCelebInputs, prepare_voxceleb

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None,
                                  reason="ffmpeg is not installed (make test installs it as root)")
TRAIN_SPEAKERS = [f"id1000{i}" for i in range(1, 9)]
TEST_SPEAKERS = ["id10270", "id10271"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """VoxCeleb1 with 8 training and 2 test speakers plus a corrupt, an empty and a too short
    file; VoxCeleb2 with one already-converted speaker; a trial list."""
    root = tmp_path_factory.mktemp("voxceleb")
    vox1, vox2 = root / "vox1", root / "vox2"
    write_voxceleb_tree(vox1, TRAIN_SPEAKERS + TEST_SPEAKERS, sessions=2, utterances=2)
    (vox1 / "wav/id10001/sess0/99999.wav").write_bytes(b"RIFF\x00\x01garbage" * 10)
    (vox1 / "wav/id10002/sess0/99998.wav").write_bytes(b"")
    write_voxceleb_tree(vox1 / "short", ["id10003"], 1, 1, (0.3, 0.3))
    shutil.move(vox1 / "short/wav/id10003/sess0/00001.wav", vox1 / "wav/id10003/sess0/99997.wav")
    write_voxceleb_tree(vox2, ["id00002"], sessions=1, utterances=2, seed=1)
    trials = root / "trials.txt"
    trials.write_text("1 id10270/sess0/00001.wav id10270/sess1/00002.wav\n"
                      "0 id10270/sess0/00001.wav id10271/sess0/00001.wav\n"
                      "1 id10271/sess0/00002.wav id10271/sess1/00001.wav\n"
                      "0 id10271/sess1/00001.wav id10270/sess1/00002.wav\n")
    return {"root": root, "folders": [str(vox1), str(vox2)], "trials": str(trials)}


def inputs(corpus: dict, **changes) -> VoxCelebInputs:
    """VoxCeleb2 training, VoxCeleb1 testing with the VoxCeleb1-O-style list, m4a converted
    in place, missing trial audio an error; ``changes`` replacing some."""
    return dataclasses.replace(VoxCelebInputs([corpus["folders"][1]], corpus["folders"][0],
                                              {"vox1_O": corpus["trials"]}, False, None, False),
                               **changes)


def prepare(corpus: dict, save, trials: str | None = None, skip_missing_trials: bool = False,
            **splits) -> dict:
    """Both folders training (SpeechBrain's setup: VoxCeleb1 too), VoxCeleb1-O-style trials;
    ``splits`` replaces split options."""
    return prepare_voxceleb(inputs(corpus, trial_lists={"vox1_O": trials or corpus["trials"]},
                                   train_on_test_folder=True,
                                   skip_missing_trials=skip_missing_trials),
                            str(save), split_options(split_ratio=(75, 25), valid_trials=6,
                                                     **splits), num_workers=2)


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory) -> dict:
    save = tmp_path_factory.mktemp("prepared")
    return {"save": save, "summary": prepare(corpus, save)}


def test_train_csv_lists_every_usable_file_exactly(corpus, prepared):
    rows = read_csv(prepared["save"] / "train.csv")
    dev = read_csv(prepared["save"] / "dev.csv")
    assert list(rows[0]) == ["ID", "duration", "wav", "start", "stop", "spk_id"]
    every = {r["ID"]: r for r in rows + dev}
    vox1 = Path(corpus["folders"][0])
    expected_ids = {f"{s}--sess{n}--0000{u}" for s in TRAIN_SPEAKERS for n in (0, 1)
                    for u in (1, 2)} | {"id00002--sess0--00001", "id00002--sess0--00002"}
    assert set(every) == expected_ids
    row = every["id10004--sess1--00002"]
    wav = vox1 / "wav/id10004/sess1/00002.wav"
    info = soundfile.info(str(wav))
    assert row == {"ID": "id10004--sess1--00002", "duration": f"{info.duration:.3f}",
                   "wav": str(wav), "start": "0", "stop": str(info.frames),
                   "spk_id": "id10004"}


def m4a_tree(root: Path) -> Path:
    """A VoxCeleb2 folder with one speaker as m4a (made with ffmpeg from generated audio)."""
    write_voxceleb_tree(root / "source", ["id00001"], sessions=1, utterances=1, seed=2)
    m4a = root / "vox2/aac/id00001/sess0/00001.m4a"
    m4a.parent.mkdir(parents=True)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i",
                    str(root / "source/wav/id00001/sess0/00001.wav"), "-c:a", "aac", str(m4a)],
                   check=True)
    return root / "vox2"


@needs_ffmpeg
def test_m4a_is_converted_to_16k_mono_wav_and_trained_on(corpus, tmp_path):
    vox2 = m4a_tree(tmp_path)
    prepare_voxceleb(inputs(corpus, data_folder=[str(vox2)], train_on_test_folder=True),
                     str(tmp_path / "out"), split_options(split_ratio=(75, 25), valid_trials=6),
                     num_workers=2)
    converted = vox2 / "wav/id00001/sess0/00001.wav"
    info = soundfile.info(str(converted))
    assert (info.samplerate, info.channels) == (16000, 1)
    assert info.duration > 1.4
    assert not list(converted.parent.glob("*.part"))
    rows = read_csv(tmp_path / "out/train.csv") + read_csv(tmp_path / "out/dev.csv")
    assert {r["wav"] for r in rows if r["spk_id"] == "id00001"} == {str(converted)}


def test_m4a_without_ffmpeg_is_one_line_advice(corpus, tmp_path, monkeypatch):
    m4a = tmp_path / "vox2/aac/id00001/sess0/00001.m4a"
    m4a.parent.mkdir(parents=True)
    m4a.write_bytes(b"not decoded: ffmpeg is looked for first")
    monkeypatch.setattr("data_prep.ffmpeg_convert.shutil.which", lambda name: None)
    with pytest.raises(ValueError, match="1 files need converting to wav but ffmpeg is not "
                                         "installed: run 'apt-get install ffmpeg'"):
        prepare_voxceleb(inputs(corpus, data_folder=[str(tmp_path / "vox2")]),
                         str(tmp_path / "out"), split_options(), num_workers=1)


def test_test_speakers_never_reach_train_or_dev(prepared):
    speakers = {r["spk_id"] for name in ("train.csv", "dev.csv", "valid.csv")
                for r in read_csv(prepared["save"] / name)}
    assert not speakers & set(TEST_SPEAKERS)
    enrol = read_csv(prepared["save"] / "enrol.csv")
    test = read_csv(prepared["save"] / "test.csv")
    assert [r["ID"] for r in enrol] == ["id10270/sess0/00001", "id10271/sess0/00002",
                                         "id10271/sess1/00001"]
    assert {r["spk_id"] for r in test} == set(TEST_SPEAKERS)
    assert len(read_trials(prepared["save"] / "vox1_O_trials.txt")) == 4


def test_validation_is_speaker_disjoint_with_balanced_trials(prepared):
    train = {r["spk_id"] for r in read_csv(prepared["save"] / "train.csv")}
    valid = read_csv(prepared["save"] / "valid.csv")
    assert not train & {r["spk_id"] for r in valid}
    trials = read_trials(prepared["save"] / "valid_trials.txt")
    assert sorted(t.label for t in trials) == [0, 0, 0, 1, 1, 1]
    ids = {r["ID"] for r in valid}
    assert all(Path(e).with_suffix("").as_posix() in ids for t in trials for e in t[1:])


def test_bad_files_are_skipped_and_reported(prepared):
    report = json.loads((prepared["save"] / "prep_report.json").read_text())
    reasons = {Path(s["file"]).name: s["reason"] for s in report["skipped_files"]}
    assert reasons["99999.wav"].startswith("unreadable audio")
    assert reasons["99998.wav"] == "empty file (0 bytes)"
    assert reasons["99997.wav"].startswith("too short: 0.30 s")
    assert report["files_skipped"] == 3
    assert prepared["summary"]["test_speakers_excluded"] == 2


def test_second_run_does_nothing_and_changed_options_regenerate(corpus, prepared):
    save = prepared["save"]
    before = (save / "train.csv").stat().st_mtime_ns
    again = prepare(corpus, save)
    assert again["skipped"] is True
    assert (save / "train.csv").stat().st_mtime_ns == before
    changed = prepare(corpus, save, mode="chunks", seg_dur=1.0)
    assert changed["skipped"] is False
    chunk = read_csv(save / "train.csv")[0]
    assert chunk["ID"].endswith("_0.0_1.0")
    assert (chunk["start"], chunk["stop"]) == ("0", "16000")
    trials = Path(corpus["trials"])
    os.utime(trials, ns=(trials.stat().st_atime_ns, trials.stat().st_mtime_ns + 10**9))
    rewritten = prepare(corpus, save, mode="chunks", seg_dur=1.0)
    assert rewritten["skipped"] is False      # a rewritten trial list (new corpus) is redone


def test_missing_trial_audio_is_a_clear_error_or_skipped(corpus, tmp_path):
    trials = tmp_path / "trials.txt"
    trials.write_text(Path(corpus["trials"]).read_text()
                      + "1 id10270/sess0/00001.wav id10270/gone/00009.wav\n"
                      + "0 id10003/sess0/99997.wav id10271/sess0/00001.wav\n")
    with pytest.raises(ValueError, match=r"2 of the trial utterances are missing") as error:
        prepare(corpus, tmp_path / "out", str(trials))
    assert "id10003/sess0/99997.wav (too short" in str(error.value)
    assert "id10270/gone/00009.wav (not found on disk)" in str(error.value)
    summary = prepare(corpus, tmp_path / "out", str(trials), skip_missing_trials=True)
    assert (summary["test_trials"], summary["test_trials_dropped"]) == ({"vox1_O": 4}, 2)


def test_utterance_level_dev_split_like_speechbrain(corpus, tmp_path):
    summary = prepare_voxceleb(inputs(corpus, data_folder=[], train_on_test_folder=True),
                               str(tmp_path), split_options(dev_split="utterances",
                                                            split_ratio=(50, 50),
                                                            valid_trials=20000),
                               num_workers=1)
    dev = read_csv(tmp_path / "dev.csv")
    train_speakers = {r["spk_id"] for r in read_csv(tmp_path / "train.csv")}
    assert summary["dev_utterances"] == len(dev) == 16   # half of each speaker's 4
    assert {r["spk_id"] for r in dev} <= train_speakers
    assert len({r["spk_id"] for r in dev}) == 8
    # validation trials among the held-out utterances of training speakers
    valid = {r["ID"]: r["spk_id"] for r in read_csv(tmp_path / "valid.csv")}
    assert len(valid) > 8 and set(valid.values()) <= train_speakers
    assert {r["wav"] for r in read_csv(tmp_path / "valid.csv")} <= {r["wav"] for r in dev}


def test_not_a_voxceleb_folder(tmp_path):
    with pytest.raises(ValueError, match="neither wav/ nor aac/"):
        prepare_voxceleb(VoxCelebInputs(str(tmp_path), str(tmp_path), {"O": "x.txt"}, False,
                                        None, False), str(tmp_path / "out"), split_options(),
                         None)


def test_the_published_setup_trains_on_voxceleb2_only_and_writes_every_list(corpus, tmp_path):
    """VoxCeleb2 trains; VoxCeleb1 (all of it) only tests, so an E/H-style list naming its
    'dev' speakers is valid, and one CSV pair covers both lists."""
    everyone = tmp_path / "everyone.txt"
    everyone.write_text("1 id10001/sess0/00001.wav id10001/sess1/00002.wav\n"
                        + "".join(f"0 id10001/sess0/00001.wav id1000{n}/sess0/00001.wav\n"
                                  for n in range(2, 7)))
    lists = {"vox1_O": corpus["trials"], "vox1_E": str(everyone), "vox1_H": None}
    summary = prepare_voxceleb(inputs(corpus, trial_lists=lists), str(tmp_path / "out"),
                               split_options(dev_split="utterances", split_ratio=(50, 50),
                                             valid_trials=0), num_workers=1)
    out = tmp_path / "out"
    training = {r["spk_id"] for name in ("train.csv", "dev.csv") for r in read_csv(out / name)}
    assert training == {"id00002"}                         # VoxCeleb1 never trains
    assert summary["test_trials"] == {"vox1_O": 4, "vox1_E": 6}
    assert not (out / "vox1_H_trials.txt").exists()
    ids = {r["ID"] for name in ("enrol.csv", "test.csv") for r in read_csv(out / name)}
    for name in ("vox1_O", "vox1_E"):
        for trial in read_trials(out / f"{name}_trials.txt"):
            assert Path(trial.enrol).with_suffix("").as_posix() in ids
            assert Path(trial.test).with_suffix("").as_posix() in ids
    with pytest.raises(ValueError, match="everyone.txt: it names 6 speakers of .* which also "
                                         "trains the model"):
        prepare(corpus, tmp_path / "again", str(everyone))
    with pytest.raises(ValueError, match="is the test folder and in data_folder too"):
        prepare_voxceleb(inputs(corpus, data_folder=corpus["folders"]), str(tmp_path / "both"),
                         split_options(), None)
