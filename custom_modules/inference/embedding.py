"""Embedding many utterances: each once, batched by similar length, cached on disk.

Utterances are sorted by length and packed into batches of at most ``batch_seconds`` of padded
audio, so padding stays small. Recordings longer than ``window_seconds`` are cut into windows
whose embeddings are averaged, weighted by length, which keeps memory bounded. Results are
cached in one file per model (and precision), written every few minutes while embedding
(VoxCeleb1-E is hours of audio) and at the end; a later run embeds only what the cache lacks,
a different model (other weights) starts a new cache, and an ID that now names other audio
is redone. An utterance with an unreadable window is left out, not averaged from its other
windows.

With a ``speech`` detector (``inference.speech``), each window keeps only its speech before
it is embedded, windows are weighted by their speech, a window without speech counts for
nothing, and an utterance without any is a problem ("no speech found"); ``seconds`` then
receives, per utterance, the seconds of audio its embedding was computed from.
"""

import logging
import os
import time
from collections import Counter
from pathlib import Path

import torch
from tqdm import tqdm

from custom_modules.audio import AudioError, audio_info, read_audio
from custom_modules.data.catalogue import Utterance
from custom_modules.errors import InputError
from custom_modules.inference.speech import SpeechDetector
from custom_modules.models.embedder import Embedder

logger = logging.getLogger(__name__)
SAVE_EVERY_SECONDS = 300   # the cache is also written this often while embedding
WINDOW_SECONDS = 60.0      # longer recordings are embedded in windows of this (bounded memory)

def model_fingerprint(embedder: Embedder) -> str:
    """Short hash of the embedder's model weights (``Embedder.fingerprint``)."""
    return embedder.fingerprint()


def embed_utterances(embedder: Embedder, utterances: list[Utterance],
                     cache_folder: str | os.PathLike | None = None, batch_seconds: float = 120.0,
                     window_seconds: float = WINDOW_SECONDS, skip_bad: bool = False,
                     min_seconds: float = 0.1, speech: SpeechDetector | None = None,
                     seconds: dict[str, float] | None = None
                     ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Embed each distinct utterance once; returns ``{id: embedding}`` and the problems.

    Unreadable or unusable audio (including shorter than ``min_seconds``) raises its
    ``AudioError`` (``x.wav: silent (...)``) when one utterance is bad, or an ``InputError``
    with the count and the first few problems when several are, unless ``skip_bad``, which
    leaves those IDs out and returns their messages.
    """
    cache_path = None
    cached: dict[str, torch.Tensor] = {}
    if cache_folder is not None:
        kind = ("" if speech is None else "_speech") + \
            ("" if embedder.precision == "fp32" else f"_{embedder.precision}")
        cache_path = Path(cache_folder,
                          f"embeddings_{model_fingerprint(embedder)}{kind}.pt")
        if cache_path.is_file():
            cached = torch.load(cache_path, weights_only=True)
    todo = {u.id: u for u in utterances if _cache_key(u) not in cached}
    problems: list[AudioError] = []
    pieces = _windows(list(todo.values()), embedder.sample_rate, window_seconds, problems)
    if problems and not skip_bad:
        _raise(problems)
    pending = Counter(piece.id for piece in pieces)
    sums: dict[str, torch.Tensor] = {}
    weights: dict[str, int] = {}
    failed: set[str] = set()
    new: dict[str, torch.Tensor] = {}
    saved = time.monotonic()
    with torch.inference_mode():
        for batch in tqdm(_batches(pieces, batch_seconds * embedder.sample_rate),
                          desc="Embedding", unit="batch", disable=len(pieces) < 100):
            results = _embed_batch(embedder, batch, problems, min_seconds, speech)
            for piece, result in zip(batch, results, strict=True):
                pending[piece.id] -= 1
                if result is None:
                    failed.add(piece.id)
                elif result[1] is not None:          # (0, None): a window without speech
                    length, embedding = result
                    sums[piece.id] = sums.get(piece.id, 0) + embedding * length
                    weights[piece.id] = weights.get(piece.id, 0) + length
                if pending[piece.id] == 0 and piece.id not in failed:
                    if piece.id not in weights:
                        problems.append(AudioError(piece.wav, "no speech found"))
                        continue
                    new[_cache_key(todo[piece.id])] = sums.pop(piece.id) / weights[piece.id]
                    if seconds is not None:
                        seconds[piece.id] = weights[piece.id] / embedder.sample_rate
            if cache_path is not None and time.monotonic() - saved > SAVE_EVERY_SECONDS:
                _save(cache_path, {**cached, **new})   # a crash loses minutes, not hours
                saved = time.monotonic()
    if cache_path is not None and new:        # kept also when bad files stop the run
        _save(cache_path, {**cached, **new})
    if problems and not skip_bad:
        _raise(problems)
    everything = {**cached, **new}
    return {u.id: everything[_cache_key(u)] for u in utterances
            if _cache_key(u) in everything}, [str(p) for p in problems]


def _save(path: Path, embeddings: dict[str, torch.Tensor]) -> None:
    """Write the cache atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    torch.save(embeddings, partial)
    os.replace(partial, path)


def _raise(problems: list[AudioError]) -> None:
    """The one bad file's own error, or a count with the first few."""
    if len(problems) == 1:
        raise problems[0]
    raise InputError(f"{len(problems)} utterances cannot be embedded: "
                     f"{'; '.join(str(p) for p in problems[:3])}"
                     f"{'; ...' if len(problems) > 3 else ''}")


def _cache_key(utterance: Utterance) -> str:
    """Cache entries remember the file and segment, so a reused ID with other audio is
    embedded again."""
    return f"{utterance.id}\t{utterance.wav}\t{utterance.start}\t{utterance.stop}"


def _windows(utterances: list[Utterance], sample_rate: int, window_seconds: float,
             problems: list[AudioError]) -> list[Utterance]:
    """Split each utterance into windows of at most ``window_seconds`` (the last window
    absorbs a remainder shorter than half a window); each window is an ``Utterance`` with the
    ID of the one it comes from."""
    window = int(window_seconds * sample_rate)
    pieces = []
    for u in utterances:
        try:
            info = audio_info(u.wav)
        except AudioError as error:
            problems.append(error)
            continue
        stop = u.stop if u.stop is not None else round(info.duration * sample_rate)
        starts = list(range(u.start, stop, window))
        if len(starts) > 1 and stop - starts[-1] < window // 2:
            starts.pop()
        bounds = starts[1:] + [stop]
        pieces += [Utterance(u.id, u.wav, a, b) for a, b in zip(starts, bounds, strict=True)]
    return sorted(pieces, key=lambda p: p.stop - p.start)


def _batches(pieces: list[Utterance], budget_samples: float) -> list[list[Utterance]]:
    """Consecutive (length-sorted) pieces whose padded size stays within the budget."""
    batches: list[list[Utterance]] = []
    for piece in pieces:
        longest = piece.stop - piece.start
        if batches and longest * (len(batches[-1]) + 1) <= budget_samples:
            batches[-1].append(piece)
        else:
            batches.append([piece])
    return batches


def _embed_batch(embedder: Embedder, batch: list[Utterance], problems: list[AudioError],
                 min_seconds: float, speech: SpeechDetector | None
                 ) -> list[tuple[int, torch.Tensor | None] | None]:
    """Read and embed one batch; unreadable pieces give ``None`` and a problem, pieces
    without (enough) speech ``(0, None)``."""
    waves: list[torch.Tensor | None] = []
    silent: set[int] = set()
    for row, piece in enumerate(batch):
        try:
            wave = read_audio(piece.wav, embedder.sample_rate, piece.start, piece.stop,
                              min_duration=min_seconds)
        except AudioError as error:
            problems.append(error)
            waves.append(None)
            continue
        if speech is not None:
            wave, _ = speech(wave, piece.wav)
            if wave.numel() < min_seconds * embedder.sample_rate:
                silent.add(row)
                wave = None
        waves.append(wave)
    good = [w for w in waves if w is not None]
    if not good:
        return [(0, None) if row in silent else None for row in range(len(batch))]
    longest = max(w.numel() for w in good)
    padded = torch.zeros(len(good), longest)
    for row, wave in enumerate(good):
        padded[row, :wave.numel()] = wave
    lengths = torch.tensor([w.numel() for w in good])
    device = embedder.device
    embeddings = iter(embedder(padded.to(device), lengths.to(device)).float().cpu())
    return [(w.numel(), next(embeddings)) if w is not None else
            ((0, None) if row in silent else None) for row, w in enumerate(waves)]
