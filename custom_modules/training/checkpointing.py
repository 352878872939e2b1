"""A SpeechBrain ``Checkpointer`` whose checkpoints appear all at once.

SpeechBrain writes a checkpoint's ``CKPT.yaml`` first and its parameter files after it, so a
``kill -9`` in between leaves a directory that looks complete and fails to load on resume.
Here each checkpoint is written into ``<checkpoints_dir>/.staging/`` and renamed into place
when every file is there (``_publish``); leftovers of an interrupted save are removed at the
next save, and the staging folder itself once a checkpoint is in place.
"""

import logging
import os
import shutil

from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.distributed import ddp_barrier, ddp_broadcast, if_main_process


class AtomicCheckpointer(Checkpointer):
    """``Checkpointer`` with atomic checkpoint directories (same arguments)."""

    def save_checkpoint(self, meta=None, end_of_epoch=True, name=None,
                        verbosity=logging.INFO):
        """Save into a staging folder, then rename it into ``checkpoints_dir``."""
        final_dir = self.checkpoints_dir
        staging = final_dir / ".staging"
        if if_main_process():
            shutil.rmtree(staging, ignore_errors=True)
            if name is None:  # a name not taken in the final folder
                name = self._new_checkpoint_dirpath().name[len("CKPT+"):]
        name = ddp_broadcast(name, src=0)
        self.checkpoints_dir = staging
        try:
            checkpoint = super().save_checkpoint({} if meta is None else meta, end_of_epoch,
                                                 name, verbosity)
        finally:
            self.checkpoints_dir = final_dir
        if checkpoint is not None:
            target = final_dir / checkpoint.path.name
            self._publish(checkpoint.path, target)
            staging.rmdir()
            checkpoint = checkpoint._replace(
                path=target,
                paramfiles={k: target / p.name for k, p in checkpoint.paramfiles.items()})
        ddp_barrier()
        return checkpoint

    @staticmethod
    def _publish(staged: os.PathLike, target: os.PathLike) -> None:
        """Move a complete checkpoint from the staging folder into place (one rename)."""
        os.replace(staged, target)


def save_epoch(checkpointer: Checkpointer, meta: dict, min_keys: list[str] | None,
               epochs_to_average: int) -> None:
    """Save an end-of-epoch checkpoint and keep: the lowest by ``min_keys`` (when given), the
    ``epochs_to_average`` latest epochs (those ``average_checkpoints`` averages, whatever
    their EER) and the latest; the epoch's intra-epoch checkpoints are superseded and go."""
    protected: set | None = None     # found once, after the new checkpoint is in place

    def deletable(checkpoint) -> bool:
        nonlocal protected
        if protected is None:
            epochs = sorted((c for c in checkpointer.list_checkpoints()
                             if c.meta.get("end-of-epoch") and "epoch" in c.meta),
                            key=lambda c: c.meta["epoch"])[-epochs_to_average:]
            protected = {c.path for c in epochs}
        return checkpoint.path not in protected

    checkpointer.save_and_keep_only(meta=meta, min_keys=min_keys, num_to_keep=1,
                                    ckpt_predicate=deletable)
    checkpointer.delete_checkpoints(num_to_keep=0,
                                    ckpt_predicate=lambda c: not c.meta.get("end-of-epoch"))
