"""The VoxCeleb rehearsals run end to end here, through the code a GPU machine would run: the
GPU rehearsal's CPU stand-ins (fp32, bf16 autocast for fp16 and bf16, two gloo processes for
nccl) and the CPU rehearsal, each at a tiny shape."""

import json
import subprocess
import sys

import pytest


def rehearse(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True,
                          timeout=600, check=False)


@pytest.mark.slow
def test_the_gpu_rehearsal_runs_every_mode_through_its_cpu_stand_in(tmp_path):
    done = rehearse("benchmarks.rehearse_voxceleb_gpu", "--stand-in", f"--root={tmp_path}")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    report = json.loads((tmp_path / "rehearsal_stand_in/report.json").read_text())
    runs = {name: report[name] for name in ("fp32", "fp16 and bf16 (bf16 on CPU)",
                                            "nccl (gloo, 2 processes)")}
    for name, run in runs.items():
        assert run["exported"] is True, name
        assert 0 < run["compute seconds per step"] <= run["step seconds"], name
        assert 0 <= run["data wait share"] < 1 and run["loader start-up seconds"] > 0, name
        assert run["peak GPU GB"] is None, name                     # no GPU here
    # Only the first mode fits the back-end (on noise: without speech detection).
    assert (tmp_path / "rehearsal_stand_in/fp32/pretrained/backend.json").is_file()
    assert not (tmp_path / "rehearsal_stand_in/fp16/pretrained/backend.json").exists()
    log = (tmp_path / "rehearsal_stand_in/fp16/train_log.txt").read_text()
    assert [line.split(",")[0] for line in log.splitlines()] == ["epoch: 1", "epoch: 2"]


@pytest.mark.slow
def test_the_cpu_rehearsal_prepares_trains_and_verifies(tmp_path):
    done = rehearse("benchmarks.rehearse_voxceleb", "--small", f"--root={tmp_path}")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    report = json.loads((tmp_path / "rehearsal_cpu_small/report.json").read_text())
    assert report["vox2 speakers"] == 12
    assert report["verification trials"] == 1000         # 4 speakers x 25 files: 1,000 drawn
    assert report["crops per second per worker"] > 0
    assert (tmp_path / "rehearsal_cpu_small/pretrained/backend.json").is_file()
