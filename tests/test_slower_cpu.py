"""benchmarks/slower_cpu.py: the CPU quota it writes and the commands it refuses (no root or
cgroup needed: a cgroup tree made of plain files)."""

import pytest

from benchmarks import slower_cpu


def test_the_quota_is_the_cores_divided_by_the_factor(tmp_path, monkeypatch):
    (tmp_path / "cpu.cfs_quota_us").write_text("-1\n")
    monkeypatch.setattr(slower_cpu, "V1", tmp_path)
    group = slower_cpu.quota_group("slow", 2 / (4 / 3))
    assert group == tmp_path / "slow"
    assert (group / "cpu.cfs_quota_us").read_text() == "150000\n"
    assert (group / "cpu.cfs_period_us").read_text() == "100000\n"


def test_cgroup_v2_gets_its_cpu_max(tmp_path, monkeypatch):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory\n")
    monkeypatch.setattr(slower_cpu, "V1", tmp_path / "absent")
    monkeypatch.setattr(slower_cpu, "V2", tmp_path)
    assert (slower_cpu.quota_group("slow", 0.5) / "cpu.max").read_text() == "50000 100000\n"


@pytest.mark.parametrize(("argv", "message"), [
    (["1.3", "make"], "usage"), (["fast", "--", "make"], "'fast' is not a number"),
    (["0.5", "--", "make"], "would make the machine faster")])
def test_malformed_commands_are_one_line_errors(argv, message):
    with pytest.raises(SystemExit, match=message):
        slower_cpu.main(argv)
