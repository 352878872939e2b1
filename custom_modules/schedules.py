"""Learning-rate schedules as pure functions of training progress.

The rate is computed from the global optimiser step (SpeechBrain's ``Brain.optimizer_step``,
which its checkpoints already restore), converted to epochs with the number of steps per
epoch. There is no state of its own to save, so a resumed run continues exactly where it
stopped, and with several processes each step is one synchronised global step.
"""


class WarmupSchedule:
    """Linear warm-up to ``lr``, then exponential or cyclic (triangular) decay.

    Arguments
    ---------
    lr : float
        Peak learning rate, reached after ``warmup_epochs``.
    warmup_epochs : float
        Length of the linear warm-up (may be fractional).
    total_epochs : float
        Length of training; the exponential decay reaches ``lr * final_ratio`` there.
    decay : str
        ``"exponential"``, ``"cyclic"`` (triangular cycles, ``cycle_epochs`` long, from ``lr``
        down to ``lr * final_ratio`` and back) or ``"constant"``.

    Example
    -------
    >>> schedule = WarmupSchedule(1e-3, warmup_epochs=1, total_epochs=10, final_ratio=0.01)
    >>> [round(schedule(epoch), 6) for epoch in (0.5, 1.0, 10.0)]
    [0.0005, 0.001, 1e-05]
    """

    def __init__(self, lr: float, warmup_epochs: float, total_epochs: float,
                 decay: str = "exponential", final_ratio: float = 0.01,
                 cycle_epochs: float = 2.0):
        if decay not in ("exponential", "cyclic", "constant"):
            raise ValueError(f"WarmupSchedule: decay must be exponential, cyclic or constant, "
                             f"got {decay!r}")
        if lr <= 0 or warmup_epochs < 0 or total_epochs <= warmup_epochs or final_ratio <= 0:
            raise ValueError(f"WarmupSchedule: need lr > 0, 0 <= warmup_epochs < total_epochs "
                             f"and final_ratio > 0; got {lr}, {warmup_epochs}, {total_epochs}, "
                             f"{final_ratio}")
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
        if self.decay == "exponential":
            span = self.total_epochs - self.warmup_epochs
            return self.lr * self.final_ratio ** min(1.0, after / span)
        if self.decay == "cyclic":
            phase = (after / self.cycle_epochs) % 1.0
            low = self.lr * self.final_ratio
            return low + (self.lr - low) * abs(2 * phase - 1)
        return self.lr

    def apply(self, optimizer, step: int, steps_per_epoch: int) -> float:
        """Set every parameter group of ``optimizer`` to the rate at global ``step``."""
        lr = self(step / max(1, steps_per_epoch))
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

