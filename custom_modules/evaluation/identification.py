"""Speaker identification on held-out speakers, closed and open set, scored the way
``SpeakerEncoder.identify`` scores: profiles of enrolled speakers (the mean of their
recordings' unit embeddings) against each query, with the model's back-end.

The held-out speakers are split at random (reproducibly for a seed) into enrolled speakers,
each enrolled from ``enrol_files`` of their utterances, and impostors, never enrolled. Every
other utterance is a query. Reported:

- closed set (queries of enrolled speakers): top-1 and top-5 accuracy, and the rank curve;
- open set, at each operating point of the back-end (its threshold on the score): the
  detection and identification rate (a query of an enrolled speaker whose best profile is
  its own and passes the threshold) and the false-alarm rate (an impostor's query whose best
  profile passes it: any accepted answer is wrong), and both over every threshold (the curve).

``report.json`` holds the numbers; ``run_identification`` returns them with the curves.
"""

import json
import random
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from custom_modules.data.catalogue import Utterance, by_speaker, read_utterance_csvs
from custom_modules.errors import InputError
from custom_modules.inference.embedding import embed_utterances
from custom_modules.inference.speech import speech_detector
from custom_modules.models.embedder import Embedder
from custom_modules.scoring.backend import Backend, load_backend
from custom_modules.scoring.scores import speaker_means
from custom_modules.sidecars import ModelState


class Split(NamedTuple):
    """Enrolment utterances per enrolled speaker, and the queries with their speakers."""

    enrolment: dict[str, list[Utterance]]
    queries: list[Utterance]
    impostors: list[str]


class IdentificationRates(NamedTuple):
    """``report`` (the content of ``report.json``), the rank curve (share of genuine queries
    whose own speaker is within the first ``n + 1``), and the open-set curve: false-alarm and
    detection-and-identification rates over every threshold."""

    report: dict
    ranks: np.ndarray
    false_alarm: np.ndarray
    detection: np.ndarray


def split_speakers(utterances: list[Utterance], enrolled_share: float, enrol_files: int,
                   seed: int) -> Split:
    """Enrolled speakers (``enrolled_share`` of those with more than ``enrol_files``
    utterances) with their first ``enrol_files`` utterances (at random); the rest queries."""
    groups = {s: sorted(us, key=lambda u: u.id) for s, us in by_speaker(utterances).items()
              if len(us) > enrol_files}
    if len(groups) < 3:
        raise InputError(f"identification needs at least 3 speakers with more than "
                         f"{enrol_files} utterances; {len(groups)} have")
    rng = random.Random(seed)
    speakers = sorted(groups)
    rng.shuffle(speakers)
    count = min(max(2, round(enrolled_share * len(speakers))), len(speakers) - 1)
    enrolled, impostors = sorted(speakers[:count]), sorted(speakers[count:])
    enrolment, queries = {}, []
    for speaker in speakers:
        chosen = rng.sample(groups[speaker], len(groups[speaker]))
        if speaker in enrolled:
            enrolment[speaker] = chosen[:enrol_files]
            queries += chosen[enrol_files:]
        else:
            queries += chosen
    return Split(dict(sorted(enrolment.items())), sorted(queries, key=lambda u: u.id),
                 impostors)


def identification_scores(backend: Backend, profiles: torch.Tensor, queries: torch.Tensor
                          ) -> torch.Tensor:
    """Scores ``(queries, speakers)`` of query embeddings ``(queries, dim)`` against
    profiles ``(speakers, dim)``: ``SpeakerEncoder.identify``'s pair scores, all at once."""
    scoring = backend.scoring
    return scoring.cross_scores(scoring.space(queries), scoring.space(profiles))


def identification_rates(scores: torch.Tensor, truth: torch.Tensor, thresholds: dict[str, float]
                         ) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """Closed- and open-set rates from ``scores`` ``(queries, speakers)`` and each query's
    speaker column ``truth`` ``(queries,)`` (-1: an impostor).

    >>> s = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.2]])
    >>> rates, ranks, fa, dir_ = identification_rates(s, torch.tensor([0, 0, 1, -1]),
    ...                                               {"t": 0.5})
    >>> rates["top1"], rates["operating_points"]["t"]["detection"]
    (0.3333333333333333, 0.3333333333333333)
    """
    genuine = truth >= 0
    if not genuine.any() or genuine.all():
        raise InputError("identification needs queries of enrolled speakers and of impostors")
    own = scores[genuine].gather(1, truth[genuine].unsqueeze(1)).squeeze(1)
    rank = (scores[genuine] > own.unsqueeze(1)).sum(dim=1)     # 0: own speaker first
    ranks = np.array([(rank <= n).double().mean().item() for n in range(scores.shape[1])])
    best, best_speaker = scores.max(dim=1)
    correct = (best_speaker == truth) & genuine
    # Open set at every threshold: accept when the best score is above it.
    levels = np.unique(best.numpy())
    impostor_best = np.sort(best[~genuine].numpy())
    correct_best = np.sort(best[correct].numpy())
    false_alarm = 1 - np.searchsorted(impostor_best, levels, side="right") / len(impostor_best)
    detection = (len(correct_best) - np.searchsorted(correct_best, levels, side="right")) \
        / int(genuine.sum())
    points = {}
    for name, threshold in thresholds.items():
        accepted = best > threshold
        points[name] = {"threshold": threshold,
                        "detection": float((accepted & correct).sum()) / int(genuine.sum()),
                        "false_alarm": float((accepted & ~genuine).sum())
                        / int((~genuine).sum())}
    rates = {"top1": float(ranks[0]), "top5": float(ranks[min(4, len(ranks) - 1)]),
             "operating_points": points}
    return rates, ranks, np.concatenate([[1.0], false_alarm]), \
        np.concatenate([[float(correct.sum()) / int(genuine.sum())], detection])


def run_identification(embedder: Embedder, state: ModelState,
                       utterance_csvs: list[str], output_folder: str, enrolled_share: float,
                       enrol_files: int, cache_folder: str | None, batch_seconds: float,
                       seed: int) -> IdentificationRates:
    """Split, embed, score with the model's back-end (``state``'s) and write ``report.json``
    under ``output_folder``."""
    backend = load_backend(state.backend)
    if backend.decisions is None:
        raise InputError(f"{state.backend}: its back-end has no operating points (calibrate "
                         f"it first)")
    speech = speech_detector(backend.speech_detection)
    split = split_speakers(list(read_utterance_csvs(utterance_csvs).values()), enrolled_share,
                           enrol_files, seed)
    everything = [u for us in split.enrolment.values() for u in us] + split.queries
    embedded, problems = embed_utterances(embedder, everything, cache_folder, batch_seconds,
                                          skip_bad=True, speech=speech)
    enrolment = [(s, u) for s, us in split.enrolment.items() for u in us if u.id in embedded]
    names = sorted({s for s, _ in enrolment})
    profiles = F.normalize(speaker_means(torch.stack([embedded[u.id] for _, u in enrolment]),
                                         [s for s, _ in enrolment]), dim=1)
    queries = [u for u in split.queries if u.id in embedded]
    column = {name: n for n, name in enumerate(names)}
    truth = torch.tensor([column.get(u.speaker, -1) for u in queries])
    scores = identification_scores(backend, profiles,
                                   torch.stack([embedded[u.id] for u in queries]))
    thresholds = {name: point.threshold
                  for name, point in backend.decisions.operating_points.items()}
    rates, ranks, false_alarm, detection = identification_rates(scores, truth, thresholds)
    report = {"scoring": backend.scoring.variant, "precision": embedder.precision,
              "enrolled_speakers": len(names),
              "impostor_speakers": len(split.impostors), "enrol_files": enrol_files,
              "genuine_queries": int((truth >= 0).sum()),
              "impostor_queries": int((truth < 0).sum()), **rates,
              "skipped_utterances": problems}
    folder = Path(output_folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return IdentificationRates(report, ranks, false_alarm, detection)


def report_lines(report: dict) -> list[str]:
    """The report for people."""
    lines = [f"{report['enrolled_speakers']} enrolled speakers ({report['enrol_files']} files "
             f"each), {report['impostor_speakers']} impostors never enrolled; "
             f"{report['genuine_queries']} genuine and {report['impostor_queries']} impostor "
             f"queries; scoring {report['scoring']}",
             f"closed set: top-1 {100 * report['top1']:.1f} %, top-5 "
             f"{100 * report['top5']:.1f} %"]
    for name, point in report["operating_points"].items():
        lines.append(f"open set at {name:<9}: detected and identified "
                     f"{100 * point['detection']:.1f} %, false alarms "
                     f"{100 * point['false_alarm']:.1f} %")
    return lines
