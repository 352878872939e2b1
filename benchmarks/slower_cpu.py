"""A command run as on a machine ``factor`` times slower than this one: in a cgroup whose CPU
quota is this machine's cores divided by ``factor`` (4/3: two cores give 1.5), so that every
process it starts gets that much less CPU time. It prints the CPU, the quota and the wall-clock
the command took, and exits with the command's status. The README's demo bound ("never over 30
minutes on a machine a third slower") is measured this way:

    python3 -m benchmarks.slower_cpu 1.333 -- make demo DEMO_TRAINING=--precision=fp32

(``DEMO_TRAINING=--precision=fp32``: as on a CPU without bf16, where ``precision: auto`` trains
in float32). Needs root and the cgroup ``cpu`` controller (v1 ``cpu.cfs_quota_us`` or v2
``cpu.max``); standard library only, so it runs before ``.venv/`` exists. A quota slows the
parallel parts a little more than a slower clock would (the threads wait for each other at
the end of each quota period): the measured time is on the safe side.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

PERIOD_US = 100_000
V1 = Path("/sys/fs/cgroup/cpu")
V2 = Path("/sys/fs/cgroup")


def quota_group(name: str, cpus: float) -> Path:
    """A cgroup named ``name`` limited to ``cpus`` CPUs; its ``cgroup.procs`` is where a
    process is moved into it."""
    quota = round(cpus * PERIOD_US)
    if (V1 / "cpu.cfs_quota_us").exists():
        group = V1 / name
        group.mkdir(exist_ok=True)
        (group / "cpu.cfs_period_us").write_text(f"{PERIOD_US}\n")
        (group / "cpu.cfs_quota_us").write_text(f"{quota}\n")
        return group
    if (V2 / "cgroup.controllers").exists() and "cpu" in (V2 / "cgroup.controllers").read_text():
        group = V2 / name
        group.mkdir(exist_ok=True)
        (group / "cpu.max").write_text(f"{quota} {PERIOD_US}\n")
        return group
    raise SystemExit("slower_cpu: no cgroup cpu controller here (/sys/fs/cgroup/cpu or "
                     "cgroup v2 with cpu)")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        raise SystemExit("usage: python3 -m benchmarks.slower_cpu FACTOR -- COMMAND ...")
    try:
        factor = float(argv[0])
    except ValueError:
        raise SystemExit(f"slower_cpu: factor {argv[0]!r} is not a number") from None
    if factor < 1:
        raise SystemExit(f"slower_cpu: factor {factor} would make the machine faster")
    if os.geteuid() != 0:
        raise SystemExit("slower_cpu: needs root (it writes a cgroup's CPU quota)")
    cores = len(os.sched_getaffinity(0))
    group = quota_group(f"slower_cpu_{os.getpid()}", cores / factor)
    print(f"{cpu_model()}, {cores} cores; quota {cores / factor:.2f} CPUs "
          f"({factor:g} times slower): {' '.join(argv[2:])}", flush=True)
    started = time.monotonic()
    try:
        status = subprocess.Popen(argv[2:], preexec_fn=lambda: (group / "cgroup.procs")
                                  .write_text(f"{os.getpid()}\n")).wait()
    finally:
        group.rmdir()              # empty again once the command and its children have ended
    minutes = (time.monotonic() - started) / 60
    print(f"slower_cpu: {minutes:.1f} min wall-clock at {cores / factor:.2f} CPUs "
          f"(exit status {status})", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
