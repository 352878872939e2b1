"""Speaker verification end to end: trial lists -> embeddings -> scores -> metrics.

Every utterance named by any trial list (and the cohort) is embedded exactly once. Scores are
cosine similarities, optionally after subtracting the cohort's mean embedding; with a cohort
they are also S-normalised or AS-normalised; with ``lda_dim`` the same scores are computed
again after an LDA fitted on training utterances (variants ``lda+cosine``, ``lda+as-norm``);
with ``model_backend`` the model's back-end (its back-end sidecar when one is chosen, else the
one its folder was exported with) scores them too (variant ``model``, what ``SpeakerEncoder``
gives). Every variant is an ``scoring.backend.Scoring``,
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
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from custom_modules.data.catalogue import Utterance, read_utterance_csvs, resolve
from custom_modules.data.trials import Trial, read_trials, utterance_id
from custom_modules.errors import InputError
from custom_modules.evaluation.backend_fit import (
    Embedding,
    ScoringOptions,
    fit_scorings,
    variant_names,
)
from custom_modules.evaluation.metrics import act_dcf, cllr, verification_metrics
from custom_modules.evaluation.scoring_fit import fit_calibration
from custom_modules.inference.embedding import embed_utterances
from custom_modules.inference.speech import speech_detector
from custom_modules.models.embedder import Embedder
from custom_modules.scoring.backend import (
    Backend,
    Decisions,
    Scoring,
    Space,
    load_backend,
    rates_at,
)
from custom_modules.scoring.scores import Calibration, cosine_scores
from custom_modules.scoring.trial_rows import EmbeddedRows, TrialPairs
from custom_modules.sidecars import ModelState

logger = logging.getLogger(__name__)
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class TrialInputs:
    """The trials to score and where their audio is (``hparams/verify.yaml``).

    ``trial_lists``: name -> trial list file (``None`` leaves it out); ``utterance_csvs``:
    CSVs that map trial entries (IDs without extension) to files; ``data_folder``: where an
    entry they do not name is (``<data_folder>/<entry>``; ``None``: nowhere else);
    ``calibration_trials``: held-out trials that calibrate the primary variant (``None``:
    none, or the model's own calibration for ``model``), their entries mapped by
    ``calibration_csv`` too (``None``: by the others only); ``skip_missing``: drop the trials
    whose audio is missing or unusable instead of stopping.
    """

    trial_lists: dict[str, str | None]
    utterance_csvs: list[str]
    data_folder: str | None
    calibration_trials: str | None
    calibration_csv: str | None
    skip_missing: bool


@dataclass(frozen=True)
class VariantOptions:
    """Which score variants there are and which one counts (``hparams/verify.yaml``).

    ``cohort_csv``: the training utterances the cohort and the LDA are drawn from (``None``:
    cosine only); ``model_backend``: whether the model's back-end scores too (variant
    ``model``, exactly as ``SpeakerEncoder`` scores with the same sidecars, calibrated as
    that back-end is); ``primary_variant``: the variant summaries report and calibration
    uses, one of those scored.
    """

    cohort_csv: str | None
    model_backend: bool
    primary_variant: str


@dataclass(frozen=True)
class EmbeddingOptions:
    """How utterances are embedded (``hparams/verify.yaml``): ``cache_folder`` keeps the
    embeddings (``None``: no cache), ``batch_seconds`` of padded audio per batch,
    ``speech_detection`` embeds each utterance's speech only (Silero VAD)."""

    cache_folder: str | None
    batch_seconds: float
    speech_detection: bool

    def embedding(self) -> Embedding:
        """The ``backend_fit.Embedding`` these options give (its speech detector loaded)."""
        return Embedding(self.cache_folder, self.batch_seconds,
                         speech_detector(self.speech_detection))


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


class _Trials(NamedTuple):
    """The trials read: each list's file and trials, the calibration trials (or ``None``),
    and the utterance of every entry found."""

    lists: dict[str, tuple[str, list[Trial]]]
    calibration: list[Trial] | None
    found: dict[str, Utterance]

    def utterance_of(self, entry: str) -> str | None:
        """The ID of the utterance ``entry`` names, ``None`` when it was not found."""
        return self.found[entry].id if entry in self.found else None


class _Scorer(NamedTuple):
    """The embedded utterances and each variant's scoring, with its space of them (computed
    once for all lists)."""

    rows: EmbeddedRows
    scorings: dict[str, Scoring]
    spaces: dict[str, Space]

    @classmethod
    def of(cls, rows: EmbeddedRows, scorings: dict[str, Scoring]) -> "_Scorer":
        """Every variant's space of ``rows``."""
        return cls(rows, scorings, {variant: fitted.space(rows.matrix)
                                    for variant, fitted in scorings.items()})

    def scores(self, variant: str, pairs: TrialPairs) -> torch.Tensor:
        """``(trials,)`` scores of ``pairs`` with ``variant``."""
        space = self.spaces[variant]
        return self.scorings[variant].scores(space, space, pairs.enrol, pairs.test)


def trial_scores(embedded: dict[str, torch.Tensor], trials: list[Trial],
                 name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine scores and boolean labels of the trials of list ``name`` whose two utterances
    (by ID) were embedded."""
    rows = EmbeddedRows.of(embedded)
    pairs = rows.pairs(trials, utterance_id, name)
    return cosine_scores(rows.matrix, pairs.enrol, pairs.test), pairs.labels()


def run_verification(embedder: Embedder, state: ModelState, output_folder: str,
                     trials: TrialInputs, scoring: ScoringOptions, variants: VariantOptions,
                     embedding: EmbeddingOptions) -> Verification:
    """Score every trial list, write ``metrics.json`` and ``<list>/scores.txt`` under
    ``output_folder``, and return the metrics and scores.

    The variants are fitted on ``variants.cohort_csv`` as ``scoring`` says
    (``backend_fit.fit_scorings``); ``variants.model_backend`` adds the variant ``model``,
    the back-end of the model's ``state``.
    ``embedding.speech_detection`` embeds every utterance (trials and cohort) from its speech
    only. See ``hparams/verify.yaml`` for the rest.
    """
    names, backend = _variants(scoring, variants, embedding.speech_detection, state)
    read = _read_trials(trials)
    how = embedding.embedding()
    embedded, problems = embed_utterances(embedder, list(read.found.values()), how.cache_folder,
                                          how.batch_seconds, skip_bad=trials.skip_missing,
                                          speech=how.speech)
    rows = EmbeddedRows.of(embedded)
    scorings = _scorings(embedder, scoring, variants, how, backend)
    pairs = {name: rows.pairs(listed, read.utterance_of, name)
             for name, (_, listed) in read.lists.items()}
    scorer = _Scorer.of(rows, scorings)
    calibrator, calibration = _calibration(scorer, read, trials, variants, backend,
                                           state.backend)
    primary = variants.primary_variant
    metrics = {"schema_version": SCHEMA_VERSION, "primary_variant": primary,
               "variants": names, "precision": embedder.precision, "lists": {},
               "calibration": calibration, "skipped_utterances": problems}
    scores = {}
    for name, paired in pairs.items():
        scored = {variant: scorer.scores(variant, paired) for variant in scorings}
        llr = None if calibrator is None else calibrator(scored[primary])
        scores[name] = ListScores(paired.kept, paired.labels(), scored, llr)
        path, listed = read.lists[name]
        metrics["lists"][name] = _list_metrics(path, scores[name], len(listed) - len(paired.kept),
                                               None if backend is None else backend.decisions)
    _write_results(Path(output_folder), metrics, scores)
    return Verification(metrics, scores)


def _variants(scoring: ScoringOptions, variants: VariantOptions, speech_detection: bool,
              state: ModelState) -> tuple[list[str], Backend | None]:
    """The variants scored, in order, and the model's back-end (with ``model_backend``);
    options that cannot work are refused before anything is embedded."""
    names = variant_names(scoring, variants.cohort_csv is not None)
    backend = None
    if variants.model_backend:
        backend = load_backend(state.backend)
        if backend.speech_detection != speech_detection:
            raise InputError(f"{state.backend}: its back-end was fitted with "
                             f"speech_detection={backend.speech_detection}; set "
                             f"speech_detection: {backend.speech_detection} to score as the "
                             f"model does")
        names.append("model")
    if variants.primary_variant not in names:
        raise InputError(f"primary_variant {variants.primary_variant!r} is not among the "
                         f"variants scored ({', '.join(names)}): choose one of them (lda+ "
                         f"variants need lda_dim, normalised ones cohort_csv, model "
                         f"model_backend)")
    return names, backend


def _read_trials(trials: TrialInputs) -> _Trials:
    """Read the lists (``None`` ones left out) and the calibration trials, and find their
    utterances; missing ones are an error unless ``skip_missing``."""
    lists = {name: (path, read_trials(path)) for name, path in trials.trial_lists.items()
             if path is not None}
    if not lists:
        raise InputError("no trial list to score (every entry of trial_lists is null)")
    calibration = read_trials(trials.calibration_trials) if trials.calibration_trials else None
    catalogue = read_utterance_csvs(list(trials.utterance_csvs) + (
        [trials.calibration_csv] if trials.calibration_csv else []))
    every_list = [listed for _, listed in lists.values()] + ([calibration] if calibration else [])
    entries = {e for listed in every_list for t in listed for e in (t.enrol, t.test)}
    found, missing = resolve(entries, catalogue, trials.data_folder)
    if missing and not trials.skip_missing:
        raise InputError(f"{len(missing)} trial utterances are missing, e.g. "
                         f"{', '.join(missing[:3])}; set skip_missing=True to drop their trials")
    return _Trials(lists, calibration, found)


def _scorings(embedder: Embedder, scoring: ScoringOptions, variants: VariantOptions,
              embedding: Embedding, backend: Backend | None) -> dict[str, Scoring]:
    """Every variant's scoring: those fitted on the cohort CSV, then the model's back-end."""
    training = read_utterance_csvs([variants.cohort_csv]) if variants.cohort_csv else None
    scorings = fit_scorings(embedder, training, scoring, embedding)
    if backend is not None:
        scorings["model"] = backend.scoring
    return scorings


def _calibration(scorer: _Scorer, read: _Trials, trials: TrialInputs, variants: VariantOptions,
                 backend: Backend | None, backend_folder: Path
                 ) -> tuple[Calibration | None, dict | None]:
    """The primary variant's calibration (fitted on the calibration trials, else the model's
    own for ``model``, else none) and its entry in ``metrics.json``."""
    primary = variants.primary_variant
    if read.calibration:
        own = scorer.rows.pairs(read.calibration, read.utterance_of, trials.calibration_trials)
        try:
            calibrator = fit_calibration(scorer.scores(primary, own), own.labels().long())
        except InputError as error:
            raise InputError(f"{trials.calibration_trials}: {error}") from None
        source = trials.calibration_trials
    elif primary == "model" and backend.decisions is not None:
        calibrator, source = backend.decisions.calibration, f"{backend_folder} (its own)"
    else:
        return None, None
    return calibrator, {"file": source, "variant": primary, "scale": calibrator.scale,
                        "offset": calibrator.offset}


def _list_metrics(path: str, scores: ListScores, dropped: int,
                  decisions: Decisions | None) -> dict:
    """One list's entry of ``metrics.json``; with the model's ``decisions``, the rates at
    its operating points."""
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
    if decisions is not None:
        metrics["operating_points"] = _decision_errors(decisions, scores.variants["model"],
                                                       labels)
    return metrics


def _write_results(folder: Path, metrics: dict, scores: dict[str, ListScores]) -> None:
    """``<list>/scores.txt`` for every list, then ``metrics.json``."""
    for name, listed in scores.items():
        _write_scores(folder / safe_name(name) / "scores.txt", listed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")


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
