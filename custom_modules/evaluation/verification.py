"""Speaker verification end to end: trial lists -> embeddings -> scores -> metrics.

Every utterance named by any trial list (and the cohort) is embedded exactly once. Scores are
cosine similarities, optionally after subtracting the cohort's mean embedding; with a cohort
they are also S-normalised or AS-normalised; with ``lda_dim`` the same scores are computed
again after an LDA fitted on training utterances (variants ``lda+cosine``, ``lda+as-norm``);
with held-out calibration trials the primary variant is also turned into log-likelihood
ratios. Writes ``scores.txt`` per list and one ``metrics.json``; numbers only (the recipe
draws the figures from what ``run_verification`` returns).

``metrics.json`` (schema version 1)::

    {"schema_version": 1,
     "primary_variant": "as-norm",          # named in the YAML; the one a summary reports
     "variants": ["cosine", "as-norm"],     # every variant scored, in order
     "lists": {"<name>": {"file": "...", "trials_dropped": 0,
                          "variants": {"<variant>": {"eer": ..., "eer_threshold": ...,
                                                     "min_dcf_0.01": ..., "trials": ...}},
                          "calibrated": null or {"act_dcf_0.01", "act_dcf_0.05", "cllr"}}},
     "calibration": null or {"file": "...", "variant": "...", "scale": ..., "offset": ...},
     "skipped_utterances": ["x.wav: silent (...)", ...]}
"""

import json
import logging
import random
from pathlib import Path
from typing import NamedTuple

import torch

from custom_modules.data.catalogue import Utterance, by_speaker, read_utterance_csvs, resolve
from custom_modules.data.trials import Trial, read_trials, utterance_id
from custom_modules.errors import InputError
from custom_modules.evaluation.metrics import act_dcf, cllr, verification_metrics
from custom_modules.evaluation.scoring import (
    CohortStats,
    cohort_stats,
    cosine_scores,
    fit_calibration,
    fit_lda,
    normalize_scores,
    speaker_means,
)
from custom_modules.inference.embedding import embed_utterances
from custom_modules.inference.speech import SpeechDetector
from custom_modules.models.embedder import Embedder

logger = logging.getLogger(__name__)
SCHEMA_VERSION = 1


class ListScores(NamedTuple):
    """One trial list's scored trials: the trials, their labels ``(trials,)`` (bool), each
    variant's scores ``(trials,)`` and, with calibration, the log-likelihood ratios."""

    trials: list[Trial]
    labels: torch.Tensor
    variants: dict[str, torch.Tensor]
    llr: torch.Tensor | None


class Verification(NamedTuple):
    """What ``run_verification`` returns: ``metrics`` (the content of ``metrics.json``) and
    the scores of each list (for figures)."""

    metrics: dict
    scores: dict[str, ListScores]


def choose_cohort(catalogue: dict[str, Utterance], kind: str, size: int,
                  per_speaker: int | None, seed: int) -> list[Utterance]:
    """Cohort utterances: ``per_speaker`` per speaker (``None``: all of them; the cohort is
    then each speaker's mean over all their utterances, as the ECAPA-TDNN paper's) for
    ``kind="speakers"``, or ``size`` at random (``"utterances"``), reproducibly for a
    ``seed``."""
    rng = random.Random(seed)
    items = sorted(catalogue.values(), key=lambda u: u.id)
    if kind == "speakers":
        return [u for us in by_speaker(items).values()
                for u in rng.sample(us, len(us) if per_speaker is None
                                    else min(per_speaker, len(us)))]
    if kind == "utterances":
        return rng.sample(items, min(size, len(items)))
    raise InputError(f"cohort must be 'speakers' or 'utterances', got {kind!r}")


def trial_scores(embedded: dict[str, torch.Tensor], trials: list[Trial],
                 name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine scores and boolean labels of the trials of list ``name`` whose two utterances
    (by ID) were embedded."""
    ids = sorted(embedded)
    row = {utt_id: n for n, utt_id in enumerate(ids)}
    index = {entry: row[utterance_id(entry)] for t in trials for entry in (t.enrol, t.test)
             if utterance_id(entry) in row}
    kept, enrol, test = _pairs(trials, index, name)
    scores = cosine_scores(torch.stack([embedded[i] for i in ids]), enrol, test)
    return scores, torch.tensor([t.label for t in kept], dtype=torch.bool)


def run_verification(embedder: Embedder, trial_lists: dict[str, str | None], output_folder: str,
                     utterance_csvs: list[str], data_folder: str | None, cohort_csv: str | None,
                     cohort: str, cohort_size: int, cohort_per_speaker: int | None,
                     top_k: int | None,
                     mean_subtraction: bool, lda_dim: int | None,
                     calibration_trials: str | None, calibration_csv: str | None,
                     skip_missing: bool, cache_folder: str | None, batch_seconds: float,
                     primary_variant: str, seed: int, speech_detection: bool
                     ) -> Verification:
    """Score every trial list, write ``metrics.json`` and ``<list>/scores.txt`` under
    ``output_folder``, and return the metrics and scores.

    A list given as ``None`` is left out. ``top_k=None`` gives S-norm instead of AS-norm.
    ``lda_dim`` fits the LDA on ``cohort_size`` random utterances of ``cohort_csv``.
    ``primary_variant`` must be one of the variants scored; calibration is fitted on it.
    ``speech_detection`` embeds every utterance (trials and cohort) from its speech only, as
    ``SpeakerEncoder`` does. See ``hparams/verify.yaml`` for the rest.
    """
    variants = _check_options(cohort_csv, cohort, top_k, lda_dim, primary_variant)
    lists = {name: (path, read_trials(path)) for name, path in trial_lists.items()
             if path is not None}
    if not lists:
        raise InputError("no trial list to score (every entry of trial_lists is null)")
    calibration = read_trials(calibration_trials) if calibration_trials else None
    catalogue = read_utterance_csvs(list(utterance_csvs)
                                    + ([calibration_csv] if calibration_csv else []))
    every_list = [trials for _, trials in lists.values()] + ([calibration] if calibration else [])
    entries = {e for trials in every_list for t in trials for e in (t.enrol, t.test)}
    found, missing = resolve(entries, catalogue, data_folder)
    if missing and not skip_missing:
        raise InputError(f"{len(missing)} trial utterances are missing, e.g. "
                         f"{', '.join(missing[:3])}; set skip_missing=True to drop their trials")
    speech = SpeechDetector() if speech_detection else None
    embedded, problems = embed_utterances(embedder, list(found.values()), cache_folder,
                                          batch_seconds, skip_bad=skip_missing, speech=speech)
    ids = sorted(embedded)
    matrix = torch.stack([embedded[i] for i in ids])
    position = {utt_id: i for i, utt_id in enumerate(ids)}
    index = {entry: position[u.id] for entry, u in found.items() if u.id in embedded}

    cohort_matrix, lda_pool = None, None
    if cohort_csv:
        training = read_utterance_csvs([cohort_csv])
        pool = _embedded_pool(embedder, training, cohort, cohort_size, cohort_per_speaker, seed,
                              cache_folder, batch_seconds, speech)
        cohort_matrix = speaker_means(*pool) if cohort == "speakers" else pool[0]
        if lda_dim is not None:
            lda_pool = pool if cohort == "utterances" else _embedded_pool(
                embedder, training, "utterances", cohort_size, 1, seed, cache_folder,
                batch_seconds, speech)
    if mean_subtraction:
        mean = (cohort_matrix if cohort_matrix is not None else matrix).mean(dim=0)
        matrix = matrix - mean
        cohort_matrix = cohort_matrix - mean if cohort_matrix is not None else None
        lda_pool = (lda_pool[0] - mean, lda_pool[1]) if lda_pool is not None else None
    spaces = {"": (matrix, cohort_matrix)}
    if lda_pool is not None:
        projection = fit_lda(*lda_pool, lda_dim)
        spaces["lda+"] = (projection(matrix), projection(cohort_matrix))
    if cohort_matrix is not None and top_k is not None and top_k > len(cohort_matrix):
        logger.warning("AS-norm: top_k=%d is more than the %d cohort entries; using %d",
                       top_k, len(cohort_matrix), len(cohort_matrix))
        top_k = len(cohort_matrix)
    norm_name = "s-norm" if top_k is None else "as-norm"
    pairs = {name: _pairs(trials, index, name) for name, (_, trials) in lists.items()}
    calibration_pairs = _pairs(calibration, index, calibration_trials) if calibration else None
    scored: dict[str, dict[str, torch.Tensor]] = {name: {} for name in lists}
    calibration_scored: dict[str, torch.Tensor] = {}
    for prefix, (embeddings, cohort_embeddings) in spaces.items():
        stats = None if cohort_embeddings is None else \
            cohort_stats(embeddings, cohort_embeddings, top_k)
        for name, (_, enrol, test) in pairs.items():
            scored[name].update(_score(embeddings, enrol, test, stats, norm_name, prefix))
        if calibration_pairs is not None:
            calibration_scored.update(_score(embeddings, *calibration_pairs[1:], stats,
                                             norm_name, prefix))
    calibrator = None
    if calibration_pairs is not None:
        labels = torch.tensor([t.label for t in calibration_pairs[0]])
        try:
            calibrator = fit_calibration(calibration_scored[primary_variant], labels)
        except InputError as error:
            raise InputError(f"{calibration_trials}: {error}") from None
    folder = Path(output_folder)
    results = {"schema_version": SCHEMA_VERSION, "primary_variant": primary_variant,
               "variants": variants, "lists": {},
               "calibration": None if calibrator is None else {
                   "file": calibration_trials, "variant": primary_variant,
                   "scale": calibrator.scale, "offset": calibrator.offset},
               "skipped_utterances": problems}
    scores = {}
    for name, (kept, _, _) in pairs.items():
        labels = torch.tensor([t.label for t in kept], dtype=torch.bool)
        llr = None if calibrator is None else calibrator(scored[name][primary_variant])
        scores[name] = ListScores(kept, labels, scored[name], llr)
        results["lists"][name] = _list_metrics(lists[name][0], scores[name],
                                               len(lists[name][1]) - len(kept))
        _write_scores(folder / safe_name(name) / "scores.txt", scores[name])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return Verification(results, scores)


def _embedded_pool(embedder: Embedder, training: dict[str, Utterance], kind: str, size: int,
                   per_speaker: int | None, seed: int, cache_folder: str | None,
                   batch_seconds: float, speech: SpeechDetector | None
                   ) -> tuple[torch.Tensor, list[str]]:
    """Training utterances chosen by ``choose_cohort``, embedded, with their speakers."""
    pool = choose_cohort(training, kind, size, per_speaker, seed)
    embedded, _ = embed_utterances(embedder, pool, cache_folder, batch_seconds, skip_bad=True,
                                   speech=speech)
    kept = [u for u in pool if u.id in embedded]
    return torch.stack([embedded[u.id] for u in kept]), [u.speaker for u in kept]


def _check_options(cohort_csv: str | None, cohort: str, top_k: int | None,
                   lda_dim: int | None, primary_variant: str) -> list[str]:
    """The variants these options score, in order; options that cannot work are refused
    before anything is embedded (that takes hours on VoxCeleb)."""
    if cohort not in ("speakers", "utterances"):
        raise InputError(f"cohort must be 'speakers' or 'utterances', got {cohort!r}")
    if top_k is not None and top_k < 2:
        raise InputError(f"AS-norm top_k={top_k} must be at least 2 (null: S-norm)")
    if lda_dim is not None and not cohort_csv:
        raise InputError("lda_dim needs cohort_csv: the training utterances to fit the LDA on")
    if lda_dim is not None and lda_dim < 1:
        raise InputError(f"LDA: lda_dim={lda_dim} must be at least 1")
    variants = ["cosine"] + (["s-norm" if top_k is None else "as-norm"] if cohort_csv else [])
    variants += [f"lda+{v}" for v in variants] if lda_dim is not None else []
    if primary_variant not in variants:
        raise InputError(f"primary_variant {primary_variant!r} is not among the variants "
                         f"scored ({', '.join(variants)}): choose one of them (lda+ variants "
                         f"need lda_dim, normalised ones cohort_csv)")
    return variants


def _pairs(trials: list[Trial], index: dict[str, int], name: str
           ) -> tuple[list[Trial], torch.Tensor, torch.Tensor]:
    """The trials whose two sides were embedded, with their enrolment and test rows."""
    kept = [t for t in trials if t.enrol in index and t.test in index]
    if not kept:
        raise InputError(f"{name}: no trial has both utterances embedded")
    return (kept, torch.tensor([index[t.enrol] for t in kept]),
            torch.tensor([index[t.test] for t in kept]))


def _score(matrix: torch.Tensor, enrol: torch.Tensor, test: torch.Tensor,
           stats: CohortStats | None, norm_name: str, prefix: str) -> dict[str, torch.Tensor]:
    """Cosine scores of the trials ``(enrol, test)``, and normalised ones when there are
    cohort statistics; keys carry ``prefix`` (the scoring space)."""
    cosine = cosine_scores(matrix, enrol, test)
    variants = {f"{prefix}cosine": cosine}
    if stats is not None:
        variants[f"{prefix}{norm_name}"] = normalize_scores(cosine, stats, enrol, test)
    return variants


def _list_metrics(path: str, scores: ListScores, dropped: int) -> dict:
    """One list's entry of ``metrics.json``."""
    labels = scores.labels
    metrics = {"file": path, "trials_dropped": dropped,
               "variants": {variant: verification_metrics(s[labels], s[~labels])
                            for variant, s in scores.variants.items()},
               "calibrated": None}
    if scores.llr is not None:
        llr = scores.llr
        metrics["calibrated"] = {
            "act_dcf_0.01": act_dcf(llr[labels], llr[~labels], p_target=0.01),
            "act_dcf_0.05": act_dcf(llr[labels], llr[~labels], p_target=0.05),
            "cllr": cllr(llr[labels], llr[~labels])}
    return metrics


def _write_scores(path: Path, scores: ListScores) -> None:
    """``enrol test label <variant>... [llr]``, one line per trial."""
    columns = dict(scores.variants)
    if scores.llr is not None:
        columns["llr"] = scores.llr
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(" ".join(["enrol", "test", "label", *columns]) + "\n")
        for i, t in enumerate(scores.trials):
            values = " ".join(f"{column[i]:.6f}" for column in columns.values())
            handle.write(f"{t.enrol} {t.test} {t.label} {values}\n")


def safe_name(name: str) -> str:
    """A trial list's name as a folder name.

    >>> safe_name("vox1 O/cleaned")
    'vox1_O_cleaned'
    """
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def summary_table(metrics: dict) -> str:
    """One line per trial list and score variant: EER and minDCF at 0.01 and 0.05; then the
    calibrated primary variant's actDCF and Cllr where there is calibration."""
    lines = [f"{'trials':<16}{'scores':<13}{'EER %':>8}{'minDCF 0.01':>13}{'minDCF 0.05':>13}"
             f"{'count':>9}"]
    for name, entry in metrics["lists"].items():
        for variant, m in entry["variants"].items():
            lines.append(f"{name:<16}{variant:<13}{m['eer']:>8.2f}{m['min_dcf_0.01']:>13.4f}"
                         f"{m['min_dcf_0.05']:>13.4f}{m['trials']:>9}")
        calibrated = entry["calibrated"]
        if calibrated is not None:
            lines.append(f"{name:<16}{'calibrated':<13}  actDCF(0.01) "
                         f"{calibrated['act_dcf_0.01']:.4f}  Cllr {calibrated['cllr']:.4f} "
                         f"({metrics['primary_variant']})")
    return "\n".join(lines)
