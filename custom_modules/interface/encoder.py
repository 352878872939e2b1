"""``SpeakerEncoder``: a trained model in three lines.

    from custom_modules import SpeakerEncoder
    enc = SpeakerEncoder.from_hparams(source="exps/demo/pretrained")
    embedding = enc.encode_file("a.wav")  # torch.Size([192])

Loads from a local pretrained folder only (never a hub). Files of any sample rate are
resampled, stereo is averaged to mono; empty, silent, unreadable or too short audio (under
``MIN_SECONDS``) is a one-line error naming the file. Long recordings are embedded in windows.
Embeddings do not depend on batching (rows are computed at their exact lengths).
"""

import os
from pathlib import Path

import torch
import torch.nn.functional as F

from custom_modules.data.catalogue import Utterance
from custom_modules.errors import InputError
from custom_modules.inference.embedding import embed_utterances
from custom_modules.inference.pretrained import load_embedder
from custom_modules.models.embedder import Embedder

MIN_SECONDS = 0.5  # shortest audio accepted: shorter speech gives unreliable embeddings


class SpeakerEncoder:
    """Embed, verify, enrol and identify speakers with a pretrained folder.

    The product on top of ``Embedder``: it takes files (any rate, stereo, long recordings),
    makes decisions with the model's saved threshold and keeps enrolments, with
    ``EncoderClassifier``'s way of loading (``from_hparams``) for SpeechBrain users.
    """

    def __init__(self, embedder: Embedder, store: str | os.PathLike | None = None):
        self.embedder = embedder
        self.store = Path(store) if store is not None else None
        self.enrolled: dict[str, torch.Tensor] = {}
        if self.store is not None and self.store.is_file():
            self.enrolled = torch.load(self.store, weights_only=True)

    @classmethod
    def from_hparams(cls, source: str | os.PathLike, savedir: str | os.PathLike | None = None,
                     run_opts: dict | None = None) -> "SpeakerEncoder":
        """Load ``source`` (a local pretrained folder) on the CPU, or on ``run_opts["device"]``
        (SpeechBrain's way of asking, the only run option it takes). Enrolments are kept in
        ``savedir/enrolled.pt`` (default: ``source/enrolled.pt``)."""
        options = dict(run_opts or {})
        device = options.pop("device", "cpu")
        if options:
            raise InputError(f"run_opts {sorted(options)}: SpeakerEncoder takes only 'device'")
        store = Path(savedir if savedir is not None else source) / "enrolled.pt"
        return cls(load_embedder(source, device=device), store)

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
        return self._encode_files([path], window_seconds)[0]

    def verify_files(self, path_a: str | os.PathLike, path_b: str | os.PathLike,
                     threshold: float | None = None) -> tuple[float, bool]:
        """Cosine score of two files and the decision "same speaker" (score above the
        threshold saved with the model, unless ``threshold`` is given)."""
        threshold = self.threshold if threshold is None else threshold
        if threshold is None:
            raise InputError("this model has no saved decision threshold; pass threshold=")
        first, second = self._encode_files([path_a, path_b])
        score = float(F.cosine_similarity(first, second, dim=0))
        return score, score > threshold

    def enroll(self, name: str, paths: list[str | os.PathLike]) -> None:
        """Enrol ``name`` from one or more recordings (their mean unit embedding), and save
        the enrolment store."""
        if not paths:
            raise InputError(f"enroll {name!r}: no recordings given")
        embeddings = F.normalize(torch.stack(self._encode_files(paths)), dim=1)
        self.enrolled[name] = F.normalize(embeddings.mean(dim=0), dim=0)
        if self.store is not None:
            self.store.parent.mkdir(parents=True, exist_ok=True)
            partial = self.store.with_suffix(".part")
            torch.save(self.enrolled, partial)
            os.replace(partial, self.store)

    def identify(self, path: str | os.PathLike, top_k: int = 5) -> list[tuple[str, float]]:
        """The ``top_k`` enrolled speakers closest to a recording, with cosine scores."""
        if not self.enrolled:
            raise InputError("no speaker is enrolled yet: call enroll() first")
        names = list(self.enrolled)
        query = F.normalize(self.encode_file(path), dim=0)
        scores = torch.stack([self.enrolled[n] for n in names]) @ query
        best = scores.topk(min(top_k, len(names)))
        return [(names[i], float(s)) for s, i in zip(best.values, best.indices, strict=True)]

    def _encode_files(self, paths: list, window_seconds: float = 60.0) -> list[torch.Tensor]:
        utterances = [Utterance(f"{n}", str(p)) for n, p in enumerate(paths)]
        embedded, _ = embed_utterances(self.embedder, utterances, window_seconds=window_seconds,
                                       min_seconds=MIN_SECONDS)
        return [embedded[u.id] for u in utterances]
