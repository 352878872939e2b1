"""Learning-rate schedules as pure functions of training progress.

The rate is computed from the global optimiser step (SpeechBrain's ``Brain.optimizer_step``,
which its checkpoints already restore), converted to epochs with the number of steps per
epoch. The schedules have no state of their own to save, so a resumed run continues exactly
where it stopped (a time budget's plan, which compresses them, is saved with the epoch
counter), and with several processes each step is one synchronised global step.
"""

import json
import logging
import math
import time
from pathlib import Path

import numpy
from speechbrain.utils.checkpoints import (
    Checkpointer,
    mark_as_loader,
    mark_as_saver,
    mark_as_transfer,
    register_checkpoint_hooks,
)
from speechbrain.utils.epoch_loop import EpochCounter

from custom_modules.errors import InputError

logger = logging.getLogger(__name__)


class WarmupSchedule:
    """Linear warm-up to ``lr``, then exponential, cosine or triangular2 decay; every one
    ends at its minimum, ``lr * final_ratio``, at ``total_epochs``.

    Arguments
    ---------
    lr : float
        Peak learning rate, reached after ``warmup_epochs`` (triangular2: in the middle of the
        first cycle).
    warmup_epochs : float
        Length of the linear warm-up (may be fractional; 0 for triangular2, whose cycles rise
        from the minimum themselves).
    total_epochs : float
        Length of training.
    decay : str
        ``"exponential"``, ``"cosine"`` (half a cosine: stays high longer), ``"triangular2"``
        (the ECAPA-TDNN paper's cyclical rate, Smith 2017: cycles of ``cycle_epochs`` rising
        from the minimum to the peak and back, the peak halved every cycle; ``total_epochs``
        must be whole cycles) or ``"constant"``.
    final_ratio : float
        The minimum as a share of ``lr``.
    cycle_epochs : float, optional
        Length of a cycle: required by ``"triangular2"``, refused by the others (it would do
        nothing).

    Example
    -------
    >>> schedule = WarmupSchedule(1e-3, warmup_epochs=1, total_epochs=10, final_ratio=0.01)
    >>> [round(schedule(epoch), 6) for epoch in (0.5, 1.0, 10.0)]
    [0.0005, 0.001, 1e-05]
    >>> cycles = WarmupSchedule(1.0, 0, 8, "triangular2", final_ratio=0.0001, cycle_epochs=4)
    >>> [round(cycles(epoch), 4) for epoch in (0, 2, 4, 6, 8)]
    [0.0001, 1.0, 0.0001, 0.5, 0.0001]
    """

    def __init__(self, lr: float, warmup_epochs: float, total_epochs: float,
                 decay: str = "exponential", final_ratio: float = 0.01,
                 cycle_epochs: float | None = None):
        if decay not in ("exponential", "cosine", "triangular2", "constant"):
            raise InputError(f"WarmupSchedule: decay must be exponential, cosine, triangular2 "
                             f"or constant, got {decay!r}")
        if (decay == "triangular2") != (cycle_epochs is not None) or \
                (cycle_epochs is not None and cycle_epochs <= 0):
            raise InputError(f"WarmupSchedule: cycle_epochs (a positive length) goes with "
                             f"decay: triangular2 and only with it; got decay {decay!r}, "
                             f"cycle_epochs {cycle_epochs}")
        if lr <= 0 or warmup_epochs < 0 or total_epochs <= warmup_epochs or final_ratio <= 0:
            raise InputError(f"WarmupSchedule: need lr > 0, 0 <= warmup_epochs < total_epochs "
                             f"and final_ratio > 0; got {lr}, {warmup_epochs}, {total_epochs}, "
                             f"{final_ratio}")
        if decay == "triangular2" and (warmup_epochs != 0 or
                                       (total_epochs / cycle_epochs) % 1 != 0):
            raise InputError(f"WarmupSchedule: triangular2 needs warmup_epochs 0 (its cycles "
                             f"rise from the minimum) and total_epochs a whole number of "
                             f"cycles (to end at the minimum); got {warmup_epochs}, "
                             f"{total_epochs} epochs of {cycle_epochs}-epoch cycles")
        self.lr = lr
        self.warmup_epochs = warmup_epochs
        self.total_epochs = total_epochs
        self.decay = decay
        self.final_ratio = final_ratio
        self.cycle_epochs = cycle_epochs

    def __call__(self, epochs_done: float) -> float:
        """Learning rate after ``epochs_done`` (global steps / steps per epoch)."""
        if epochs_done < self.warmup_epochs:
            return self.lr * epochs_done / self.warmup_epochs
        after = epochs_done - self.warmup_epochs
        progress = min(1.0, after / (self.total_epochs - self.warmup_epochs))
        low = self.lr * self.final_ratio
        if self.decay == "exponential":
            return self.lr * self.final_ratio ** progress
        if self.decay == "cosine":
            return low + (self.lr - low) * (1 + math.cos(math.pi * progress)) / 2
        if self.decay == "triangular2":
            cycle, phase = divmod(min(after, self.total_epochs) / self.cycle_epochs, 1.0)
            if cycle == self.total_epochs / self.cycle_epochs:    # the end: the minimum
                cycle, phase = cycle - 1, 1.0
            return low + (self.lr - low) * 0.5 ** cycle * (1 - abs(2 * phase - 1))
        return self.lr

    def apply(self, optimizer, step: int, steps_per_epoch: int, share: float = 1.0) -> float:
        """Set every parameter group of ``optimizer`` to the rate at global ``step`` (times the
        group's ``lr_scale`` when it has one); returns the rate. ``share``: the part of the
        schedule's epochs the run will train (a time budget's plan, ``planned / limit`` of
        ``TimeBudgetEpochCounter``): the whole schedule, warm-up and cycles too, is compressed
        into it."""
        lr = self(step / max(1, steps_per_epoch) / share)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        return lr


@register_checkpoint_hooks
class TimeBudgetEpochCounter(EpochCounter):
    """SpeechBrain's checkpointable ``EpochCounter`` that also fits a wall-clock budget: at the
    end of each epoch it plans, from the budget left and the median length of the last
    ``RECENT`` epochs of this process, how many epochs end within ``max_minutes``
    (``planned``: at most ``limit``), and does not start one that would end after it. The plan
    is made anew each epoch from what is left, so it grows back when a passing slowdown (another
    process on the machine) is over: a slow epoch or two cost what they took, not the epochs
    that the rest of the budget still pays for. The
    learning-rate schedule is compressed to ``planned / limit`` of its length
    (``WarmupSchedule.apply``), so that a slower machine still anneals to the end in fewer
    epochs. ``max_minutes=None`` is a plain ``EpochCounter``.

    ``is_last()`` tells, at the end of an epoch, whether it is the last one (so that the last
    epoch is validated); the estimate is made once per epoch, which the next ``__next__`` and
    the next epoch's learning rates follow, and ``decide`` imposes one (rank 0's, under DDP).
    Checkpoints keep the plan: a resumed run (which times a new budget) keeps to it, unless it
    was started with another limit or budget, which plan anew.

    Example
    -------
    >>> counter = TimeBudgetEpochCounter(limit=2, max_minutes=None)
    >>> [(epoch, counter.is_last(), counter.planned) for epoch in counter]
    [(1, False, 2), (2, True, 2)]
    """

    RECENT = 3   # epochs whose median length plans the rest

    def __init__(self, limit: int, max_minutes: float | None = None):
        super().__init__(limit)
        self.max_seconds = None if max_minutes is None else 60.0 * max_minutes
        self.started: float | None = None
        self.first_epoch = 0          # epochs already done when this process started timing
        self.planned = self.limit     # epochs this run will end with: the latest estimate
        self.decided_at: int | None = None   # the epoch at whose end it was made
        self.epoch_ends: list[float] = []    # this process's clock at each epoch's end
        self.ceiling = self.limit     # a resumed run never plans beyond its checkpoint's plan

    def __next__(self) -> int:
        if self.max_seconds is not None and self.started is None:
            self.started, self.first_epoch = time.monotonic(), self.current
        if self.current < self.limit and self.is_last():
            logger.info("stopping after epoch %d of %d: the time budget (%s min) is spent",
                        self.current, self.limit, self.max_seconds and self.max_seconds / 60)
            raise StopIteration
        return super().__next__()

    def is_last(self) -> bool:
        """Whether no epoch follows the current one (the limit, or the budget)."""
        return self.plan() <= self.current

    def plan(self) -> int:
        """The epochs this run will end with, estimated once at the end of each epoch."""
        if self.decided_at != self.current:
            self.decide(self._estimate())
        return self.planned

    def decide(self, planned: int) -> None:
        """Impose the plan made at the end of the current epoch."""
        if planned != self.planned:
            logger.info("time budget (%s min): %d of %d epochs fit; the learning-rate schedule "
                        "is compressed to them", self.max_seconds and self.max_seconds / 60,
                        planned, self.limit)
        self.planned, self.decided_at = planned, self.current

    def _estimate(self) -> int:
        epochs_timed = self.current - self.first_epoch
        if self.max_seconds is None or self.started is None or not epochs_timed:
            return self.planned
        self.epoch_ends.append(time.monotonic())
        ends = ([self.started] + self.epoch_ends)[-(self.RECENT + 1):]
        epoch_seconds = max(float(numpy.median(numpy.diff(ends))), 1e-9)
        more = math.floor((self.max_seconds - (ends[-1] - self.started)) / epoch_seconds)
        return max(self.current, min(self.ceiling, self.current + more))

    @mark_as_saver
    def _save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"current": self.current, "planned": self.planned, "limit": self.limit,
                       "max_seconds": self.max_seconds}, handle)

    @mark_as_loader
    @mark_as_transfer
    def _recover(self, path: str, end_of_epoch: bool = True) -> None:
        """The epoch (as SpeechBrain's counter: one less from an intra-epoch checkpoint) and,
        when this run has the same limit and budget, the plan; a plain ``EpochCounter``'s
        checkpoint (the epoch alone) is read too."""
        saved = _counter_state(Path(path))
        self.current = saved["current"] - (not end_of_epoch)
        if (saved.get("limit"), saved.get("max_seconds")) == (self.limit, self.max_seconds):
            self.planned = self.ceiling = saved["planned"]


def saved_plan(save_folder: str, counter_key: str = "counter") -> dict | None:
    """What a ``TimeBudgetEpochCounter`` saved in the newest checkpoint of a training's
    ``save_folder`` (under ``counter_key``, training.yaml's): ``current`` (epochs done),
    ``planned``, ``limit`` and ``max_seconds``; ``None`` without such a checkpoint."""
    checkpoint = Checkpointer(save_folder).find_checkpoint()
    if checkpoint is None or counter_key not in checkpoint.paramfiles:
        return None
    saved = _counter_state(checkpoint.paramfiles[counter_key])
    return saved if "planned" in saved else None


def _counter_state(path: Path) -> dict:
    """An epoch counter's checkpoint file: ours (JSON) or SpeechBrain's (the epoch alone, read
    as ``{"current": epoch}``)."""
    text = path.read_text(encoding="utf-8")
    try:
        saved = json.loads(text) if text.lstrip().startswith("{") else {"current": int(text)}
        int(saved["current"])
    except (ValueError, TypeError, KeyError):
        raise InputError(f"{path}: not an epoch counter's checkpoint (damaged?)") from None
    return saved
