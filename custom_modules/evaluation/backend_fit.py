"""Fitting back-ends (``scoring.backend``) on data: the cohort and LDA utterances drawn from
the training set, embedded (through the embedding cache, so the verification recipe that
follows embeds nothing twice), and the decisions fitted on labelled trials.

``fit_scorings`` gives every variant the options allow (the verification recipe scores them
all); ``fit_model_backend`` is the training recipe's last step: one variant, calibrated on the
validation trials, written into the pretrained folder.
"""

import logging
import os
import random
from typing import NamedTuple

import torch

from custom_modules.data.catalogue import Utterance, by_speaker, read_utterance_csvs, resolve
from custom_modules.data.trials import Trial, read_trials
from custom_modules.errors import InputError
from custom_modules.evaluation.scoring_fit import fit_decisions, fit_lda
from custom_modules.files import within
from custom_modules.inference.embedding import embed_utterances
from custom_modules.inference.precision import with_precision
from custom_modules.inference.pretrained import read_tensor_file
from custom_modules.inference.speech import SpeechDetector, speech_detector
from custom_modules.models.embedder import Embedder
from custom_modules.scoring.backend import Backend, Decisions, Scoring
from custom_modules.scoring.scores import speaker_means
from custom_modules.scoring.trial_rows import EmbeddedRows
from custom_modules.sidecars import ModelState

logger = logging.getLogger(__name__)
COHORTS = ("speakers", "utterances", "classifier")


class ScoringOptions(NamedTuple):
    """How the scorings are fitted on training utterances (see ``hparams/verify.yaml``).

    ``cohort``: ``speakers`` (per speaker the mean of ``cohort_per_speaker`` utterances, all
    with ``None``), ``utterances`` (``cohort_size`` at random) or ``classifier`` (the model's
    own classifier rows: one direction per training speaker, e.g. VoxCeleb's 7,205 for
    SpeechBrain's model; the model's back-end only, nothing embedded); ``top_k``: AS-norm (``None``:
    S-norm over the whole cohort); ``lda_dim``: also an LDA back-end fitted on
    ``cohort_size`` random utterances; ``mean_subtraction``: subtract the cohort's mean first.
    """

    cohort: str
    cohort_size: int
    cohort_per_speaker: int | None
    top_k: int | None
    lda_dim: int | None
    mean_subtraction: bool
    seed: int


class Embedding(NamedTuple):
    """How utterances are embedded: cache folder, padded audio per batch, speech detector."""

    cache_folder: str | None
    batch_seconds: float
    speech: SpeechDetector | None


def variant_names(options: ScoringOptions, with_cohort: bool) -> list[str]:
    """The variants ``fit_scorings`` gives, in order; options that cannot work are refused
    before anything is embedded (that takes hours on VoxCeleb)."""
    if options.cohort not in COHORTS:
        raise InputError(f"cohort must be one of {', '.join(COHORTS)}, got {options.cohort!r}")
    if options.top_k is not None and options.top_k < 2:
        raise InputError(f"AS-norm top_k={options.top_k} must be at least 2 (null: S-norm)")
    if options.lda_dim is not None and not with_cohort:
        raise InputError("lda_dim needs cohort_csv: the training utterances to fit the LDA on")
    if options.mean_subtraction and not with_cohort:
        raise InputError("mean_subtraction needs cohort_csv: the mean is the cohort's")
    if options.lda_dim is not None and options.lda_dim < 1:
        raise InputError(f"LDA: lda_dim={options.lda_dim} must be at least 1")
    names = ["cosine"] + (["s-norm" if options.top_k is None else "as-norm"]
                          if with_cohort else [])
    return names + ([f"lda+{v}" for v in names] if options.lda_dim is not None else [])


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


def embedded_pool(embedder: Embedder, training: dict[str, Utterance], kind: str, size: int,
                  per_speaker: int | None, seed: int, embedding: Embedding
                  ) -> tuple[torch.Tensor, list[str]]:
    """Training utterances chosen by ``choose_cohort``, embedded ``(n, dim)``, with their
    speakers (unusable audio is left out)."""
    pool = choose_cohort(training, kind, size, per_speaker, seed)
    embedded, _ = embed_utterances(embedder, pool, embedding.cache_folder,
                                   embedding.batch_seconds, skip_bad=True,
                                   speech=embedding.speech)
    kept = [u for u in pool if u.id in embedded]
    if not kept:
        raise InputError("no cohort utterance could be embedded")
    return torch.stack([embedded[u.id] for u in kept]), [u.speaker for u in kept]


def fit_scorings(embedder: Embedder, training: dict[str, Utterance] | None,
                 options: ScoringOptions, embedding: Embedding,
                 classifier: torch.Tensor | None = None) -> dict[str, Scoring]:
    """Every variant the options give (``variant_names``); ``training=None``: cosine only.
    ``classifier`` ``(speakers, dim)``: the cohort of ``cohort: classifier``."""
    names = variant_names(options, training is not None)
    if training is None:
        return {"cosine": Scoring("cosine")}
    if options.cohort == "classifier":
        if classifier is None:
            raise InputError("cohort: classifier is the model's back-end's (the classifier "
                             "rows of its folder); choose speakers or utterances here")
        pool = None
        cohort = classifier.float()
    else:
        pool = embedded_pool(embedder, training, options.cohort, options.cohort_size,
                             options.cohort_per_speaker, options.seed, embedding)
        cohort = speaker_means(*pool) if options.cohort == "speakers" else pool[0]
    mean = cohort.mean(dim=0) if options.mean_subtraction else None
    top_k = options.top_k
    if top_k is not None and top_k > len(cohort):
        logger.warning("AS-norm: top_k=%d is more than the %d cohort entries; using %d",
                       top_k, len(cohort), len(cohort))
        top_k = len(cohort)
    scorings = {"cosine": Scoring("cosine", mean),
                names[1]: Scoring(names[1], mean, cohort=cohort, top_k=top_k)}
    if options.lda_dim is not None:
        lda_pool = pool if pool is not None and options.cohort == "utterances" else embedded_pool(
            embedder, training, "utterances", options.cohort_size, 1, options.seed, embedding)
        centred = lda_pool[0] if mean is None else lda_pool[0] - mean
        projection = fit_lda(centred, lda_pool[1], options.lda_dim)
        scorings["lda+cosine"] = Scoring("lda+cosine", mean, projection)
        scorings[f"lda+{names[1]}"] = Scoring(f"lda+{names[1]}", mean, projection, cohort,
                                              top_k)
    return scorings


def trial_decisions(embedder: Embedder, scoring: Scoring, trials: list[Trial],
                    catalogue: dict[str, Utterance], data_folder: str | None,
                    target_false_accepts: list[float], embedding: Embedding,
                    name: str) -> Decisions:
    """Embed the utterances of ``trials`` (found through ``catalogue``, else under
    ``data_folder``), score them with ``scoring`` and fit the decisions; trials whose audio
    is missing or unusable are left out (and counted in the log)."""
    entries = {e for t in trials for e in (t.enrol, t.test)}
    found, missing = resolve(entries, catalogue, data_folder)
    embedded, problems = embed_utterances(embedder, list(found.values()),
                                          embedding.cache_folder, embedding.batch_seconds,
                                          skip_bad=True, speech=embedding.speech)
    rows = EmbeddedRows.of(embedded)
    pairs = rows.pairs(trials, lambda e: found[e].id if e in found else None, name)
    if len(pairs.kept) < len(trials):
        logger.warning("%s: %d of %d trials left out (%d files missing, %d unusable)", name,
                       len(trials) - len(pairs.kept), len(trials), len(missing),
                       len(problems))
    return fit_decisions(rows.scores(scoring, pairs), pairs.labels().long(),
                         target_false_accepts, name)


def fit_model_backend(embedder: Embedder, state: ModelState,
                      destination: str | os.PathLike, training_csv: str,
                      valid_trials: str | None, valid_csv: str | None, variant: str,
                      options: ScoringOptions, target_false_accepts: list[float],
                      operating_point: str, prior: float, speech_detection: bool,
                      cache_folder: str | None, batch_seconds: float,
                      precision: str) -> Backend:
    """Fit the back-end ``variant`` on ``training_csv``, calibrate it on ``valid_trials``
    (no calibration when ``None``) and write it into ``destination``: the model folder
    itself at its export, else a back-end sidecar being written. The utterances are embedded
    at ``precision`` (``inference.precision``, ``auto`` as the ``state``'s precision check
    says; its cache in ``cache_folder`` is the one a verification at the same precision
    reads); the classifier cohort is the model folder's."""
    names = variant_names(options, True)
    if variant not in names:
        raise InputError(f"backend variant {variant!r} is not among those these options give "
                         f"({', '.join(names)})")
    embedding = Embedding(cache_folder, batch_seconds,
                          speech_detector(speech_detection))
    embedder = with_precision(embedder, precision, state.precisions)
    logger.info("back-end embeddings at %s", embedder.precision)
    classifier = model_classifier(state.folder) if options.cohort == "classifier" else None
    scoring = fit_scorings(embedder, read_utterance_csvs([training_csv]), options,
                           embedding, classifier)[variant]
    decisions = None
    if valid_trials is not None:
        catalogue = read_utterance_csvs([valid_csv]) if valid_csv else {}
        decisions = trial_decisions(embedder, scoring, read_trials(valid_trials), catalogue,
                                    None, target_false_accepts, embedding,
                                    f"validation trials {valid_trials}")
    backend = Backend(scoring, decisions, operating_point, prior, speech_detection)
    if decisions is not None:
        backend.threshold()    # the default operating point must exist
    backend.save(destination)
    logger.info("back-end %s written to %s", variant, destination)
    return backend


def model_classifier(folder: str | os.PathLike) -> torch.Tensor:
    """The classifier rows ``(speakers, dim)`` of a pretrained folder (``classifier.ckpt``,
    read with ``weights_only``), each a training speaker's direction."""
    path = within(folder, "classifier.ckpt")
    if not path.is_file():
        raise InputError(f"{folder}: no classifier.ckpt for cohort: classifier")
    state = read_tensor_file(path)
    weight = state.get("weight") if isinstance(state, dict) else None
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or len(weight) < 2 \
            or not bool(torch.isfinite(weight).all()):
        raise InputError(f"{path}: no finite (speakers, dim) weight to use as a cohort")
    return weight
