"""Run a recipe script with a test hook installed, for what a test cannot reach from outside
a subprocess (a kill at an exact point, each process's weights).

    python tests/recipe_with_hooks.py HOOK=VALUE recipes/train_speaker_embeddings.py ARGS...

Hooks:
- ``kill_at_publish=N``: SIGKILL the process at the N-th checkpoint publication, after the
  checkpoint's files are written into the staging folder and before the rename that puts them
  in place (the moment a crash would leave a half checkpoint behind).
- ``save_replica=FOLDER``: before the replica check at the end of training, every process
  saves its embedding model's parameters to ``FOLDER/rank<RANK>.pt``.
"""

import os
import runpy
import signal
import sys
from pathlib import Path

import torch

import custom_modules.training.recipe as recipe
from custom_modules.training.checkpointing import AtomicCheckpointer


def kill_at_publish(count: str) -> None:
    calls = {"n": 0}
    publish = AtomicCheckpointer._publish

    def dying_publish(staged, target):
        calls["n"] += 1
        if calls["n"] == int(count):
            os.kill(os.getpid(), signal.SIGKILL)
        publish(staged, target)

    AtomicCheckpointer._publish = staticmethod(dying_publish)


def save_replica(folder: str) -> None:
    check = recipe.replicas_identical

    def saving_check(module):
        Path(folder).mkdir(parents=True, exist_ok=True)
        torch.save({n: p.detach().clone() for n, p in module.named_parameters()},
                   Path(folder, f"rank{os.environ.get('RANK', '0')}.pt"))
        return check(module)

    recipe.replicas_identical = saving_check


if __name__ == "__main__":
    hook, value = sys.argv[1].split("=", 1)
    {"kill_at_publish": kill_at_publish, "save_replica": save_replica}[hook](value)
    sys.argv = sys.argv[2:]
    runpy.run_path(sys.argv[0], run_name="__main__")
