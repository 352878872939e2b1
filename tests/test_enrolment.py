"""The SQLite enrolment database: recordings per speaker, profiles, list / rename / remove,
concurrent writers lose nothing, another model is refused; SpeakerEncoder and the command line
on top of it."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch
import torch.nn.functional as F
from conftest import tiny_pretrained

from custom_modules import SpeakerEncoder
from custom_modules.__main__ import main
from custom_modules.errors import InputError
from custom_modules.interface.enrolment import EnrolmentDB
from data_prep.synthetic_audio import speech_like


def test_recordings_profiles_rename_and_remove(tmp_path):
    torch.manual_seed(0)
    db = EnrolmentDB(tmp_path / "e.sqlite", fingerprint="model-a", dim=4)
    vectors = torch.randn(5, 4)
    ids = db.add_recordings("ann", [(f"a{i}.wav", vectors[i], 2.0 + i, 1.5 + i)
                                    for i in range(3)])
    db.add("bob", "b0.wav", vectors[3], 4.0, 3.0)
    db.add("ann", "a3.wav", vectors[4], 1.0, 1.0)        # more recordings, not a replacement
    assert [(s.name, s.recordings, s.speech_seconds) for s in db.speakers()] == \
        [("ann", 4, 1.5 + 2.5 + 3.5 + 1.0), ("bob", 1, 3.0)]
    names, profiles = db.profiles()
    expected = F.normalize(F.normalize(vectors[[0, 1, 2, 4]], dim=1).mean(dim=0), dim=0)
    assert names == ["ann", "bob"]
    assert torch.allclose(profiles[0], expected, atol=1e-6)
    assert torch.allclose(profiles[1], F.normalize(vectors[3], dim=0), atol=1e-6)
    assert [r.file for r in db.recordings("ann")] == ["a0.wav", "a1.wav", "a2.wav", "a3.wav"]
    db.rename("ann", "anna")
    with pytest.raises(InputError, match="'bob' is already enrolled"):
        db.rename("anna", "bob")
    db.remove_recording(ids[0])
    assert [r.file for r in db.recordings("anna")] == ["a1.wav", "a2.wav", "a3.wav"]
    assert db.remove_speaker("anna") == 3
    assert [s.name for s in db.speakers()] == ["bob"]
    db.remove_recording(db.recordings("bob")[0].id)          # the last one: the speaker goes
    assert db.speakers() == [] and db.profiles()[0] == []
    for call in (lambda: db.remove_speaker("nobody"), lambda: db.rename("nobody", "x"),
                 lambda: db.remove_recording(999), lambda: db.recordings("nobody")):
        with pytest.raises(InputError, match="no (speaker named 'nobody'|recording 999)"):
            call()


def test_a_database_refuses_another_model_and_a_file_that_is_not_one(tmp_path):
    EnrolmentDB(tmp_path / "e.sqlite", fingerprint="model-a", dim=4).add(
        "ann", "a.wav", torch.ones(4), 1.0, 1.0)
    with pytest.raises(InputError, match="made with another model"):
        EnrolmentDB(tmp_path / "e.sqlite", fingerprint="model-b", dim=4)
    with pytest.raises(InputError, match="made with another model"):
        EnrolmentDB(tmp_path / "e.sqlite", fingerprint="model-a", dim=8)
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(InputError, match="junk.sqlite: not an enrolment database"):
        EnrolmentDB(tmp_path / "junk.sqlite", fingerprint="model-a", dim=4)


WRITER = """
import sys, torch
from custom_modules.interface.enrolment import EnrolmentDB
db = EnrolmentDB(sys.argv[1], fingerprint="model-a", dim=8)
for i in range(60):
    db.add(sys.argv[2] + str(i % 3), f"{sys.argv[2]}{i}.wav", torch.randn(8), 1.0, 1.0)
"""


def test_two_processes_enrolling_at_once_lose_nothing(tmp_path):
    path = str(tmp_path / "e.sqlite")
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, path, name])
               for name in ("p", "q")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    db = EnrolmentDB(path, fingerprint="model-a", dim=8)
    assert sorted((s.name, s.recordings) for s in db.speakers()) == \
        [(f"{p}{k}", 20) for p in "pq" for k in range(3)]
    assert len({r.file for r in db.recordings()}) == 120


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    root = tmp_path_factory.mktemp("enrol")
    tiny_pretrained(root / "pretrained", threshold=0.9, seen_data=True)
    for seed in range(4):
        soundfile.write(root / f"v{seed}.wav", speech_like(2.0, 16000,
                                                           np.random.default_rng(seed)), 16000)
    return root


def test_the_encoder_adds_recordings_and_imports_an_old_store(voices, tmp_path):
    encoder = SpeakerEncoder.from_hparams(source=voices / "pretrained", savedir=tmp_path,
                                          speech_detection=False)
    encoder.enrol("ann", [voices / "v0.wav"])
    encoder.enrol("ann", [voices / "v1.wav"])                # adds, does not overwrite
    (recording, second) = encoder.enrolments.recordings("ann")
    assert (recording.duration, recording.speech_seconds) == (2.0, 2.0)
    expected = F.normalize(F.normalize(encoder.encode_file(voices / "v0.wav"), dim=0)
                           + F.normalize(encoder.encode_file(voices / "v1.wav"), dim=0), dim=0)
    assert torch.allclose(encoder.enrolments.profiles()[1][0], expected, atol=1e-5)
    with pytest.raises(InputError, match="v9.wav"):           # nothing written for a bad file
        encoder.enrol("bob", [voices / "v2.wav", voices / "v9.wav"])
    assert [s.name for s in encoder.enrolments.speakers()] == ["ann"]
    # An earlier version's enrolled.pt moves into the database on first use.
    old = tmp_path / "old"
    old.mkdir()
    torch.save({"carol": encoder.encode_file(voices / "v3.wav")}, old / "enrolled.pt")
    reopened = SpeakerEncoder.from_hparams(source=voices / "pretrained", savedir=old,
                                           speech_detection=False)
    assert reopened.identify(voices / "v3.wav", top_k=1).candidates[0].name == "carol"
    assert (old / "enrolled.pt.imported").is_file() and not (old / "enrolled.pt").exists()


def test_command_line_enrol_list_rename_remove(voices, tmp_path, capsys):
    store = ["--model", str(voices / "pretrained"), "--store", str(tmp_path)]
    common = [*store, "--no-speech-detection"]
    main(["enrol", *common, "--name", "ann", str(voices / "v0.wav"), str(voices / "v1.wav")])
    main(["enrol", *common, "--name", "bob", str(voices / "v2.wav")])
    assert "2 recordings added (ids 1, 2), 2 in all" in capsys.readouterr().out.splitlines()[0]
    main(["speakers", "list", *store, "--recordings"])
    listing = capsys.readouterr().out
    assert "ann: 2 recordings, 4.0 s embedded" in listing and "bob: 1 recordings" in listing
    assert "v1.wav" in listing
    main(["speakers", "rename", "ann", "anna", *store])
    main(["identify", *common, str(voices / "v2.wav")])
    assert capsys.readouterr().out.splitlines()[1].split()[1:] == ["accepted", "bob"]
    main(["speakers", "remove", "bob", *store])
    main(["speakers", "list", *store])
    out = capsys.readouterr().out
    assert "removed 'bob' and its 1 recordings" in out and out.strip().endswith(
        "anna: 2 recordings, 4.0 s embedded")
    with pytest.raises(SystemExit) as exited:
        main(["speakers", "remove", "nobody", *store])
    assert str(exited.value.code).startswith("error: no speaker named 'nobody'")
