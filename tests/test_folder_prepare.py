"""Folder-per-speaker preparation: mixed formats, rates and channels; speaker-disjoint trials."""

import dataclasses
import json

import numpy as np
import pytest
import soundfile
from conftest import read_csv, speech_like, split_options

from custom_modules.data.trials import read_trials
from data_prep.folder_prepare import prepare_folder

FORMATS = [("wav", 16000, 1), ("flac", 44100, 2), ("ogg", 8000, 1), ("wav", 22050, 2)]
SPLITS = split_options(split_ratio=(70, 30), valid_trials=20)



@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    for s in range(10):
        for u in range(4):
            extension, rate, channels = FORMATS[(s + u) % len(FORMATS)]
            wave = speech_like(1.5, sample_rate=rate, seed=10 * s + u).numpy()
            data = np.stack([wave, 0.5 * wave], axis=1) if channels == 2 else wave
            path = root / f"speaker{s:02d}" / f"take{u % 2}" / f"utt{u}.{extension}"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(path, data, rate)
    (root / "speaker00/take0/broken.wav").write_bytes(b"not audio" * 50)
    soundfile.write(root / "speaker01/take0/quiet.flac", np.zeros(32000), 16000)
    soundfile.write(root / "speaker02/take0/utt0.flac", speech_like(1.5).numpy(), 16000)
    (root / "loose_file.wav").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    save = tmp_path_factory.mktemp("prepared")
    summary = prepare_folder(str(corpus), str(save), 3, 40, SPLITS, num_workers=2)
    return save, summary


def test_every_csv_points_at_16k_mono_wav(prepared):
    save, summary = prepared
    for name in ("train.csv", "dev.csv", "valid.csv", "enrol.csv", "test.csv"):
        for row in read_csv(save / name):
            info = soundfile.info(row["wav"])
            assert (info.samplerate, info.channels, row["wav"][-4:]) == (16000, 1, ".wav")
            assert int(row["stop"]) == info.frames
    assert summary["files_usable"] == 40


def test_bad_files_are_reported(prepared):
    report = json.loads((prepared[0] / "prep_report.json").read_text())
    reasons = {s["relative"]: s["reason"] for s in report["skipped_files"]}
    assert reasons["speaker00/take0/broken.wav"].startswith("unreadable audio")
    assert reasons["speaker01/take0/quiet.flac"].startswith("silent")
    assert reasons["speaker02/take0/utt0.ogg"].startswith("same ID as")
    assert reasons["loose_file.wav"] == "not inside a speaker folder"
    assert len(reasons) == 4


def test_test_speakers_are_disjoint_and_trials_balanced(prepared):
    save, _ = prepared
    trials = read_trials(save / "test_trials.txt")
    test_speakers = {e.split("/")[0] for t in trials for e in (t.enrol, t.test)}
    assert len(test_speakers) == 3
    for name in ("train.csv", "dev.csv", "valid.csv"):
        assert not test_speakers & {r["spk_id"] for r in read_csv(save / name)}
    assert sum(t.label for t in trials) == len(trials) // 2
    assert {r["ID"] for r in read_csv(save / "enrol.csv")} == {
        t.enrol.rsplit(".", 1)[0] for t in trials}


def test_reproducible_from_seed(corpus, prepared, tmp_path):
    prepare_folder(str(corpus), str(tmp_path / "same"), 3, 40, SPLITS, num_workers=2)
    same = (tmp_path / "same/test_trials.txt").read_text()
    assert same == (prepared[0] / "test_trials.txt").read_text()
    other = prepare_folder(str(corpus), str(tmp_path / "other"), 3, 40,
                           dataclasses.replace(SPLITS, seed=7), num_workers=2)
    assert other["skipped"] is False
    assert (tmp_path / "other/test_trials.txt").read_text() != same
    again = prepare_folder(str(corpus), str(tmp_path / "same"), 3, 40, SPLITS, num_workers=2)
    assert again["skipped"] is True


def test_too_few_speakers_is_a_clear_error(corpus, tmp_path):
    with pytest.raises(ValueError, match="10 usable speakers cannot give 9 test speakers"):
        prepare_folder(str(corpus), str(tmp_path), 9, 20000, split_options(), None)
    with pytest.raises(ValueError, match="corpus folder not found"):
        prepare_folder(str(tmp_path / "nowhere"), str(tmp_path), 0.2, 20000, split_options(),
                       None)
