"""Sidecars: tuned state kept apart from the exported model folder, named and versioned, chosen
when loading; the recipes that tune write them and never the folder."""

import json
import subprocess
import sys

import pytest
import soundfile
from conftest import speech_like, tiny_pretrained

from custom_modules import SpeakerEncoder
from custom_modules.__main__ import main
from custom_modules.errors import InputError
from custom_modules.inference.pretrained import load_embedder
from custom_modules.scoring.backend import Backend, Scoring, load_backend
from custom_modules.sidecars import (
    compare_sidecars,
    drop_sidecar,
    list_sidecars,
    model_state,
    new_sidecar,
    read_sidecar,
)

SETTINGS = {"pruning": 0.2, "merge": None,
            "options": {"speech_threshold": 0.2, "merge_gap": 0.3, "min_region": 0.2,
                        "window": 1.5, "hop": 0.75, "batch": 64, "max_speakers": 10}}


def write_settings(path, model, pruning):
    with new_sidecar(path, "diarization", model, "a test") as folder:
        (folder / "diarization.json").write_text(json.dumps({**SETTINGS, "pruning": pruning}))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_pretrained(tmp_path_factory.mktemp("sidecars") / "pretrained")


def test_each_write_is_a_new_version_and_a_failed_one_leaves_nothing(tmp_path):
    write_settings(tmp_path / "tuned", "abc", 0.1)
    write_settings(tmp_path / "tuned", "abc", 0.25)
    newest = read_sidecar(tmp_path / "tuned")
    assert (newest.name, newest.version, newest.kind, newest.model) == ("tuned", 2, "diarization",
                                                                         "abc")
    assert json.loads((tmp_path / "tuned/v1/diarization.json").read_text())["pruning"] == 0.1
    with pytest.raises(RuntimeError, match="not written whole: no diarization.json"):
        with new_sidecar(tmp_path / "tuned", "diarization", "abc", "a test"):
            pass
    with pytest.raises(KeyError):       # the tuning fails half-way through
        with new_sidecar(tmp_path / "tuned", "diarization", "abc", "a test") as staging:
            (staging / "diarization.json").write_text("{}")
            raise KeyError("pruning")
    assert sorted(p.name for p in (tmp_path / "tuned").iterdir()) == ["v1", "v2"]
    with pytest.raises(InputError, match="a diarization sidecar; a backend one needs another"):
        with new_sidecar(tmp_path / "tuned", "backend", "abc", "a test"):
            pass
    (tmp_path / "tuned/v2/sidecar.json").write_text('{"format_version": 9}')
    with pytest.raises(InputError, match=r"v2/sidecar.json: not a readable sidecar .*format"):
        read_sidecar(tmp_path / "tuned")
    with pytest.raises(InputError, match="not a sidecar"):
        read_sidecar(tmp_path)


def test_the_chosen_sidecars_replace_the_folders_state_for_their_model_only(folder, tmp_path):
    model = load_embedder(folder).fingerprint()
    write_settings(tmp_path / "diarization", model, 0.15)
    with new_sidecar(tmp_path / "backend", "backend", model, "a test") as staging:
        Backend(Scoring("cosine"), None, "eer", 0.3, False).save(staging)
    state = model_state(folder, [tmp_path / "diarization", tmp_path / "backend"], model)
    assert (state.folder, state.precisions) == (folder, folder)
    assert (state.diarization, state.backend) == (tmp_path / "diarization/v1",
                                                  tmp_path / "backend/v1")
    encoder = SpeakerEncoder.from_hparams(folder, sidecars=[tmp_path / "backend"])
    assert encoder.backend.prior == 0.3 and not encoder.backend.speech_detection
    write_settings(tmp_path / "other", "0123456789abcdef", 0.15)
    with pytest.raises(InputError, match="other: a sidecar made for another model"):
        SpeakerEncoder.from_hparams(folder, sidecars=[tmp_path / "other"])
    write_settings(tmp_path / "second", model, 0.3)
    with pytest.raises(InputError, match="second: a second diarization sidecar"):
        model_state(folder, [tmp_path / "diarization", tmp_path / "second"], model)


def test_list_compare_and_drop(folder, tmp_path, capsys):
    model = load_embedder(folder).fingerprint()
    write_settings(tmp_path / "store/a", model, 0.1)
    write_settings(tmp_path / "store/a", model, 0.3)
    write_settings(tmp_path / "store/b", "0123456789abcdef", 0.1)
    (tmp_path / "store/notes").mkdir()                # not a sidecar: left out
    listed = list_sidecars(tmp_path / "store")
    assert [(s.name, s.version) for s in listed] == [("a", 1), ("a", 2), ("b", 1)]
    assert compare_sidecars(tmp_path / "store/a/v1", tmp_path / "store/a") == [
        "pruning: 0.1 / 0.3"]
    assert compare_sidecars(tmp_path / "store/a/v1", tmp_path / "store/b") == [
        f"model: {model} / 0123456789abcdef"]
    main(["sidecars", "list", str(tmp_path / "store"), "--model", str(folder)])
    shown = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in shown] == ["a/v1", "a/v2", "b/v1"]
    assert [line.endswith("(this model)") for line in shown] == [True, True, False]
    assert drop_sidecar(tmp_path / "store/a/v1") == [tmp_path / "store/a/v1"]
    assert read_sidecar(tmp_path / "store/a").version == 2
    with pytest.raises(InputError, match="notes: not a sidecar"):
        drop_sidecar(tmp_path / "store/notes")
    main(["sidecars", "drop", str(tmp_path / "store/a")])
    assert not (tmp_path / "store/a").exists() and (tmp_path / "store/notes").is_dir()


def test_the_diarization_settings_of_a_sidecar_reach_the_interface_and_the_cli(folder,
                                                                              tmp_path):
    wave = speech_like(4.0, seed=5)
    path = tmp_path / "talk.wav"
    soundfile.write(path, wave.numpy(), 16000)
    model = load_embedder(folder).fingerprint()
    for name, most in (("two", 2), ("ten", 10)):     # every frame speech (threshold 0)
        with new_sidecar(tmp_path / name, "diarization", model, "a test") as staging:
            (staging / "diarization.json").write_text(json.dumps(
                {**SETTINGS, "options": {**SETTINGS["options"], "max_speakers": most,
                                         "speech_threshold": 0.0}}))
    two = SpeakerEncoder.from_hparams(folder, speech_detection=False,
                                      sidecars=[tmp_path / "two"])
    with pytest.raises(InputError, match="num_speakers=3: give 1 to 2"):
        two.diarize(path, num_speakers=3)
    ten = SpeakerEncoder.from_hparams(folder, speech_detection=False,
                                      sidecars=[tmp_path / "ten"])
    found = ten.diarize(path, num_speakers=3)
    assert (found[0].start, found[-1].end) == (0.0, 4.0)
    assert 1 <= len({s.speaker for s in found}) <= 3
    done = subprocess.run([sys.executable, "-m", "custom_modules", "diarize", "--model",
                           str(folder), "--sidecar", str(tmp_path / "two"), str(path),
                           "--num-speakers", "3"], capture_output=True, text=True)
    assert done.returncode == 1 and "num_speakers=3: give 1 to 2" in done.stderr


def test_a_sidecar_backend_is_read_safely(folder, tmp_path):
    model = load_embedder(folder).fingerprint()
    with new_sidecar(tmp_path / "b", "backend", model, "a test") as staging:
        Backend(Scoring("cosine"), None, "eer", 0.5, True).save(staging)
    assert load_backend(tmp_path / "b/v1").scoring.variant == "cosine"
    (tmp_path / "b/v1/backend.pt").unlink()
    (tmp_path / "b/v1/backend.pt").symlink_to(tmp_path / "elsewhere.pt")
    with pytest.raises(InputError, match="backend.pt: a link"):
        SpeakerEncoder.from_hparams(folder, sidecars=[tmp_path / "b"])
