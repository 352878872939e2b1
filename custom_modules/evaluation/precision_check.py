"""Accuracy and speed of each inference precision (``inference.precision``) on a model's own
trial lists, scored the way ``SpeakerEncoder`` scores (the folder's back-end): what ``auto``
chooses from.

Every precision embeds every utterance of the lists (no cache, timed), its embeddings are
compared with fp32's (the lowest cosine) and the lists are scored with the same back-end. A
precision passes when, on every list, its EER is within that list's tolerance of fp32's
(``EER_TOLERANCE`` points, or one trial of the list's rarer kind where that is more: a list of
610 target trials cannot tell 0.05 points apart, and one flipped trial would fail a precision
whose embeddings agree with fp32's to a cosine of 0.9998) and
its lowest cosine is at least ``MIN_COSINE``. Precisions this machine does not support are
recorded as such. The result is written as ``precisions.json``, into the model folder by its
export, else into a precisions sidecar (``custom_modules.sidecars``)::

    {"cpu": "...", "flags": ["avx512_bf16", ...], "threads": 2, "checked": "...",
     "scoring": "lda+as-norm", "utterances": 2460,
     "precisions": {"fp32": {"supported": true, "passed": true, "eer": {"<list>": ...},
                             "eer_change": {...}, "min_cosine": 1.0,
                             "embeddings_per_second": ...}, ...}}
"""

import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from custom_modules.data.catalogue import read_utterance_csvs, resolve
from custom_modules.data.trials import read_trials
from custom_modules.errors import InputError
from custom_modules.evaluation.metrics import eer
from custom_modules.files import write_atomic
from custom_modules.inference.embedding import embed_utterances
from custom_modules.inference.precision import (
    CHECKS,
    EER_TOLERANCE,
    MIN_COSINE,
    PRECISIONS,
    cpu_description,
    supported,
    with_precision,
)
from custom_modules.inference.speech import speech_detector
from custom_modules.models.embedder import Embedder
from custom_modules.scoring.backend import Scoring, has_backend, load_backend
from custom_modules.scoring.trial_rows import EmbeddedRows
from custom_modules.sidecars import ModelState

FLAGS_SHOWN = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")


def check_precisions(embedder: Embedder, state: ModelState, destination: str | os.PathLike,
                     trial_lists: dict[str, str], utterance_csvs: list[str],
                     batch_seconds: float, precisions: list[str]) -> dict:
    """Check ``precisions`` (fp32, the reference, first) on ``trial_lists`` (entries found
    through ``utterance_csvs``), scored with the model's back-end (``state``'s; cosine when
    it has none), and write ``precisions.json`` into ``destination``; returns its content. A
    precision left out is not in the file, so ``auto`` never picks it."""
    if embedder.precision != "fp32":
        raise InputError("check the precisions from the fp32 model")
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown or not precisions or precisions[0] != "fp32":
        raise InputError(f"precisions {precisions}: fp32 first, then any of "
                         f"{', '.join(PRECISIONS[1:])}")
    backend = load_backend(state.backend) if has_backend(state.backend) else None
    scoring = backend.scoring if backend is not None else Scoring("cosine")
    speech = speech_detector(backend is not None and backend.speech_detection)
    lists = {name: read_trials(path) for name, path in trial_lists.items()
             if path is not None}   # null leaves a list of the base YAML out
    catalogue = read_utterance_csvs(utterance_csvs)
    entries = {e for trials in lists.values() for t in trials for e in (t.enrol, t.test)}
    found, missing = resolve(entries, catalogue, None)
    if missing:
        raise InputError(f"{len(missing)} trial utterances are not in the CSVs, e.g. "
                         f"{missing[0]}")
    utterances = list({u.id: u for u in found.values()}.values())
    device = str(embedder.device)
    results, reference = {}, None
    for precision in precisions:
        if not supported(precision, device):
            results[precision] = {"supported": False, "passed": False,
                                  "embeddings_per_second": 0.0}
            continue
        converted = with_precision(embedder, precision)
        start = time.perf_counter()
        embedded, _ = embed_utterances(converted, utterances, None, batch_seconds,
                                       skip_bad=True, speech=speech)
        rate = len(embedded) / (time.perf_counter() - start)
        rows = EmbeddedRows.of(embedded)
        if reference is None:
            reference = rows
        if rows.row != reference.row:
            raise InputError(f"{precision}: other utterances embedded than fp32's")
        rates, tolerances = _list_eers(scoring, rows, lists, found)
        baseline = results["fp32"]["eer"] if "fp32" in results else rates
        change = {name: rates[name] - baseline[name] for name in rates}
        cosine = float(F.cosine_similarity(rows.matrix, reference.matrix, dim=1).min())
        results[precision] = {
            "supported": True, "eer": rates, "eer_change": change, "min_cosine": cosine,
            "embeddings_per_second": rate,
            "passed": cosine >= MIN_COSINE and all(abs(c) <= tolerances[n]
                                                   for n, c in change.items())}
    name, flags = cpu_description()
    checks = {"cpu": name, "flags": sorted(flags & set(FLAGS_SHOWN)),
              "threads": torch.get_num_threads(), "device": device,
              "checked": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "scoring": scoring.variant, "utterances": len(reference[0]),
              "eer_tolerance": tolerances, "min_cosine": MIN_COSINE,
              "precisions": results}
    write_atomic(Path(destination, CHECKS), json.dumps(checks, indent=2) + "\n")
    return checks


def eer_tolerance(targets: int, nontargets: int) -> float:
    """The EER change (points) a precision may show on a list of ``targets`` target and
    ``nontargets`` non-target trials: ``EER_TOLERANCE``, or one trial of the rarer kind.

    >>> eer_tolerance(610, 2334), eer_tolerance(20000, 20000)
    (0.16393442622950818, 0.05)
    """
    return max(EER_TOLERANCE, 100 / min(targets, nontargets))


def _list_eers(scoring: Scoring, rows: EmbeddedRows, lists: dict, found: dict
               ) -> tuple[dict[str, float], dict[str, float]]:
    """EER (%) of every list with ``scoring`` on the embedded ``rows``, and its tolerance."""
    space = scoring.space(rows.matrix)     # once for every list
    rates, tolerances = {}, {}
    for name, trials in lists.items():
        pairs = rows.pairs(trials, lambda e: found[e].id, name)
        scores = scoring.scores(space, space, pairs.enrol, pairs.test)
        labels = pairs.labels()
        rates[name] = 100 * eer(scores[labels], scores[~labels])[0]
        tolerances[name] = eer_tolerance(int(labels.sum()), int((~labels).sum()))
    return rates, tolerances


def check_lines(checks: dict) -> list[str]:
    """The checks for people, one line per precision."""
    lines = [f"{checks['cpu']} ({', '.join(checks['flags'])}), {checks['threads']} threads, "
             f"{checks['utterances']} utterances, scoring {checks['scoring']}:"]
    for precision, entry in checks["precisions"].items():
        if not entry["supported"]:
            lines.append(f"  {precision:<10} not supported here")
            continue
        eers = ", ".join(f"{n} {e:.2f} % ({entry['eer_change'][n]:+.2f})"
                         for n, e in entry["eer"].items())
        lines.append(f"  {precision:<10} {entry['embeddings_per_second']:7.1f} utterances/s, "
                     f"EER {eers}, lowest cosine {entry['min_cosine']:.5f}: "
                     f"{'passed' if entry['passed'] else 'FAILED'}")
    return lines
