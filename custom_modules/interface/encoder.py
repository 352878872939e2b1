"""``SpeakerEncoder``: a trained model in three lines.

    from custom_modules import SpeakerEncoder
    enc = SpeakerEncoder.from_hparams(source="exps/demo/pretrained")
    embedding = enc.encode_file("a.wav")  # torch.Size([192])

    verdict = enc.verify_files("a.wav", "b.wav")  # score, same, llr, probability, ...

Loads from a local pretrained folder only (never a hub). Scores come from the folder's
back-end (``backend.json``: the LDA, AS-norm cohort, calibration and operating points the
export fitted, the verification recipe's ``model`` variant), or from a back-end sidecar
chosen with ``sidecars=`` (``custom_modules.sidecars``: the folder itself is never written);
``calibrate`` refits the calibration on your own labelled pairs into a new sidecar. Files of
any sample rate are
resampled, stereo is averaged to mono; empty, silent, unreadable or too short audio (under
``MIN_SECONDS``) is a one-line error naming the file. Long recordings are embedded in windows.
Embeddings do not depend on batching (rows are computed at their exact lengths).

Speech detection is on by default (``inference.speech``; off with ``speech_detection=False``
or for a model whose back-end was fitted without it): the files are embedded from their speech
only. Whether a file holds speech at all is checked either way: less than
``MIN_SPEECH_SECONDS`` of it is a one-line error (a warning when ``speech_detection=False`` was
asked for), a clipped or very quiet file a warning. ``embed`` tells the speech seconds an
embedding used; enrolments store them. ``encode_batch`` (waveforms, SpeechBrain's call) embeds
what it is given.
"""

import logging
import os
from pathlib import Path
from typing import NamedTuple

import torch

from custom_modules.audio import audio_info, read_audio
from custom_modules.data.catalogue import Utterance
from custom_modules.data.trials import read_trials
from custom_modules.diarization.pipeline import (
    centroids,
    read_settings,
    resegment,
    speaker_labels,
)
from custom_modules.diarization.rttm import Segment
from custom_modules.diarization.streaming import analyse_file
from custom_modules.errors import InputError
from custom_modules.evaluation.backend_fit import Embedding, trial_decisions
from custom_modules.inference.embedding import (
    WINDOW_SECONDS,
    embed_utterances,
    model_fingerprint,
)
from custom_modules.inference.precision import with_precision
from custom_modules.inference.pretrained import load_embedder
from custom_modules.inference.speech import SpeechDetector, speech_detector
from custom_modules.interface.enrolment import EnrolmentDB, default_store, import_old_store
from custom_modules.models.embedder import Embedder
from custom_modules.scoring.backend import (
    Backend,
    Scoring,
    far_rates,
    has_backend,
    load_backend,
)
from custom_modules.sidecars import ModelState, model_state, new_sidecar

logger = logging.getLogger(__name__)
MIN_SECONDS = 0.5  # shortest audio accepted: shorter speech gives unreliable embeddings
DATABASE = "enrolments.sqlite"
OLD_STORE = "enrolled.pt"   # the enrolments of earlier versions: one profile per name
BATCH_SECONDS = 120.0       # padded audio per embedding batch when calibrating
MIN_CALIBRATION_TRIALS = 20  # of each kind, target and non-target: fewer set no threshold


class Embedded(NamedTuple):
    """An embedding ``(dim,)``, the seconds of audio it was computed from, the duration."""

    embedding: torch.Tensor
    seconds: float
    duration: float


class Verdict(NamedTuple):
    """A verification: the back-end's score, the decision, the calibrated log-likelihood
    ratio and probability of "same speaker" at ``prior`` (``None`` when not calibrated), and
    the operating point and threshold the decision was taken at."""

    score: float
    same: bool
    llr: float | None
    probability: float | None
    prior: float
    operating_point: str
    threshold: float


class Candidate(NamedTuple):
    """An enrolled speaker and the verdict of the recording against its profile."""

    name: str
    verdict: Verdict


class Identification(NamedTuple):
    """The best-scoring enrolled speaker if accepted, else ``None`` (unknown), and the
    ranked candidates."""

    speaker: str | None
    candidates: list[Candidate]


class SpeakerEncoder:
    """Embed, verify, enrol and identify speakers with a pretrained folder.

    The product on top of ``Embedder``: it takes files (any rate, stereo, long recordings),
    scores them with the model's back-end (``scoring.backend``: the verification recipe's
    scoring), gives calibrated log-likelihood ratios and decisions at named operating points,
    keeps enrolments and identifies speakers (or none), with
    ``EncoderClassifier``'s way of loading (``from_hparams``) for SpeechBrain users.
    """

    def __init__(self, embedder: Embedder, database: str | os.PathLike | None = None,
                 speech_detection: bool | None = None, backend: Backend | None = None,
                 state: ModelState | None = None):
        """``backend``: the scoring (default: cosine, not calibrated); ``speech_detection``
        (default: as the back-end was fitted); ``state``: the folder and sidecars the model
        was loaded with (its diarization settings)."""
        self.embedder = embedder
        self.database = Path(database) if database is not None else None
        self._enrolments: EnrolmentDB | None = None
        self.backend = backend if backend is not None else \
            Backend(Scoring("cosine"), None, "eer", 0.5, True)
        self.state = state
        # Databases enrolled into by earlier versions name the model by this (its weights).
        self.earlier_fingerprint: str | None = None
        asked = speech_detection
        if speech_detection is None:
            speech_detection = self.backend.speech_detection
        elif speech_detection != self.backend.speech_detection and \
                self.backend.decisions is not None:
            logger.warning("speech detection %s, but this model's back-end was calibrated "
                           "with it %s: its LLRs and operating points may not hold (calibrate "
                           "it again)", "on" if speech_detection else "off",
                           "on" if self.backend.speech_detection else "off")
        self.speech = speech_detector(speech_detection)
        # Whether there is speech at all is checked whatever the regions embedded; asked to
        # embed without speech detection, a file without speech is a warning, not an error.
        self.gate = self.speech if self.speech is not None else SpeechDetector()
        self.gate_warns = asked is False

    @property
    def enrolments(self) -> EnrolmentDB:
        """The enrolment database (``interface.enrolment``): speakers, their recordings, list,
        rename, remove. Opened on first use; made with this model or refused."""
        if self._enrolments is None:
            if self.database is None:
                raise InputError("this SpeakerEncoder has no enrolment database (give "
                                 "database= or load it with from_hparams)")
            dim = self.embedder.embedding_model.config["lin_neurons"]
            self._enrolments = EnrolmentDB(self.database, model_fingerprint(self.embedder), dim,
                                           self.earlier_fingerprint)
            import_old_store(self.database.with_name(OLD_STORE), self._enrolments)
        return self._enrolments

    @classmethod
    def from_hparams(cls, source: str | os.PathLike, savedir: str | os.PathLike | None = None,
                     run_opts: dict | None = None, speech_detection: bool | None = None,
                     precision: str = "auto", sidecars: list[str | os.PathLike] | None = None
                     ) -> "SpeakerEncoder":
        """Load ``source`` (a local pretrained folder, with its back-end when it has one) on
        the CPU, or on ``run_opts["device"]`` (SpeechBrain's way of asking, the only run
        option it takes). ``sidecars``: state tuned for this model after its export (a
        back-end, a precision check, diarization settings: ``custom_modules.sidecars``), each
        used instead of the folder's of its kind. Enrolments are kept in
        ``savedir/enrolments.sqlite``, by default in the user's data folder, one database per
        model (``default_store``): never in the model folder, whose files come from whoever
        made it. Speech detection is on unless ``speech_detection`` is False or the back-end
        was fitted without it. ``precision`` (``inference.precision``): ``auto`` is the
        fastest that this machine supports and that passed its accuracy check for this model
        (``precisions.json``), else fp32."""
        options = dict(run_opts or {})
        device = options.pop("device", "cpu")
        if options:
            raise InputError(f"run_opts {sorted(options)}: SpeakerEncoder takes only 'device'")
        exact = load_embedder(source, device=device)
        state = model_state(source, sidecars, exact.fingerprint())
        backend = load_backend(state.backend) if has_backend(state.backend) else None
        embedder = with_precision(exact, precision, state.precisions)
        database = Path(savedir) / DATABASE if savedir is not None else \
            default_store(model_fingerprint(embedder))
        if savedir is None and Path(source, DATABASE).exists():
            logger.warning("%s: an enrolment database in the model folder is not used (a "
                           "folder's files are not trusted); enrolments go to %s (pass "
                           "savedir= to choose)", Path(source, DATABASE), database)
        encoder = cls(embedder, database, speech_detection, backend, state)
        encoder.earlier_fingerprint = exact.weights_fingerprint()
        return encoder

    @property
    def threshold(self) -> float | None:
        """The decision threshold on the score: the default operating point's, or, for a
        model without a calibrated back-end, its saved cosine threshold."""
        if self.backend.decisions is not None:
            return self.backend.threshold()
        return self.embedder.threshold

    def encode_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None
                     ) -> torch.Tensor:
        """Waveforms ``(batch, samples)`` at the model's rate -> ``(batch, 1, dim)``."""
        if wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        device = self.embedder.device
        lengths = None if wav_lens is None else wav_lens.to(device)
        with torch.inference_mode():
            return self.embedder(wavs.to(device).float(), lengths).unsqueeze(1)

    def encode_file(self, path: str | os.PathLike, window_seconds: float = WINDOW_SECONDS
                    ) -> torch.Tensor:
        """Embedding ``(dim,)`` of an audio file (recordings longer than ``window_seconds``
        are embedded in windows, so memory stays bounded)."""
        return self._encode_files([path], window_seconds)[0].embedding

    def embed(self, path: str | os.PathLike, window_seconds: float = WINDOW_SECONDS) -> "Embedded":
        """The embedding of an audio file with the seconds of audio it used (the speech,
        with speech detection) and the file's duration."""
        return self._encode_files([path], window_seconds)[0]

    def verify_files(self, path_a: str | os.PathLike, path_b: str | os.PathLike,
                     operating_point: str | None = None, threshold: float | None = None,
                     prior: float | None = None) -> "Verdict":
        """Score two files with the model's back-end and decide "same speaker".

        The decision is taken at ``operating_point`` (one the folder saved: ``eer``,
        ``far_1%``, ...; default: the folder's), or at ``threshold`` when given; a model
        without a calibrated back-end has only its saved cosine threshold. The log-likelihood
        ratio and the probability at ``prior`` (default: the folder's) come from the
        calibration, ``None`` without one."""
        embedded = self._encode_files([path_a, path_b])
        scoring = self.backend.scoring
        space = scoring.space(torch.stack([e.embedding.cpu() for e in embedded]))
        score = scoring.scores(space, space, torch.tensor([0]), torch.tensor([1]))
        return self._verdict(score, operating_point, threshold, prior)

    def _verdict(self, score: torch.Tensor, operating_point: str | None,
                 threshold: float | None, prior: float | None) -> "Verdict":
        """The verdict of one score ``(1,)``."""
        calibrated = self.backend.decisions is not None
        if threshold is None:
            if calibrated:
                operating_point = operating_point or self.backend.operating_point
                threshold = self.backend.threshold(operating_point)
            elif operating_point is not None:
                raise InputError(f"operating point {operating_point!r}: this model's scores "
                                 f"are not calibrated (calibrate it first)")
            elif self.embedder.threshold is not None:
                operating_point, threshold = "saved threshold", self.embedder.threshold
            else:
                raise InputError("this model has no saved decision threshold; pass "
                                 "threshold= (or calibrate it)")
        else:
            operating_point = "given threshold"
        prior = self.backend.prior if prior is None else prior
        return Verdict(float(score), float(score) > threshold,
                       float(self.backend.llr(score)) if calibrated else None,
                       float(self.backend.probability(score, prior)) if calibrated else None,
                       prior, operating_point, threshold)

    def enrol(self, name: str, paths: list[str | os.PathLike]) -> list[int]:
        """Add recordings of ``name`` to the enrolment database (a new speaker, or more
        recordings of a known one: its profile is then the mean over all of them); the new
        recordings' ids. Every file is embedded before anything is written.

        Each recording keeps its duration and the seconds it was embedded from (its speech;
        without speech detection, the whole file)."""
        if not paths:
            raise InputError(f"enrol {name!r}: no recordings given")
        embedded = self._encode_files(paths)
        return self.enrolments.add_recordings(
            name, [(str(path), e.embedding, e.duration, e.seconds)
                   for path, e in zip(paths, embedded, strict=True)])

    def identify(self, path: str | os.PathLike, top_k: int = 5,
                 operating_point: str | None = None, threshold: float | None = None
                 ) -> "Identification":
        """Who of the enrolled speakers speaks in a recording: the ``top_k`` closest
        profiles, each with its score and verdict (as ``verify_files``, at the same operating
        point), and the best one if it is accepted, else ``None`` ("unknown")."""
        if top_k < 1:
            raise InputError(f"top_k={top_k}: give at least 1 candidate to show")
        names, profiles = self.enrolments.profiles()
        if not names:
            raise InputError(f"no speaker is enrolled in {self.database} yet: call enrol() "
                             f"first")
        scoring = self.backend.scoring
        query = scoring.space(self.encode_file(path).cpu().unsqueeze(0))
        scores = scoring.cross_scores(query, scoring.space(profiles))[0]
        best = scores.topk(min(top_k, len(names)))
        candidates = [Candidate(names[i], self._verdict(s.unsqueeze(0), operating_point,
                                                        threshold, None))
                      for s, i in zip(best.values, best.indices, strict=True)]
        speaker = candidates[0].name if candidates[0].verdict.same else None
        return Identification(speaker, candidates)

    def calibrate(self, trials: str | os.PathLike, sidecar: str | os.PathLike,
                  audio_folder: str | os.PathLike | None = None,
                  target_false_accepts: list[float] | None = None) -> Backend:
        """Refit the calibration and operating points on your own labelled pairs (a trial
        list ``label file_a file_b``, files relative to ``audio_folder``) and write the
        back-end with them as the next version of the sidecar ``sidecar`` (the current
        decisions are kept in its history; the model folder is not written). The encoder
        uses it from then on; load it later with ``sidecars=[sidecar]``.
        ``target_false_accepts`` (default: the current ones) name the ``far_x%`` points.
        Unusable files are left out and counted in the log. Returns the new back-end."""
        if target_false_accepts is None:
            if self.backend.decisions is None:
                raise InputError("give the target false-accept rates (e.g. [0.01, 0.001]): "
                                 "this model has no operating points yet")
            target_false_accepts = far_rates(self.backend.decisions)
        embedding = Embedding(None, BATCH_SECONDS, self.speech)
        decisions = trial_decisions(self.embedder, self.backend.scoring, read_trials(trials),
                                    {}, str(audio_folder or ""), target_false_accepts,
                                    embedding, str(trials))
        if min(decisions.targets, decisions.nontargets) < MIN_CALIBRATION_TRIALS:
            raise InputError(f"{trials}: {decisions.targets} target and {decisions.nontargets} "
                             f"non-target trials could be scored; calibration needs at least "
                             f"{MIN_CALIBRATION_TRIALS} of each")
        backend = self.backend.recalibrated(decisions)
        with new_sidecar(sidecar, "backend", self.embedder.fingerprint(),
                         f"calibrate --trials {trials}") as staging:
            backend.save(staging)
        self.backend = backend
        return backend

    def diarize(self, path: str | os.PathLike, num_speakers: int | None = None,
                name_speakers: bool = False, operating_point: str | None = None
                ) -> list[Segment]:
        """Who spoke when in a recording: segments ``(start, end, speaker)`` in seconds
        (``diarization.pipeline``, with the settings of the diarization sidecar chosen, else
        the shipped defaults, which every model has). The number of speakers is
        estimated unless given. With ``name_speakers`` each speaker found is named after the
        enrolled speaker its voice matches (as ``identify`` decides, at
        ``operating_point``), else ``unknown_<n>``; speakers found are ``spk0``, ``spk1``...
        otherwise."""
        settings = read_settings(None if self.state is None else self.state.diarization)
        analysis = analyse_file(self.embedder, path, self.gate, settings.options)
        labels = speaker_labels(analysis, settings, num_speakers)
        names = None
        if name_speakers and len(labels):
            enrolled, profiles = self.enrolments.profiles()
            if not enrolled:
                raise InputError(f"no speaker is enrolled in {self.database} to name the "
                                 f"speakers with")
            scoring = self.backend.scoring
            found = centroids(analysis, labels)
            best = scoring.cross_scores(scoring.space(found),
                                        scoring.space(profiles)).max(dim=1)
            names = [enrolled[int(i)] if self._verdict(s.unsqueeze(0), operating_point, None,
                                                       None).same else f"unknown_{n}"
                     for n, (s, i) in enumerate(zip(best.values, best.indices, strict=True))]
        return resegment(analysis, labels, names)

    def _speech_seconds(self, path: str) -> float:
        """Seconds of speech the gate finds in a file embedded whole."""
        wave = read_audio(path, self.embedder.sample_rate)
        return sum(b - a for a, b in self.gate.segments(wave)) / self.embedder.sample_rate

    def _encode_files(self, paths: list, window_seconds: float = WINDOW_SECONDS
                      ) -> list["Embedded"]:
        """Every file embedded, or a one-line error for the first that cannot be (unreadable,
        too short, too little speech)."""
        utterances = [Utterance(f"{n}", str(p)) for n, p in enumerate(paths)]
        seconds: dict[str, float] = {}
        embedded, _ = embed_utterances(self.embedder, utterances, window_seconds=window_seconds,
                                       min_seconds=MIN_SECONDS, speech=self.speech,
                                       seconds=seconds)
        results = []
        for utterance in utterances:
            duration = audio_info(utterance.wav).duration
            used = seconds.get(utterance.id, duration)
            speech = used if self.speech is not None else self._speech_seconds(utterance.wav)
            if not self.gate.enough(speech):
                problem = (f"{utterance.wav}: {speech:.2f} s of speech, at least "
                           f"{self.gate.min_speech_seconds:g} s needed")
                if not self.gate_warns:
                    raise InputError(f"{problem} (or switch speech detection off)")
                logger.warning("%s; embedded anyway (speech detection is off)", problem)
            if not bool(torch.isfinite(embedded[utterance.id]).all()):
                raise InputError(f"{utterance.wav}: its embedding is not finite (the audio "
                                 f"cannot be scored)")
            results.append(Embedded(embedded[utterance.id], used, duration))
        return results
