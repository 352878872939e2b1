"""``SpeakerEncoder``: a trained model in three lines.

    from custom_modules import SpeakerEncoder
    enc = SpeakerEncoder.from_hparams(source="exps/demo/pretrained")
    embedding = enc.encode_file("a.wav")  # torch.Size([192])

Loads from a local pretrained folder only (never a hub). Files of any sample rate are
resampled, stereo is averaged to mono; empty, silent, unreadable or too short audio (under
``MIN_SECONDS``) is a one-line error naming the file. Long recordings are embedded in windows.
Embeddings do not depend on batching (rows are computed at their exact lengths).

Speech detection is on by default (``speech_detection=True``, ``inference.speech``): the files
are embedded from their speech only; a file with less than ``MIN_SPEECH_SECONDS`` of speech is
a one-line error, a clipped or very quiet one a warning. ``embed`` tells the speech seconds an
embedding used; enrolments store them. ``encode_batch`` (waveforms, SpeechBrain's call) embeds
what it is given.
"""

import logging
import os
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F

from custom_modules.audio import audio_info
from custom_modules.data.catalogue import Utterance
from custom_modules.errors import InputError
from custom_modules.inference.embedding import embed_utterances, model_fingerprint
from custom_modules.inference.pretrained import load_embedder
from custom_modules.inference.speech import SpeechDetector
from custom_modules.interface.enrolment import EnrolmentDB
from custom_modules.models.embedder import Embedder

logger = logging.getLogger(__name__)
MIN_SECONDS = 0.5  # shortest audio accepted: shorter speech gives unreliable embeddings
DATABASE = "enrolments.sqlite"
OLD_STORE = "enrolled.pt"   # the enrolments of earlier versions: one profile per name


class Embedded(NamedTuple):
    """An embedding ``(dim,)``, the seconds of audio it was computed from, the duration."""

    embedding: torch.Tensor
    seconds: float
    duration: float


class SpeakerEncoder:
    """Embed, verify, enrol and identify speakers with a pretrained folder.

    The product on top of ``Embedder``: it takes files (any rate, stereo, long recordings),
    makes decisions with the model's saved threshold and keeps enrolments, with
    ``EncoderClassifier``'s way of loading (``from_hparams``) for SpeechBrain users.
    """

    def __init__(self, embedder: Embedder, database: str | os.PathLike | None = None,
                 speech_detection: bool = True):
        self.embedder = embedder
        self.database = Path(database) if database is not None else None
        self._enrolments: EnrolmentDB | None = None
        self.speech = SpeechDetector() if speech_detection else None

    @property
    def enrolments(self) -> EnrolmentDB:
        """The enrolment database (``interface.enrolment``): speakers, their recordings, list,
        rename, remove. Opened on first use; made with this model or refused."""
        if self._enrolments is None:
            if self.database is None:
                raise InputError("this SpeakerEncoder has no enrolment database (give "
                                 "database= or load it with from_hparams)")
            dim = self.embedder.embedding_model.config["lin_neurons"]
            self._enrolments = EnrolmentDB(self.database, model_fingerprint(self.embedder), dim)
            _import_old_store(self.database.with_name(OLD_STORE), self._enrolments)
        return self._enrolments

    @classmethod
    def from_hparams(cls, source: str | os.PathLike, savedir: str | os.PathLike | None = None,
                     run_opts: dict | None = None, speech_detection: bool = True
                     ) -> "SpeakerEncoder":
        """Load ``source`` (a local pretrained folder) on the CPU, or on ``run_opts["device"]``
        (SpeechBrain's way of asking, the only run option it takes). Enrolments are kept in
        ``savedir/enrolments.sqlite`` (default: ``source/enrolments.sqlite``)."""
        options = dict(run_opts or {})
        device = options.pop("device", "cpu")
        if options:
            raise InputError(f"run_opts {sorted(options)}: SpeakerEncoder takes only 'device'")
        database = Path(savedir if savedir is not None else source) / DATABASE
        return cls(load_embedder(source, device=device), database, speech_detection)

    @property
    def threshold(self) -> float | None:
        """Decision threshold saved with the model (chosen on validation trials)."""
        return self.embedder.threshold

    def encode_batch(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None
                     ) -> torch.Tensor:
        """Waveforms ``(batch, samples)`` at the model's rate -> ``(batch, 1, dim)``."""
        if wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        device = next(self.embedder.parameters()).device
        lengths = None if wav_lens is None else wav_lens.to(device)
        with torch.inference_mode():
            return self.embedder(wavs.to(device).float(), lengths).unsqueeze(1)

    def encode_file(self, path: str | os.PathLike, window_seconds: float = 60.0
                    ) -> torch.Tensor:
        """Embedding ``(dim,)`` of an audio file (recordings longer than ``window_seconds``
        are embedded in windows, so memory stays bounded)."""
        return self._encode_files([path], window_seconds)[0].embedding

    def embed(self, path: str | os.PathLike, window_seconds: float = 60.0) -> "Embedded":
        """The embedding of an audio file with the seconds of audio it used (the speech,
        with speech detection) and the file's duration."""
        return self._encode_files([path], window_seconds)[0]

    def verify_files(self, path_a: str | os.PathLike, path_b: str | os.PathLike,
                     threshold: float | None = None) -> tuple[float, bool]:
        """Cosine score of two files and the decision "same speaker" (score above the
        threshold saved with the model, unless ``threshold`` is given)."""
        threshold = self.threshold if threshold is None else threshold
        if threshold is None:
            raise InputError("this model has no saved decision threshold; pass threshold=")
        first, second = (e.embedding for e in self._encode_files([path_a, path_b]))
        score = float(F.cosine_similarity(first, second, dim=0))
        return score, score > threshold

    def enroll(self, name: str, paths: list[str | os.PathLike]) -> list[int]:
        """Add recordings of ``name`` to the enrolment database (a new speaker, or more
        recordings of a known one: its profile is then the mean over all of them); the new
        recordings' ids. Every file is embedded before anything is written.

        Each recording keeps its duration and the seconds it was embedded from (its speech;
        without speech detection, the whole file)."""
        if not paths:
            raise InputError(f"enroll {name!r}: no recordings given")
        embedded = self._encode_files(paths)
        return self.enrolments.add_recordings(
            name, [(str(path), e.embedding, e.duration, e.seconds)
                   for path, e in zip(paths, embedded, strict=True)])

    def identify(self, path: str | os.PathLike, top_k: int = 5) -> list[tuple[str, float]]:
        """The ``top_k`` enrolled speakers closest to a recording, with the cosine of the
        recording to each one's profile."""
        names, profiles = self.enrolments.profiles()
        if not names:
            raise InputError(f"no speaker is enrolled in {self.database} yet: call enroll() "
                             f"first")
        query = F.normalize(self.encode_file(path), dim=0)
        scores = profiles @ query.cpu()
        best = scores.topk(min(top_k, len(names)))
        return [(names[i], float(s)) for s, i in zip(best.values, best.indices, strict=True)]

    def _encode_files(self, paths: list, window_seconds: float = 60.0) -> list["Embedded"]:
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
            if self.speech is not None and not self.speech.enough(used):
                raise InputError(f"{utterance.wav}: {used:.2f} s of speech, at least "
                                 f"{self.speech.min_speech_seconds:g} s needed (or switch "
                                 f"speech detection off)")
            results.append(Embedded(embedded[utterance.id], used, duration))
        return results


def _import_old_store(store: Path, database: EnrolmentDB) -> None:
    """Move an earlier version's ``enrolled.pt`` (one profile per name) into the database,
    once: each profile becomes one recording named after the file; the old file is renamed
    ``enrolled.pt.imported``."""
    if not store.is_file():
        return
    imported = store.with_name(store.name + ".imported")
    try:                       # whichever process renames it first imports it
        os.replace(store, imported)
    except FileNotFoundError:
        return
    known = {speaker.name for speaker in database.speakers()}
    profiles = torch.load(imported, weights_only=True)
    for name, profile in profiles.items():
        if name not in known:
            database.add(name, f"{store.name} (imported)", profile, 0.0, 0.0)
    logger.warning("imported %d speakers of %s into %s (its model is not recorded: check they "
                   "were enrolled with this one)", len(profiles), store, database.path)
