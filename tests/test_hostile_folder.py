"""A model folder from someone else: what ``calibrate`` writes into it goes through no link
that the folder ships, too few trials are refused, and two calibrations at once both count."""

import shutil
import subprocess
import sys
import threading

import pytest
from conftest import experiment_with_backend

from custom_modules import SpeakerEncoder
from custom_modules.data.catalogue import read_utterance_csvs
from custom_modules.data.trials import read_trials, utterance_id
from custom_modules.errors import InputError
from custom_modules.evaluation.backend import BACKEND_JSON, BACKEND_TENSORS, load_backend
from custom_modules.files import folder_lock, write_atomic


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


def test_calibrate_writes_through_no_link_the_folder_ships(experiment, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(experiment / "pretrained", folder)
    victims = {name: tmp_path / f"victim_{name}" for name in
               ("json_part", "pt_part", "json", "lock")}
    for victim in victims.values():
        victim.write_text("keep me")
    (folder / f"{BACKEND_JSON}.part").symlink_to(victims["json_part"])
    (folder / f"{BACKEND_TENSORS}.part").symlink_to(victims["pt_part"])
    before = load_backend(folder)
    encoder = SpeakerEncoder.from_hparams(source=folder, savedir=tmp_path)
    encoder.calibrate(own_pairs(experiment, tmp_path / "pairs.txt"))
    (folder / "precisions.json").symlink_to(victims["json"])   # replaced, not written through
    write_atomic(folder / "precisions.json", "{}")
    assert all(v.read_text() == "keep me" for v in victims.values())
    assert not any((folder / name).is_symlink() for name in (BACKEND_JSON, "precisions.json"))
    assert load_backend(folder).history == [before.decisions]
    # A lock file that is a link is refused, not opened through.
    (folder / ".lock").unlink()
    (folder / ".lock").symlink_to(victims["lock"])
    with pytest.raises(InputError, match=r"\.lock: cannot be locked"):
        with folder_lock(folder):
            pass


def test_calibrate_refuses_too_few_trials(experiment, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(experiment / "pretrained", folder)
    before = (folder / BACKEND_JSON).read_bytes()
    encoder = SpeakerEncoder.from_hparams(source=folder, savedir=tmp_path)
    with pytest.raises(InputError, match=r"pairs.txt: \d target and \d non-target trials could "
                                         r"be scored; calibration needs at least 20 of each"):
        encoder.calibrate(own_pairs(experiment, tmp_path / "pairs.txt", count=4))
    assert (folder / BACKEND_JSON).read_bytes() == before


def test_two_calibrations_at_once_both_count(experiment, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(experiment / "pretrained", folder)
    pairs = own_pairs(experiment, tmp_path / "pairs.txt")
    before = load_backend(folder).decisions
    runs = [subprocess.Popen([sys.executable, "-m", "custom_modules", "calibrate", "--model",
                              str(folder), "--trials", str(pairs), "--far", far],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for far in ("0.05", "0.2")]
    for run in runs:
        assert run.wait() == 0, run.stderr.read()
    after = load_backend(folder)
    # Each calibration was applied to the other's result: the original and one of them are
    # the history, the other is current.
    assert len(after.history) == 2 and after.history[0] == before
    names = {name for d in (after.decisions, after.history[1]) for name in d.operating_points}
    assert {"far_5%", "far_20%"} <= names


def test_a_waiting_writer_holds_off_until_the_lock_is_released(tmp_path):
    order = []

    def second():
        with folder_lock(tmp_path):
            order.append("second")

    with folder_lock(tmp_path):
        other = threading.Thread(target=second)
        other.start()
        other.join(timeout=0.5)
        order.append("first")
    other.join(timeout=5)
    assert order == ["first", "second"]
