"""Run a recipe script with a test hook installed, for what a test cannot reach from outside
a subprocess (a kill at an exact point, each process's weights).

    python tests/recipe_with_hooks.py HOOK=VALUE[;HOOK=VALUE...] \
        recipes/train_speaker_embeddings.py ARGS...

Hooks:
- ``kill_at_publish=N``: SIGKILL the process at the N-th checkpoint publication, after the
  checkpoint's files are written into the staging folder and before the rename that puts them
  in place (the moment a crash would leave a half checkpoint behind).
- ``save_replica=FOLDER``: before the replica check at the end of training, every process
  saves its embedding model's parameters and buffers to ``FOLDER/rank<RANK>.pt``.
- ``save_first_step=FILE``: at the first training step, before the optimiser has moved
  anything, the embedding model's and the classifier's state dicts go to ``FILE``.
"""

import os
import runpy
import signal
import sys
from pathlib import Path

import torch

import custom_modules.training.recipe as recipe
from custom_modules.training.brain import SpeakerBrain
from custom_modules.training.checkpointing import AtomicCheckpointer
from custom_modules.training.distributed import unwrap


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
        torch.save({kind: {n: t.detach().clone() for n, t in named()} for kind, named in
                    (("parameters", module.named_parameters),
                     ("buffers", module.named_buffers))},
                   Path(folder, f"rank{os.environ.get('RANK', '0')}.pt"))
        return check(module)

    recipe.replicas_identical = saving_check


def save_first_step(file: str) -> None:
    start = SpeakerBrain.on_fit_batch_start

    def saving_start(self, batch, should_step):
        if not Path(file).exists():
            torch.save({name: {k: v.detach().clone() for k, v in
                               unwrap(self.modules[name]).state_dict().items()}
                        for name in ("embedding_model", "classifier")}, file)
        return start(self, batch, should_step)

    SpeakerBrain.on_fit_batch_start = saving_start


if __name__ == "__main__":
    for installed in sys.argv[1].split(";"):
        hook, value = installed.split("=", 1)
        {"kill_at_publish": kill_at_publish, "save_replica": save_replica,
         "save_first_step": save_first_step}[hook](value)
    sys.argv = sys.argv[2:]
    runpy.run_path(sys.argv[0], run_name="__main__")
