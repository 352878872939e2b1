"""Speaker verification end to end: trial lists -> embeddings -> scores -> metrics and plots.

Every utterance named by any trial list (and the cohort) is embedded exactly once. Scores are
cosine similarities, optionally after subtracting the cohort's mean embedding; with a cohort
they are also S-normalised or AS-normalised; with ``lda_dim`` the same scores are computed
again after an LDA fitted on training utterances (variants ``lda+cosine``, ``lda+as-norm``);
with held-out calibration trials the last variant is also turned into log-likelihood ratios.
Writes, per trial list, ``scores.txt``, a DET plot and a score histogram, and one
``metrics.json`` for everything.
"""

import csv
import json
import logging
import os
import random
from pathlib import Path

import torch

from custom_modules.embedding import Utterance, embed_utterances
from custom_modules.metrics import act_dcf, cllr, det_curve, verification_metrics
from custom_modules.plots import plot_det, plot_score_histogram
from custom_modules.pretrained import Embedder
from custom_modules.scoring import (
    Calibration,
    CohortStats,
    cohort_stats,
    cosine_scores,
    fit_calibration,
    fit_lda,
    normalize_scores,
    speaker_means,
)
from custom_modules.trials import Trial, read_trials, utterance_id

logger = logging.getLogger(__name__)


def read_utterance_csvs(paths: list[str]) -> dict[str, tuple[Utterance, str]]:
    """``ID -> (Utterance, speaker)`` from SpeechBrain CSVs (``ID,duration,wav,start,stop,
    spk_id``); a missing file or column is a one-line ``ValueError``."""
    rows: dict[str, tuple[Utterance, str]] = {}
    for path in paths:
        if not os.path.isfile(path):
            raise ValueError(f"{path}: utterance CSV not found")
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = {"ID", "wav"} - set(reader.fieldnames or [])
            if missing:
                raise ValueError(f"{path}: missing columns {sorted(missing)}")
            for row in reader:
                stop = row.get("stop")
                rows[row["ID"]] = (Utterance(row["ID"], row["wav"], int(row.get("start") or 0),
                                             int(stop) if stop else None), row.get("spk_id", ""))
    return rows


def resolve(entries: set[str], catalogue: dict[str, tuple[Utterance, str]],
            data_folder: str | None) -> tuple[dict[str, Utterance], list[str]]:
    """Map trial entries to utterances (through the CSVs, else ``data_folder/entry``);
    returns them and the entries that could not be found."""
    found, missing = {}, []
    for entry in sorted(entries):
        key = utterance_id(entry)
        if key in catalogue:
            found[entry] = catalogue[key][0]
        elif data_folder is not None and os.path.isfile(os.path.join(data_folder, entry)):
            found[entry] = Utterance(key, os.path.join(data_folder, entry))
        else:
            missing.append(entry)
    return found, missing


def choose_cohort(catalogue: dict[str, tuple[Utterance, str]], kind: str, size: int,
                  per_speaker: int, seed: int) -> tuple[list[Utterance], list[str]]:
    """Cohort utterances: ``per_speaker`` per speaker (``kind="speakers"``) or ``size`` at
    random (``"utterances"``); returns them with their speakers."""
    rng = random.Random(seed)
    items = sorted(catalogue.values(), key=lambda item: item[0].id)
    if kind == "speakers":
        by_speaker: dict[str, list[Utterance]] = {}
        for utterance, speaker in items:
            by_speaker.setdefault(speaker, []).append(utterance)
        chosen = [(u, s) for s, us in by_speaker.items()
                  for u in rng.sample(us, min(per_speaker, len(us)))]
    elif kind == "utterances":
        chosen = rng.sample(items, min(size, len(items)))
    else:
        raise ValueError(f"cohort must be 'speakers' or 'utterances', got {kind!r}")
    return [u for u, _ in chosen], [s for _, s in chosen]


def trial_scores(embedded: dict[str, torch.Tensor],
                 trials: list[Trial]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine scores and boolean labels of the trials whose two utterances (by ID) were
    embedded."""
    ids = sorted(embedded)
    row = {utt_id: n for n, utt_id in enumerate(ids)}
    kept = [t for t in trials if utterance_id(t.enrol) in row and utterance_id(t.test) in row]
    if not kept:
        raise ValueError("no trial has both utterances embedded")
    scores = cosine_scores(torch.stack([embedded[i] for i in ids]),
                           torch.tensor([row[utterance_id(t.enrol)] for t in kept]),
                           torch.tensor([row[utterance_id(t.test)] for t in kept]))
    return scores, torch.tensor([t.label for t in kept], dtype=torch.bool)


def run_verification(embedder: Embedder, trial_lists: dict[str, str], output_folder: str,
                     utterance_csvs: list[str] = (), data_folder: str | None = None,
                     cohort_csv: str | None = None, cohort: str = "speakers",
                     cohort_size: int = 20000, cohort_per_speaker: int = 3,
                     top_k: int | None = 300, mean_subtraction: bool = False,
                     lda_dim: int | None = None, calibration_trials: str | None = None,
                     calibration_csv: str | None = None,
                     skip_missing: bool = False, cache_folder: str | None = None,
                     batch_seconds: float = 120.0, seed: int = 1234) -> dict:
    """Score every trial list and write the results; returns ``{list: {variant: metrics}}``.

    A list given as ``None`` is left out. ``top_k=None`` gives S-norm instead of AS-norm.
    ``lda_dim`` fits the LDA on ``cohort_size`` random utterances of ``cohort_csv``. See
    ``hparams/verify.yaml`` for the rest.
    """
    lists = {name: read_trials(path) for name, path in trial_lists.items() if path is not None}
    if not lists:
        raise ValueError("no trial list to score (every entry of trial_lists is null)")
    if lda_dim is not None and not cohort_csv:
        raise ValueError("lda_dim needs cohort_csv: the training utterances to fit the LDA on")
    if calibration_trials:
        lists["calibration"] = read_trials(calibration_trials)
    catalogue = read_utterance_csvs(list(utterance_csvs)
                                    + ([calibration_csv] if calibration_csv else []))
    entries = {e for trials in lists.values() for t in trials for e in (t.enrol, t.test)}
    found, missing = resolve(entries, catalogue, data_folder)
    if missing and not skip_missing:
        raise ValueError(f"{len(missing)} trial utterances are missing, e.g. "
                         f"{', '.join(missing[:3])}; set skip_missing: True to drop their trials")
    embedded, problems = embed_utterances(embedder, list(found.values()), cache_folder,
                                          batch_seconds, skip_bad=skip_missing)
    usable = {entry for entry, u in found.items() if u.id in embedded}
    ids = sorted(embedded)
    matrix = torch.stack([embedded[i] for i in ids])
    position = {utt_id: i for i, utt_id in enumerate(ids)}
    index = {entry: position[found[entry].id] for entry in usable}

    cohort_matrix, lda_pool, projection = None, None, None
    if cohort_csv:
        training = read_utterance_csvs([cohort_csv])
        pool = _embedded_pool(embedder, training, cohort, cohort_size, cohort_per_speaker, seed,
                              cache_folder, batch_seconds)
        cohort_matrix = speaker_means(*pool) if cohort == "speakers" else pool[0]
        if lda_dim is not None:
            lda_pool = pool if cohort == "utterances" else _embedded_pool(
                embedder, training, "utterances", cohort_size, 1, seed, cache_folder,
                batch_seconds)
    if mean_subtraction:
        mean = (cohort_matrix if cohort_matrix is not None else matrix).mean(dim=0)
        matrix = matrix - mean
        cohort_matrix = cohort_matrix - mean if cohort_matrix is not None else None
        lda_pool = (lda_pool[0] - mean, lda_pool[1]) if lda_pool is not None else None
    if lda_pool is not None:
        projection = fit_lda(*lda_pool, lda_dim)
    if cohort_matrix is not None and top_k is not None and top_k > len(cohort_matrix):
        logger.warning("AS-norm: top_k=%d is more than the %d cohort entries; using %d",
                       top_k, len(cohort_matrix), len(cohort_matrix))
        top_k = len(cohort_matrix)
    norm_name = "s-norm" if top_k is None else "as-norm"
    spaces = {"": (matrix, cohort_matrix)}
    if projection is not None:
        spaces["lda+"] = (projection(matrix), projection(cohort_matrix))
    pairs = {name: _pairs(trials, index) for name, trials in lists.items()}
    scored: dict[str, dict[str, torch.Tensor]] = {name: {} for name in lists}
    for prefix, (embeddings, cohort_embeddings) in spaces.items():
        stats = None if cohort_embeddings is None else \
            cohort_stats(embeddings, cohort_embeddings, top_k)
        for name, (_, enrol, test) in pairs.items():
            variants = _score(embeddings, enrol, test, stats, norm_name)
            scored[name].update({prefix + variant: v for variant, v in variants.items()})
    calibration = None
    if calibration_trials:
        labels = torch.tensor([t.label for t in pairs.pop("calibration")[0]])
        calibration = fit_calibration(list(scored.pop("calibration").values())[-1], labels)
    results = {}
    for name, (kept, _, _) in pairs.items():
        results[name] = _report(name, scored[name], kept, len(lists[name]) - len(kept),
                                calibration, Path(output_folder, _safe(name)))
    results["problems"] = problems
    Path(output_folder).mkdir(parents=True, exist_ok=True)
    Path(output_folder, "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _embedded_pool(embedder: Embedder, training: dict[str, tuple[Utterance, str]], kind: str,
                   size: int, per_speaker: int, seed: int, cache_folder: str | None,
                   batch_seconds: float) -> tuple[torch.Tensor, list[str]]:
    """Training utterances chosen by ``choose_cohort``, embedded, with their speakers."""
    pool, speakers = choose_cohort(training, kind, size, per_speaker, seed)
    embedded, _ = embed_utterances(embedder, pool, cache_folder, batch_seconds, skip_bad=True)
    kept = [(u, s) for u, s in zip(pool, speakers, strict=True) if u.id in embedded]
    return torch.stack([embedded[u.id] for u, _ in kept]), [s for _, s in kept]


def _pairs(trials: list[Trial], index: dict[str, int]
           ) -> tuple[list[Trial], torch.Tensor, torch.Tensor]:
    """The trials whose two sides were embedded, with their enrolment and test rows."""
    kept = [t for t in trials if t.enrol in index and t.test in index]
    if not kept:
        raise ValueError("no trial has both utterances embedded")
    return (kept, torch.tensor([index[t.enrol] for t in kept]),
            torch.tensor([index[t.test] for t in kept]))


def _score(matrix: torch.Tensor, enrol: torch.Tensor, test: torch.Tensor,
           stats: CohortStats | None, norm_name: str) -> dict[str, torch.Tensor]:
    """Cosine scores of the trials ``(enrol, test)``, and normalised ones when there are
    cohort statistics."""
    variants = {"cosine": cosine_scores(matrix, enrol, test)}
    if stats is not None:
        variants[norm_name] = normalize_scores(variants["cosine"], stats, enrol, test)
    return variants


def _report(name: str, variants: dict[str, torch.Tensor], trials: list[Trial], dropped: int,
            calibration: Calibration | None, folder: Path) -> dict:
    """Metrics of each score variant; scores file, DET plot and histogram in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = torch.tensor([t.label for t in trials], dtype=torch.bool)
    metrics, curves = {}, {}
    for variant, scores in variants.items():
        metrics[variant] = verification_metrics(scores[labels], scores[~labels])
        metrics[variant]["trials_dropped"] = dropped
        curves[variant] = det_curve(scores[labels], scores[~labels])
    final = list(variants)[-1]
    if calibration is not None:
        llr = calibration(variants[final])
        variants["llr"] = llr
        metrics["calibrated"] = {"act_dcf_0.01": act_dcf(llr[labels], llr[~labels], p_target=0.01),
                                 "act_dcf_0.05": act_dcf(llr[labels], llr[~labels], p_target=0.05),
                                 "cllr": cllr(llr[labels], llr[~labels]),
                                 "scale": calibration.scale, "offset": calibration.offset}
    columns = list(variants)
    with open(folder / "scores.txt", "w", encoding="utf-8") as handle:
        handle.write(" ".join(["enrol", "test", "label", *columns]) + "\n")
        for i, t in enumerate(trials):
            values = " ".join(f"{variants[c][i]:.6f}" for c in columns)
            handle.write(f"{t.enrol} {t.test} {t.label} {values}\n")
    plot_det(curves, folder / "det.png", title=f"DET: {name}")
    scores = variants[final]
    plot_score_histogram(scores[labels].numpy(), scores[~labels].numpy(),
                         metrics[final]["eer_threshold"], folder / "score_histogram.png",
                         title=f"{name}: {final} scores")
    return metrics


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def summary_table(results: dict) -> str:
    """One line per trial list and score variant: EER and minDCF at 0.01 and 0.05."""
    lines = [f"{'trials':<16}{'scores':<13}{'EER %':>8}{'minDCF 0.01':>13}{'minDCF 0.05':>13}"
             f"{'count':>9}"]
    lists = {name: variants for name, variants in results.items() if name != "problems"}
    for name, variants in lists.items():
        for variant, m in variants.items():
            if "eer" in m:
                lines.append(f"{name:<16}{variant:<13}{m['eer']:>8.2f}{m['min_dcf_0.01']:>13.4f}"
                             f"{m['min_dcf_0.05']:>13.4f}{m['trials']:>9}")
            else:
                lines.append(f"{name:<16}{variant:<13}  actDCF(0.01) {m['act_dcf_0.01']:.4f}  "
                             f"Cllr {m['cllr']:.4f}")
    return "\n".join(lines)
