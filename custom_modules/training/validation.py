"""Validation during training, bounded: a fixed subset of the validation trials, each utterance
cropped, so that an epoch's validation takes seconds on a GPU rather than minutes.

On VoxCeleb the validation speakers have about 20,000 utterances of 8 s on average; embedding
all of them at full length after every epoch, on one process while the others wait, costs
more than it tells. ``BoundedValidation`` keeps the trials, in the list's order, whose
utterances fit in ``max_utterances`` (the same subset every epoch, so EERs compare across
epochs), and embeds at most ``max_seconds`` of each utterance.

Example
-------
>>> from custom_modules.data.trials import Trial
>>> from custom_modules.data.catalogue import Utterance
>>> trials = [Trial(1, "a/1.wav", "a/2.wav"), Trial(0, "a/1.wav", "b/1.wav"),
...           Trial(0, "c/1.wav", "d/1.wav")]
>>> catalogue = {i: Utterance(i, f"{i}.wav", 0, 160000) for i in ("a/1", "a/2", "b/1",
...              "c/1", "d/1")}
>>> kept, utterances = bounded_subset(trials, catalogue, max_utterances=3, max_samples=32000)
>>> len(kept), sorted(u.id for u in utterances), utterances[0].stop
(2, ['a/1', 'a/2', 'b/1'], 32000)
"""

import logging
import time

from custom_modules.data.catalogue import Utterance, read_utterance_csvs
from custom_modules.data.trials import Trial, read_trials, utterance_id
from custom_modules.errors import InputError
from custom_modules.evaluation.metrics import eer
from custom_modules.evaluation.verification import trial_scores
from custom_modules.inference.embedding import embed_utterances
from custom_modules.models.embedder import Embedder

logger = logging.getLogger(__name__)


def bounded_subset(trials: list[Trial], catalogue: dict[str, Utterance],
                   max_utterances: int | None, max_samples: int | None
                   ) -> tuple[list[Trial], list[Utterance]]:
    """The trials, in order, whose utterances fit in ``max_utterances`` (``None``: all), and
    those utterances, each cut to its first ``max_samples`` (``None``: whole)."""
    chosen: dict[str, Utterance] = {}
    kept = []
    for trial in trials:
        ids = [utterance_id(e) for e in (trial.enrol, trial.test)]
        missing = [i for i in ids if i not in catalogue]
        if missing:
            raise InputError(f"validation trial {trial.enrol} {trial.test}: {missing[0]} is "
                             f"not in the validation CSV")
        new = {i for i in ids if i not in chosen}
        if max_utterances is not None and len(chosen) + len(new) > max_utterances:
            continue
        for i in new:
            chosen[i] = _cropped(catalogue[i], max_samples)
        kept.append(trial)
    return kept, list(chosen.values())


def _cropped(utterance: Utterance, max_samples: int | None) -> Utterance:
    if max_samples is None:
        return utterance
    stop = utterance.start + max_samples
    if utterance.stop is not None:
        stop = min(stop, utterance.stop)
    return utterance._replace(stop=stop)


class BoundedValidation:
    """EER on a fixed, bounded subset of the validation trials.

    Arguments
    ---------
    valid_csv, valid_trials : str
        The prepared validation utterances and trials.
    max_utterances : int, optional
        Utterances embedded per validation (``None``: every one the trials name).
    max_seconds : float, optional
        Seconds embedded per utterance (``None``: whole utterances).
    sample_rate : int
        Rate of the model's input.
    """

    def __init__(self, valid_csv: str, valid_trials: str, max_utterances: int | None,
                 max_seconds: float | None, sample_rate: int):
        max_samples = None if max_seconds is None else round(max_seconds * sample_rate)
        self.trials, self.utterances = bounded_subset(
            read_trials(valid_trials), read_utterance_csvs([valid_csv]), max_utterances,
            max_samples)
        self.name = valid_trials
        logger.info("validation: %d trials on %d utterances (%s)", len(self.trials),
                    len(self.utterances),
                    "whole" if max_seconds is None else f"at most {max_seconds:g} s each")

    def __call__(self, embedder: Embedder) -> dict[str, float]:
        """``{"EER": %, "threshold": ..., "seconds": ...}`` with the embedder's weights."""
        start = time.perf_counter()
        embedded, _ = embed_utterances(embedder, self.utterances, skip_bad=True)
        scores, labels = trial_scores(embedded, self.trials, self.name)
        value, threshold = eer(scores[labels], scores[~labels])
        return {"EER": 100 * value, "threshold": threshold,
                "seconds": time.perf_counter() - start}
