"""The one sequence every trial scorer follows (verification, the back-end's calibration, the
precision check, the validation EER): the embedded utterances become the rows of one matrix,
the trials whose two sides were embedded become pairs of rows, and a ``Scoring`` scores them.

>>> rows = EmbeddedRows.of({"b": torch.tensor([0.0, 1.0]), "a": torch.tensor([1.0, 0.0])})
>>> rows.row
{'a': 0, 'b': 1}
>>> pairs = rows.pairs([Trial(1, "a", "b"), Trial(0, "a", "c")], lambda e: e, "list")
>>> [t.test for t in pairs.kept], pairs.enrol, pairs.test
(['b'], tensor([0]), tensor([1]))
"""

from collections.abc import Callable
from typing import NamedTuple

import torch

from custom_modules.data.trials import Trial
from custom_modules.errors import InputError


class TrialPairs(NamedTuple):
    """The trials kept (both sides embedded), with their enrolment and test rows
    ``(trials,)``."""

    kept: list[Trial]
    enrol: torch.Tensor
    test: torch.Tensor

    def labels(self) -> torch.Tensor:
        """``(trials,)`` booleans: same speaker."""
        return torch.tensor([t.label for t in self.kept], dtype=torch.bool)


class EmbeddedRows(NamedTuple):
    """Embeddings ``(utterances, dim)`` and the row of each utterance ID."""

    matrix: torch.Tensor
    row: dict[str, int]

    @classmethod
    def of(cls, embedded: dict[str, torch.Tensor]) -> "EmbeddedRows":
        """The embedded utterances, one row each, in ID order."""
        ids = sorted(embedded)
        return cls(torch.stack([embedded[i] for i in ids]), {i: n for n, i in enumerate(ids)})

    def pairs(self, trials: list[Trial], utterance_of: Callable[[str], str | None],
              name: str) -> TrialPairs:
        """The trials of list ``name`` whose two entries (``utterance_of`` maps an entry to
        its utterance ID, ``None`` when it was not found) were embedded; none is a one-line
        error."""
        rows = {}
        for entry in {e for t in trials for e in (t.enrol, t.test)}:
            utterance = utterance_of(entry)
            if utterance is not None and utterance in self.row:
                rows[entry] = self.row[utterance]
        kept = [t for t in trials if t.enrol in rows and t.test in rows]
        if not kept:
            raise InputError(f"{name}: no trial has both utterances embedded")
        return TrialPairs(kept, torch.tensor([rows[t.enrol] for t in kept]),
                          torch.tensor([rows[t.test] for t in kept]))

    def scores(self, scoring, pairs: TrialPairs) -> torch.Tensor:
        """``(trials,)`` scores of ``pairs`` with ``scoring`` (``scoring.backend.Scoring``)."""
        space = scoring.space(self.matrix)
        return scoring.scores(space, space, pairs.enrol, pairs.test)
