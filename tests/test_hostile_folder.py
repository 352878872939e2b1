"""A model folder or a database from someone else: ``calibrate`` writes nothing into the
folder (a sidecar instead), too few trials are refused, two calibrations at once are two
versions; enrolment databases are not trusted (links, triggers, foreign tables,
damaged or non-finite embeddings refused), ids are never reused, and enrolments are not kept
in the model folder."""

import json
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import closing

import numpy as np
import pytest
import soundfile
import torch
from conftest import experiment_with_backend, speech_like, tiny_pretrained

from custom_modules import SpeakerEncoder
from custom_modules.__main__ import main
from custom_modules.data.catalogue import read_utterance_csvs
from custom_modules.data.trials import read_trials, utterance_id
from custom_modules.diarization.pipeline import DEFAULT_SETTINGS, read_settings
from custom_modules.diarization.rttm import Segment, read_rttm, write_rttm
from custom_modules.errors import InputError
from custom_modules.files import write_atomic
from custom_modules.inference.model_yaml import read_model_yaml
from custom_modules.inference.precision import auto_precision
from custom_modules.inference.pretrained import load_embedder
from custom_modules.interface.enrolment import SCHEMA, EnrolmentDB
from custom_modules.scoring.backend import BACKEND_JSON, BACKEND_TENSORS, load_backend


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return experiment_with_backend(tmp_path_factory.mktemp("hostile"))


def own_pairs(experiment, path, count=None):
    """The experiment's test trials as a list of file pairs (the first ``count``)."""
    trials = read_trials(experiment / "data/test_trials.txt")[:count]
    files = {u.id: u.wav for u in read_utterance_csvs([str(experiment / "data/enrol.csv"),
                                                      str(experiment / "data/test.csv")]).values()}
    path.write_text("".join(f"{t.label} {files[utterance_id(t.enrol)]} "
                            f"{files[utterance_id(t.test)]}\n" for t in trials))
    return path


def test_calibrate_writes_nothing_into_the_folder_and_through_no_link(experiment, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(experiment / "pretrained", folder)
    victims = {name: tmp_path / f"victim_{name}" for name in ("json_part", "pt_part", "json")}
    for victim in victims.values():
        victim.write_text("keep me")
    (folder / f"{BACKEND_JSON}.part").symlink_to(victims["json_part"])
    (folder / f"{BACKEND_TENSORS}.part").symlink_to(victims["pt_part"])
    exported = {p.name: p.read_bytes() for p in folder.iterdir() if not p.is_symlink()}
    before = load_backend(folder)
    encoder = SpeakerEncoder.from_hparams(source=folder, savedir=tmp_path)
    encoder.calibrate(own_pairs(experiment, tmp_path / "pairs.txt"), tmp_path / "calibrated")
    assert {p.name: p.read_bytes() for p in folder.iterdir() if not p.is_symlink()} == exported
    assert load_backend(tmp_path / "calibrated/v1").history == [before.decisions]
    (folder / "precisions.json").symlink_to(victims["json"])   # replaced, not written through
    write_atomic(folder / "precisions.json", "{}")
    assert all(v.read_text() == "keep me" for v in victims.values())
    assert not (folder / "precisions.json").is_symlink()


def test_calibrate_refuses_too_few_trials(experiment, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(experiment / "pretrained", folder)
    encoder = SpeakerEncoder.from_hparams(source=folder, savedir=tmp_path)
    with pytest.raises(InputError, match=r"pairs.txt: \d target and \d non-target trials could "
                                         r"be scored; calibration needs at least 20 of each"):
        encoder.calibrate(own_pairs(experiment, tmp_path / "pairs.txt", count=4),
                          tmp_path / "calibrated")
    assert not (tmp_path / "calibrated").exists()


def test_two_calibrations_at_once_are_two_versions(experiment, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(experiment / "pretrained", folder)
    pairs = own_pairs(experiment, tmp_path / "pairs.txt")
    before = load_backend(folder).decisions
    sidecar = tmp_path / "calibrated"
    runs = [subprocess.Popen([sys.executable, "-m", "custom_modules", "calibrate", "--model",
                              str(folder), "--trials", str(pairs), "--far", far, "--to",
                              str(sidecar)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for far in ("0.05", "0.2")]
    for run in runs:
        assert run.wait() == 0, run.stderr.read()
    versions = [load_backend(sidecar / f"v{n}") for n in (1, 2)]
    assert sorted(p.name for p in sidecar.iterdir()) == ["v1", "v2"]   # no staging left
    assert all(v.history == [before] for v in versions)
    names = {name for v in versions for name in v.decisions.operating_points}
    assert {"far_5%", "far_20%"} <= names
    assert load_backend(folder).decisions == before


def test_enrolment_database_from_someone_else_is_refused_in_one_line(tmp_path):
    victim = tmp_path / "elsewhere.sqlite"
    link = tmp_path / "link.sqlite"
    link.symlink_to(victim)                                 # dangling: SQLite would create it
    with pytest.raises(InputError, match="link.sqlite: a symbolic link"):
        EnrolmentDB(link, "m1", 2)
    assert not victim.exists()
    rigged = tmp_path / "rigged.sqlite"
    db = EnrolmentDB(rigged, "m1", 2)
    db.add("alice", "a.wav", torch.tensor([1.0, 0.0]), 2.0, 2.0)
    with closing(sqlite3.connect(rigged)) as raw:
        raw.execute("CREATE TABLE hidden (embedding BLOB)")
        raw.execute("CREATE TRIGGER swap AFTER INSERT ON recordings BEGIN UPDATE recordings "
                    "SET embedding = (SELECT embedding FROM hidden) WHERE id = new.id; END")
        raw.commit()
    with pytest.raises(InputError, match="not an enrolment database of ours "
                                         r"\(table hidden, trigger swap\)"):
        EnrolmentDB(rigged, "m1", 2)
    # Our tables' names with other definitions: names compared without case.
    folded = tmp_path / "folded.sqlite"
    EnrolmentDB(folded, "m1", 2)
    with closing(sqlite3.connect(folded)) as raw:
        raw.executescript("DROP TABLE recordings; DROP TABLE speakers; CREATE TABLE speakers "
                          "(id INTEGER PRIMARY KEY, name TEXT COLLATE NOCASE NOT NULL UNIQUE, "
                          "added REAL NOT NULL);" + SCHEMA[2] + ";" + SCHEMA[3])
    with pytest.raises(InputError, match=r"table speakers \(not as we make it\)"):
        EnrolmentDB(folded, "m1", 2)


def test_recording_ids_are_never_given_again_and_bad_values_are_refused(tmp_path):
    db = EnrolmentDB(tmp_path / "e.sqlite", "m1", 2)
    first, second = db.add_recordings("bob", [("a.wav", torch.tensor([1.0, 0.0]), 1.0, 1.0),
                                              ("b.wav", torch.tensor([0.0, 1.0]), 1.0, 1.0)])
    db.remove_recording(second)
    assert db.add("bob", "c.wav", torch.tensor([1.0, 1.0]), 1.0, 1.0) == second + 1
    with pytest.raises(InputError, match=f"no recording {2 ** 70}"):
        db.remove_recording(2 ** 70)
    with pytest.raises(InputError, match="nan.wav: its embedding is not finite"):
        db.add("bob", "nan.wav", torch.tensor([float("nan"), 0.0]), 1.0, 1.0)
    assert [r.file for r in db.recordings()] == ["a.wav", "c.wav"]
    with closing(sqlite3.connect(db.path)) as raw:
        raw.execute("UPDATE recordings SET embedding = ? WHERE id = ?", (b"\0" * 3, first))
        raw.commit()
    with pytest.raises(InputError, match="e.sqlite: a stored embedding is damaged"):
        db.profiles()


def test_a_schema_1_database_is_moved_to_ids_never_reused(tmp_path):
    path = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(path)) as raw:
        raw.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE speakers (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
            "added REAL NOT NULL);"
            "CREATE TABLE recordings (id INTEGER PRIMARY KEY, speaker INTEGER NOT NULL "
            "REFERENCES speakers(id) ON DELETE CASCADE, file TEXT NOT NULL, duration REAL "
            "NOT NULL, speech_seconds REAL NOT NULL, added REAL NOT NULL, embedding BLOB "
            "NOT NULL);"
            "CREATE INDEX recordings_by_speaker ON recordings(speaker);"
            "INSERT INTO meta VALUES ('schema_version', '1'), ('model_fingerprint', 'm1'), "
            "('embedding_dim', '2');"
            "INSERT INTO speakers VALUES (1, 'ann', 0);")
        raw.execute("INSERT INTO recordings VALUES (7, 1, 'a.wav', 1, 1, 0, ?)",
                    (np.array([1, 0], dtype=np.float32).tobytes(),))
        raw.commit()
    db = EnrolmentDB(path, "m1", 2)
    db.remove_recording(7)
    assert db.add("ann", "b.wav", torch.tensor([0.0, 1.0]), 1.0, 1.0) == 8
    assert EnrolmentDB(path, "m1", 2).speakers()[0].name == "ann"


def test_enrolments_are_not_kept_in_the_model_folder(tmp_path, caplog):
    folder = tiny_pretrained(tmp_path / "model")
    EnrolmentDB(folder / "enrolments.sqlite", "someone else's", 24)
    encoder = SpeakerEncoder.from_hparams(source=folder, speech_detection=False)
    assert "enrolments.sqlite: an enrolment database in the model folder is not used" \
        in caplog.text
    assert encoder.database.parent == tmp_path / "user_data/enrolments"
    voice = tmp_path / "voice.wav"
    soundfile.write(voice, speech_like(3.0).numpy(), 16000)
    encoder.enrol("alice", [voice])
    assert [s.name for s in EnrolmentDB(encoder.database, encoder.enrolments.fingerprint,
                                        24).speakers()] == ["alice"]
    # An earlier version's profiles that are not finite stay where they are, refused.
    store = tmp_path / "store"
    store.mkdir()
    torch.save({"eve": torch.full((24,), float("nan"))}, store / "enrolled.pt")
    with pytest.raises(InputError, match="enrolled.pt: not an earlier version's enrolments"):
        SpeakerEncoder.from_hparams(source=folder, savedir=store,
                                    speech_detection=False).enrol("eve", [voice])
    assert (store / "enrolled.pt").is_file()


MEMORY_PROBE = """
import resource, sys, torch
from custom_modules.audio import AudioError, read_audio
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for path in sys.argv[1:]:
    try:
        print(path, read_audio(path).numel())
    except AudioError as error:
        print(path, "refused:", error.problem)
print("grew_mb", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024)
"""


def test_awkward_rates_and_absurd_samples_are_bounded_or_refused(tmp_path):
    paths = []
    for rate in (16001, 22051, 44099):
        paths.append(tmp_path / f"r{rate}.wav")
        soundfile.write(paths[-1], speech_like(1.0, rate).numpy(), rate)
    for rate in (1, 2_000_000_000):                 # headers that lie about the rate
        paths.append(tmp_path / f"r{rate}.wav")
        with open(paths[-1], "wb") as handle:
            handle.write(b"RIFF" + (36 + 32000).to_bytes(4, "little") + b"WAVEfmt "
                         + (16).to_bytes(4, "little") + (1).to_bytes(2, "little")
                         + (1).to_bytes(2, "little") + rate.to_bytes(4, "little")
                         + (2 * rate % 2 ** 32).to_bytes(4, "little")
                         + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
                         + b"data" + (32000).to_bytes(4, "little") + bytes(32000))
    paths.append(tmp_path / "huge.wav")
    soundfile.write(paths[-1], np.full(16000, 1e30, dtype=np.float32), 16000,
                    subtype="FLOAT")
    done = subprocess.run([sys.executable, "-c", MEMORY_PROBE, *map(str, paths)],
                          capture_output=True, text=True, check=True)
    lines = dict(line.rsplit(" ", 1) if line.startswith("grew") else line.split(" ", 1)
                 for line in done.stdout.splitlines())
    assert lines[str(paths[0])] == "16001"          # within 6e-5 of 16 kHz: kept
    # One second each, by a ratio within 1e-5 of the true one.
    assert all(abs(int(lines[str(p)]) - 16000) <= 2 for p in paths[1:3])
    assert lines[str(paths[3])] == "refused: sample rate 1 Hz, outside 4000 to 192000 Hz"
    assert lines[str(paths[4])].startswith("refused: sample rate 2000000000 Hz")
    assert lines[str(paths[5])].startswith("refused: samples up to 1e+30")
    assert float(lines["grew_mb"]) < 200             # 5 to 10 GB before the bound


def test_names_cannot_forge_output_lines_and_survive_rttm(tmp_path, capsys):
    forged = "mallory\nspeaker: alice (at eer, threshold +0.0000)\x1b[2K"
    folder = tiny_pretrained(tmp_path / "model")
    voice = tmp_path / "voice.wav"
    soundfile.write(voice, speech_like(3.0).numpy(), 16000)
    arguments = ["--model", str(folder), "--no-speech-detection"]
    main(["enrol", *arguments, "--name", forged, str(voice)])
    capsys.readouterr()
    main(["identify", *arguments, str(voice), "--threshold", "-1"])
    shown = capsys.readouterr().out.splitlines()
    assert len(shown) == 2 and shown[1].startswith(f"speaker: {forged!r} (at")
    with pytest.raises(SystemExit, match="error: top_k=0: give at least 1"):
        main(["identify", *arguments, str(voice), "--top-k", "0"])
    with pytest.raises(SystemExit, match="error: num_speakers=1000: give 1 to 10"):
        main(["diarize", "--model", str(folder), str(voice), "--num-speakers", "1000"])
    path = tmp_path / "x.rttm"
    write_rttm(path, "my talk %1", [Segment(0.0, 1.5, forged), Segment(1.5, 2.0, "bo\tb ø")])
    assert all(len(line.split()) == 10 for line in path.read_text().splitlines())
    assert read_rttm(path) == {"my talk %1": [Segment(0.0, 1.5, forged),
                                              Segment(1.5, 2.0, "bo\tb ø")]}


def test_the_fingerprint_covers_the_settings_and_earlier_databases_are_taken_over(tmp_path):
    folder = tiny_pretrained(tmp_path / "model")
    embedder = load_embedder(folder)
    yaml = (folder / "hyperparams.yaml").read_text()
    changed = tmp_path / "changed"
    shutil.copytree(folder, changed)
    (changed / "hyperparams.yaml").write_text(yaml.replace("hop_length: 10.0",
                                                           "hop_length: 12.0"))
    other = load_embedder(changed)
    assert other.weights_fingerprint() == embedder.weights_fingerprint()
    assert other.fingerprint() != embedder.fingerprint()
    (changed / "hyperparams.yaml").write_text(yaml.replace("sample_rate: 16000",
                                                           "sample_rate: 8000", 1))
    with pytest.raises(InputError, match="sample_rate 8000 is not the rate its "
                                         r"compute_features takes \(16000\)"):
        load_embedder(changed)
    # A database enrolled into by an earlier version (named by the weights alone).
    store = tmp_path / "store"
    EnrolmentDB(store / "enrolments.sqlite", embedder.weights_fingerprint(), 24)
    encoder = SpeakerEncoder.from_hparams(source=folder, savedir=store)
    assert encoder.enrolments.speakers() == []
    assert EnrolmentDB(store / "enrolments.sqlite", embedder.fingerprint(), 24).speakers() == []


@pytest.mark.parametrize("change, problem", [
    ({"variant": 3}, "variant is 3, not a str"),
    ({"prior": "0.5"}, "prior is '0.5', not a finite float"),
    ({"top_k": 0}, "top_k 0 is below 1"),
    ({"speech_detection": "no"}, "speech_detection is 'no', not a bool"),
    ({"decisions": {"calibration": {"scale": "x", "offset": 0}}}, "KeyError"),
])
def test_malformed_backend_values_are_one_line_errors(experiment, tmp_path, change, problem):
    folder = tmp_path / "model"
    shutil.copytree(experiment / "pretrained", folder)
    meta = json.loads((folder / BACKEND_JSON).read_text())
    (folder / BACKEND_JSON).write_text(json.dumps({**meta, **change}))
    with pytest.raises(InputError, match=f"backend.json: not a readable back-end .*{problem}"):
        load_backend(folder)


def test_a_pickled_backend_or_settings_out_of_range_are_one_line_errors(experiment, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(experiment / "pretrained", folder)
    marker = tmp_path / "ran"
    (folder / BACKEND_TENSORS).write_bytes(pickle.dumps(Touch(str(marker))))
    with pytest.raises(InputError, match=r"backend.pt cannot be read safely"):
        load_backend(folder)
    assert not marker.exists()
    settings = json.loads(DEFAULT_SETTINGS.read_text())
    for key, value, problem in [("batch", 0, "batch is 0, not an integer from 1"),
                                ("hop", 1e-4, "hop is 0.0001, not a number from 0.1"),
                                ("window", "1.5", "window is '1.5', not a number")]:
        written = {**settings, "options": {**settings["options"], key: value}}
        (folder / "diarization.json").write_text(json.dumps(written))
        with pytest.raises(InputError, match=f"diarization.json: not readable diarization "
                                             f"settings .*{problem}"):
            read_settings(folder)


class Touch:
    """Unpickling this creates a file: what a pickle in a folder could do."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_model_yaml_reading_is_bounded():
    doubling = "a0: x\n" + "".join(f"a{n}: !ref <a{n - 1}><a{n - 1}>\n" for n in range(1, 41))
    started = time.perf_counter()
    with pytest.raises(InputError, match=r"h.yaml: !ref '<a13><a13>' builds a string of "
                                         r"more than 10,000 characters"):
        read_model_yaml(doubling, "h.yaml")
    nested = "a: &a [1, 2, 3, 4, 5, 6, 7, 8]\nb: &b [*a, *a, *a, *a]\nd: !ref 'x <b>'\n"
    with pytest.raises(InputError, match="<b> is a list; only a text or a number"):
        read_model_yaml(nested, "h.yaml")
    big = ("f: !new:custom_modules.models.frontend.MelFrontend\n    n_fft: 400000\n"
           "    n_mels: 20000\n")
    with pytest.raises(InputError, match="n_fft 400000 is not an integer from 1 to 16384"):
        read_model_yaml(big, "h.yaml")
    assert time.perf_counter() - started < 1.0                 # 20 levels took 7.9 s
    huge = ("m: !new:custom_modules.models.ecapa.ECAPA_TDNN\n    input_size: 80\n"
            "    channels: [8192, 8192, 8192, 8192, 8192]\n")
    with pytest.raises(InputError, match=r"ECAPA_TDNN declared with [\d,]+ parameters, more "
                                         r"than 100,000,000"):
        read_model_yaml(huge, "h.yaml")
    with pytest.raises(InputError, match="characters, more than a model's YAML has"):
        read_model_yaml("a: " + "x" * (1 << 20), "h.yaml")


@pytest.mark.parametrize("edit, problem", [
    (lambda y: y.replace("modules:", "modules: [a, b]\nunused:"),
     "modules is a list, not a mapping"),
    (lambda y: y.replace("    input_size:", "    device: cuda\n    input_size:"),
     "ECAPA_TDNN: (.*CUDA|Found no NVIDIA driver)"),
    (lambda y: y.encode("utf-8") + b"\xff\xfe", "not UTF-8 text"),
    (lambda y: y.replace("lin_neurons: 24", "lin_neurons: 99999999999999999999999"),
     "ECAPA_TDNN: "),
])
def test_malformed_model_yaml_values_are_one_line_errors(tmp_path, edit, problem):
    folder = tiny_pretrained(tmp_path / "model")
    changed = edit((folder / "hyperparams.yaml").read_text())
    (folder / "hyperparams.yaml").write_bytes(changed if isinstance(changed, bytes)
                                              else changed.encode())
    with pytest.raises(InputError, match=f"hyperparams.yaml: .*{problem}"):
        load_embedder(folder)


def test_damaged_or_foreign_text_files_are_one_line_errors(tmp_path):
    db = EnrolmentDB(tmp_path / "e.sqlite", "m1", 2)
    db.add("ann", "a.wav", torch.tensor([1.0, 0.0]), 1.0, 1.0)
    data = bytearray(db.path.read_bytes())
    data[4096:8192] = b"\xa5" * 4096                 # the second page: the tables' rows
    db.path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="e.sqlite: "):
        EnrolmentDB(db.path, "m1", 2).profiles()
    bare = EnrolmentDB(tmp_path / "bare.sqlite", "m1", 2)
    with closing(sqlite3.connect(bare.path)) as raw:
        raw.execute("DELETE FROM meta WHERE key = 'model_fingerprint'")
        raw.commit()
    with pytest.raises(InputError, match="bare.sqlite: made with another model"):
        EnrolmentDB(bare.path, "m1", 2)
    latin = tmp_path / "trials.txt"
    latin.write_bytes("1 caf\xe9.wav b.wav\n".encode("latin-1"))
    with pytest.raises(InputError, match="trials.txt: not UTF-8 text"):
        read_trials(latin)
    rttm = tmp_path / "x.rttm"
    rttm.write_bytes(b"SPEAKER \xff 1 0.0 1.0 <NA> <NA> a <NA> <NA>\n")
    with pytest.raises(InputError, match="x.rttm: not UTF-8 text"):
        read_rttm(rttm)


LOAD_PROBE = """
import sys
from custom_modules.errors import InputError
from custom_modules.scoring.backend import load_backend
from custom_modules.evaluation.backend_fit import model_classifier
from custom_modules.inference.precision import auto_precision
from custom_modules.inference.pretrained import load_embedder
for load in (load_embedder, load_backend, model_classifier):
    try:
        load(sys.argv[1])
        print("loaded")
    except InputError as error:
        print("refused:", error)
"""


@pytest.mark.parametrize("name, read", [("embedding_model.ckpt", True),
                                        ("classifier.ckpt", True), (BACKEND_TENSORS, True),
                                        ("mean_var_norm_emb.ckpt", False)])
def test_no_pickle_in_a_folder_runs_even_when_the_environment_asks_for_it(experiment, tmp_path,
                                                                         name, read):
    """``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (common in the wild) makes ``torch.load``
    unpickle wherever ``weights_only`` is not given explicitly: every file of a folder is
    read by our code with it given (a file the folder's YAML does not declare is not read).
    Statistics declared as SpeechBrain's ``InputNormalization`` go through the same reader
    (``test_published_import``)."""
    folder = tmp_path / "model"
    shutil.copytree(experiment / "pretrained", folder)
    marker = tmp_path / "ran"
    (folder / name).write_bytes(pickle.dumps(Touch(str(marker))))
    done = subprocess.run([sys.executable, "-c", LOAD_PROBE, str(folder)], capture_output=True,
                          text=True, check=True,
                          env={**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    assert not marker.exists()
    assert (f"{name}" in done.stdout and "refused:" in done.stdout) == read, done.stdout


def test_links_out_of_the_folder_are_not_read(experiment, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text('{"precisions": {"int8": {"passed": true, "embeddings_per_second": 1e9}}}')
    for name, load in [("backend.json", load_backend), ("diarization.json", read_settings),
                       ("precisions.json", lambda f: auto_precision(f, "cpu")),
                       ("embedding_model.ckpt", load_embedder)]:
        folder = tmp_path / name
        shutil.copytree(experiment / "pretrained", folder)
        (folder / name).unlink(missing_ok=True)
        (folder / name).symlink_to(secret)
        with pytest.raises(InputError, match=f"{name}: a link out of the model folder"):
            load(folder)
    inside = tmp_path / "inside"
    shutil.copytree(experiment / "pretrained", inside)
    (inside / "copy.pt").write_bytes((inside / BACKEND_TENSORS).read_bytes())
    (inside / BACKEND_TENSORS).unlink()
    (inside / BACKEND_TENSORS).symlink_to(inside / "copy.pt")     # a link inside is fine
    assert load_backend(inside).scoring.variant == "lda+as-norm"
    (inside / "precisions.json").write_text(
        '{"precisions": {"int8": {"passed": "yes", "embeddings_per_second": 9}}}')
    with pytest.raises(InputError, match="passed must be true or false"):
        auto_precision(inside, "cpu")
