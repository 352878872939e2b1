"""A command run while another process takes one core for a while, as when someone else's job
shares the machine: the load starts once a file appears (e.g. the first epoch's line of a
training log) or after a delay, spins one core for ``--seconds``, and stops. Prints when the
load ran and the command's wall-clock, and exits with the command's status. The demo's
"a passing slowdown does not cost the epochs the budget still pays for" is measured this way:

    python3 -m benchmarks.competing_load --when exps/demo/base/train_log.txt --seconds 120 \
        -- make demo

Standard library only, so it runs before ``.venv/`` exists.
"""

import argparse
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path


def spin(seconds: float) -> None:
    """Keep one core busy for ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--when", type=Path, default=None,
                        help="start the load once this file exists")
    parser.add_argument("--after", type=float, default=0.0,
                        help="seconds to wait (after --when, if given) before the load")
    parser.add_argument("--seconds", type=float, required=True, help="how long the load runs")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command after --")
    started = time.monotonic()
    child = subprocess.Popen(command)
    load = None
    while child.poll() is None:
        waiting = load is None and (args.when is None or args.when.exists())
        if waiting and time.monotonic() - started >= args.after:
            load = multiprocessing.Process(target=spin, args=(args.seconds,))
            load.start()
            print(f"competing load: one core for {args.seconds:.0f} s from "
                  f"{time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        time.sleep(1.0)
    if load is not None:
        load.terminate()
    print(f"competing load: {' '.join(command)} took {(time.monotonic() - started) / 60:.1f} "
          f"min, exit status {child.returncode}", file=sys.stderr)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
