"""Speaker verification end to end: trial lists -> embeddings -> scores -> metrics.

Every utterance named by any trial list (and the cohort) is embedded exactly once. Scores are
cosine similarities, optionally after subtracting the cohort's mean embedding; with a cohort
they are also S-normalised or AS-normalised; with ``lda_dim`` the same scores are computed
again after an LDA fitted on training utterances (variants ``lda+cosine``, ``lda+as-norm``);
with ``model_backend`` the back-end saved in a pretrained folder scores them too (variant
``model``, what ``SpeakerEncoder`` gives). Every variant is an ``evaluation.backend.Scoring``,
the interface's own scoring path. With held-out calibration trials (or, for ``model``, the
folder's calibration) the primary variant is also turned into log-likelihood ratios. Writes
``scores.txt`` per list and one ``metrics.json``; numbers only (the recipe draws the figures
from what ``run_verification`` returns).

``metrics.json`` (schema version 1)::

    {"schema_version": 1,
     "primary_variant": "as-norm",          # named in the YAML; the one a summary reports
     "variants": ["cosine", "as-norm"],     # every variant scored, in order
     "precision": "fp32",                   # how the embeddings were computed
     "lists": {"<name>": {"file": "...", "trials_dropped": 0,
                          "variants": {"<variant>": {"eer": ..., "eer_threshold": ...,
                                                     "min_dcf_0.01": ..., "trials": ...}},
                          "calibrated": null or {"act_dcf_0.01", "act_dcf_0.05", "cllr"},
                          # with a calibrated model_backend: its operating points' rates
                          "operating_points": {"eer": {"threshold", "false_accept",
                                                       "false_reject"}, ...}}},
     "calibration": null or {"file": "...", "variant": "...", "scale": ..., "offset": ...},
     "skipped_utterances": ["x.wav: silent (...)", ...]}
"""

import json
import logging
from pathlib import Path
from typing import NamedTuple

import torch

from custom_modules.data.catalogue import read_utterance_csvs, resolve
from custom_modules.data.trials import Trial, read_trials, utterance_id
from custom_modules.errors import InputError
from custom_modules.evaluation.backend import Decisions, load_backend, rates_at
from custom_modules.evaluation.backend_fit import (
    Embedding,
    ScoringOptions,
    fit_scorings,
    variant_names,
)
from custom_modules.evaluation.metrics import act_dcf, cllr, verification_metrics
from custom_modules.evaluation.scoring import cosine_scores, fit_calibration
from custom_modules.evaluation.trial_rows import EmbeddedRows
from custom_modules.inference.embedding import embed_utterances
from custom_modules.inference.speech import speech_detector
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


def trial_scores(embedded: dict[str, torch.Tensor], trials: list[Trial],
                 name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine scores and boolean labels of the trials of list ``name`` whose two utterances
    (by ID) were embedded."""
    rows = EmbeddedRows.of(embedded)
    pairs = rows.pairs(trials, utterance_id, name)
    return cosine_scores(rows.matrix, pairs.enrol, pairs.test), pairs.labels()


def run_verification(embedder: Embedder, trial_lists: dict[str, str | None], output_folder: str,
                     utterance_csvs: list[str], data_folder: str | None, cohort_csv: str | None,
                     scoring: ScoringOptions, model_backend: str | None,
                     calibration_trials: str | None, calibration_csv: str | None,
                     skip_missing: bool, cache_folder: str | None, batch_seconds: float,
                     primary_variant: str, speech_detection: bool) -> Verification:
    """Score every trial list, write ``metrics.json`` and ``<list>/scores.txt`` under
    ``output_folder``, and return the metrics and scores.

    A list given as ``None`` is left out. The variants are fitted on ``cohort_csv`` as
    ``scoring`` says (``backend_fit.fit_scorings``); ``model_backend`` (a pretrained folder)
    adds the variant ``model``: the back-end saved with the model, exactly as
    ``SpeakerEncoder`` scores, calibrated by its folder. ``primary_variant`` must be one of
    the variants scored; ``calibration_trials`` fit its calibration (otherwise the model's
    own is used for ``model``). ``speech_detection`` embeds every utterance (trials and
    cohort) from its speech only. See ``hparams/verify.yaml`` for the rest.
    """
    variants = variant_names(scoring, cohort_csv is not None)
    backend = None
    if model_backend is not None:
        backend = load_backend(model_backend)
        if backend.speech_detection != speech_detection:
            raise InputError(f"{model_backend}: its back-end was fitted with speech_detection="
                             f"{backend.speech_detection}; set speech_detection: "
                             f"{backend.speech_detection} to score as the model does")
        variants.append("model")
    if primary_variant not in variants:
        raise InputError(f"primary_variant {primary_variant!r} is not among the variants "
                         f"scored ({', '.join(variants)}): choose one of them (lda+ variants "
                         f"need lda_dim, normalised ones cohort_csv, model model_backend)")
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
    embedding = Embedding(cache_folder, batch_seconds,
                          speech_detector(speech_detection))
    embedded, problems = embed_utterances(embedder, list(found.values()), cache_folder,
                                          batch_seconds, skip_bad=skip_missing,
                                          speech=embedding.speech)
    rows = EmbeddedRows.of(embedded)
    training = read_utterance_csvs([cohort_csv]) if cohort_csv else None
    scorings = fit_scorings(embedder, training, scoring, embedding)
    if backend is not None:
        scorings["model"] = backend.scoring

    def utterance_of(entry: str) -> str | None:
        return found[entry].id if entry in found else None

    pairs = {name: rows.pairs(trials, utterance_of, name)
             for name, (_, trials) in lists.items()}
    scored: dict[str, dict[str, torch.Tensor]] = {name: {} for name in pairs}
    spaces = {variant: fitted.space(rows.matrix) for variant, fitted in scorings.items()}
    for variant, fitted in scorings.items():
        for name, (_, enrol, test) in pairs.items():
            scored[name][variant] = fitted.scores(spaces[variant], spaces[variant], enrol, test)
    calibrator, source = None, None
    if calibration:
        own = rows.pairs(calibration, utterance_of, calibration_trials)
        space = spaces[primary_variant]
        try:
            calibrator = fit_calibration(
                scorings[primary_variant].scores(space, space, own.enrol, own.test),
                own.labels().long())
        except InputError as error:
            raise InputError(f"{calibration_trials}: {error}") from None
        source = calibration_trials
    elif primary_variant == "model" and backend.decisions is not None:
        calibrator, source = backend.decisions.calibration, f"{model_backend} (its own)"
    folder = Path(output_folder)
    results = {"schema_version": SCHEMA_VERSION, "primary_variant": primary_variant,
               "variants": variants, "precision": embedder.precision, "lists": {},
               "calibration": None if calibrator is None else {
                   "file": source, "variant": primary_variant,
                   "scale": calibrator.scale, "offset": calibrator.offset},
               "skipped_utterances": problems}
    scores = {}
    for name, (kept, _, _) in pairs.items():
        labels = torch.tensor([t.label for t in kept], dtype=torch.bool)
        llr = None if calibrator is None else calibrator(scored[name][primary_variant])
        scores[name] = ListScores(kept, labels, scored[name], llr)
        results["lists"][name] = _list_metrics(lists[name][0], scores[name],
                                               len(lists[name][1]) - len(kept))
        if backend is not None and backend.decisions is not None:
            results["lists"][name]["operating_points"] = _decision_errors(
                backend.decisions, scored[name]["model"], labels)
        _write_scores(folder / safe_name(name) / "scores.txt", scores[name])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return Verification(results, scores)


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


def _decision_errors(decisions: Decisions, scores: torch.Tensor, labels: torch.Tensor
                     ) -> dict[str, dict[str, float]]:
    """The false-accept and false-reject rates of the model's operating points (chosen on
    its validation trials) on one list's ``model`` scores."""
    return {name: rates_at(point.threshold, scores[labels], scores[~labels])._asdict()
            for name, point in decisions.operating_points.items()}


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
    """One line per trial list and score variant, the primary variant first: EER and minDCF
    at 0.01 and 0.05; then the calibrated primary variant's actDCF and Cllr where there is
    calibration."""
    lines = [f"{'trials':<16}{'scores':<13}{'EER %':>8}{'minDCF 0.01':>13}{'minDCF 0.05':>13}"
             f"{'count':>9}"]
    for name, entry in metrics["lists"].items():
        for variant, m in sorted(entry["variants"].items(),
                                 key=lambda item: item[0] != metrics["primary_variant"]):
            lines.append(f"{name:<16}{variant:<13}{m['eer']:>8.2f}{m['min_dcf_0.01']:>13.4f}"
                         f"{m['min_dcf_0.05']:>13.4f}{m['trials']:>9}")
        calibrated = entry["calibrated"]
        if calibrated is not None:
            lines.append(f"{name:<16}{'calibrated':<13}  actDCF(0.01) "
                         f"{calibrated['act_dcf_0.01']:.4f}  Cllr {calibrated['cllr']:.4f} "
                         f"({metrics['primary_variant']})")
        for point, rates in entry.get("operating_points", {}).items():
            lines.append(f"{name:<16}{'model at':<13}  {point:<9} false accepts "
                         f"{100 * rates['false_accept']:.2f} %, false rejects "
                         f"{100 * rates['false_reject']:.2f} %")
    return "\n".join(lines)
