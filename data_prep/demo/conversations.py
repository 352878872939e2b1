"""Conversations for diarization, made from the demo corpus's held-out voices.

Each recording has 2 to ``max_speakers`` speakers and lasts ``min_minutes`` to
``max_minutes``; turns of 0.5 to 10 s alternate between speakers (the next speaker is never
the current one), separated by pauses of 0.1 to 1 s, and a share ``overlap_share`` of turns
starts before the previous one ends (by 0.2 to 1 s). Every speaker of a recording speaks from
one recording session of its own (the corpus renders each session through its own channel),
so speakers differ in condition as well as in voice. A turn is a stretch of the speaker's
session audio: its utterances with their leading and trailing silence trimmed, end to end.

The held-out voices are split into a development part (for tuning) and a test part (for
reporting), so no test voice is heard while tuning. Everything follows from ``seed``.

Writes ``<output_folder>/{dev,test}/<id>.wav`` (16 kHz), ``<id>.rttm`` (the reference: one
``SPEAKER`` line per turn, overlaps kept) and ``conversations.csv`` (``ID, part, wav, rttm,
duration, speakers``); a second call with the same options reuses them.
"""

import csv
import json
import random
from pathlib import Path

import numpy as np
import soundfile

from custom_modules.audio import read_audio
from custom_modules.diarization.rttm import Segment, write_rttm
from custom_modules.errors import InputError

SAMPLE_RATE = 16000
TRIM_DB = 40.0          # silence: 20 ms frames more than this below the utterance's loudest


def trim_silence(wave: np.ndarray) -> np.ndarray:
    """``wave`` without its leading and trailing silence (20 ms frames more than
    ``TRIM_DB`` below the loudest frame).

    >>> wave = np.concatenate([np.zeros(3200), 0.5 * np.ones(1600), np.zeros(800)])
    >>> len(trim_silence(wave))
    1600
    """
    frame = SAMPLE_RATE // 50
    frames = len(wave) // frame
    energy = (wave[:frames * frame].reshape(frames, frame) ** 2).mean(axis=1)
    loud = np.flatnonzero(energy > energy.max() * 10 ** (-TRIM_DB / 10))
    if not len(loud):
        return wave[:0]
    return wave[loud[0] * frame:(loud[-1] + 1) * frame]


def generate_conversations(corpus_folder: str, output_folder: str, dev_recordings: int,
                           test_recordings: int, max_speakers: int, min_minutes: float,
                           max_minutes: float, dev_voices: float, overlap_share: float,
                           seed: int) -> Path:
    """Write the conversation set (see the module docstring); returns its CSV."""
    options = {k: v for k, v in locals().items() if k not in ("corpus_folder", "output_folder")}
    out = Path(output_folder)
    listing = out / "conversations.csv"
    stamp = out / "options.json"
    if listing.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == options:
        return listing
    corpus = Path(corpus_folder)
    with open(corpus / "speakers.csv", newline="", encoding="utf-8") as handle:
        held_out = sorted(r["ID"] for r in csv.DictReader(handle) if r["split"] == "test")
    sessions: dict[str, dict[str, list[str]]] = {}
    with open(corpus / "utterances.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["spk_id"] in held_out:
                session = row["ID"].split("/")[1]
                sessions.setdefault(row["spk_id"], {}).setdefault(session, []).append(
                    row["wav"])
    rng = random.Random(seed)
    voices = held_out[:]
    rng.shuffle(voices)
    if len(voices) < 4:
        raise InputError(f"{corpus}: {len(voices)} held-out voices; the conversations need "
                         f"at least 4 (2 for tuning, 2 for the report)")
    cut = min(max(2, round(dev_voices * len(voices))), len(voices) - 2)
    parts = {"dev": (sorted(voices[:cut]), dev_recordings),
             "test": (sorted(voices[cut:]), test_recordings)}
    rows = []
    for part, (part_voices, count) in parts.items():
        (out / part).mkdir(parents=True, exist_ok=True)
        for number in range(count):
            name = f"{part}_{number:03d}"
            speakers = rng.sample(part_voices, rng.randint(2, min(max_speakers,
                                                                    len(part_voices))))
            streams = {s: _stream(sessions[s][rng.choice(sorted(sessions[s]))])
                       for s in speakers}
            minutes = rng.uniform(min_minutes, max_minutes)
            wave, turns = _converse(streams, minutes * 60, overlap_share, rng)
            soundfile.write(out / part / f"{name}.wav", wave, SAMPLE_RATE, subtype="PCM_16")
            write_rttm(out / part / f"{name}.rttm", name, turns)
            rows.append({"ID": name, "part": part, "wav": str(out / part / f"{name}.wav"),
                         "rttm": str(out / part / f"{name}.rttm"),
                         "duration": f"{len(wave) / SAMPLE_RATE:.2f}",
                         "speakers": len(speakers)})
    with open(listing, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    stamp.write_text(json.dumps(options) + "\n")
    return listing


def _stream(files: list[str]) -> np.ndarray:
    """A session's utterances, trimmed, end to end."""
    return np.concatenate([trim_silence(read_audio(f, SAMPLE_RATE).numpy()) for f in files])


def _converse(streams: dict[str, np.ndarray], seconds: float, overlap_share: float,
              rng: random.Random) -> tuple[np.ndarray, list[Segment]]:
    """Mix turns until ``seconds`` are filled; the waveform (peak 0.8) and the turns."""
    turns, pieces, now, previous = [], [], 0.0, None
    while now < seconds:
        speaker = rng.choice([s for s in streams if s != previous])
        stream = streams[speaker]
        length = min(rng.uniform(0.5, 10.0), len(stream) / SAMPLE_RATE)
        offset = rng.randint(0, len(stream) - int(length * SAMPLE_RATE))
        start = now + rng.uniform(0.1, 1.0)
        if turns and rng.random() < overlap_share:
            last = turns[-1]
            start = max(last.start, last.end - rng.uniform(0.2, min(1.0, last.end - last.start)))
        audio = stream[offset:offset + int(length * SAMPLE_RATE)]
        turns.append(Segment(round(start, 3), round(start + len(audio) / SAMPLE_RATE, 3),
                             speaker))
        pieces.append((int(start * SAMPLE_RATE), audio))
        now, previous = max(now, turns[-1].end), speaker
    wave = np.zeros(max(a + len(p) for a, p in pieces) + SAMPLE_RATE // 2)
    for at, audio in pieces:
        wave[at:at + len(audio)] += audio
    return 0.8 * wave / np.abs(wave).max(), turns
