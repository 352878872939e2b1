"""Conversations for diarization, stitched from recordings of known speakers.

Each recording has 2 to ``max_speakers`` speakers of one group (a corpus's held-out voices, a
council, one game's actors) and lasts ``min_minutes`` to ``max_minutes``; turns of 0.5 to 10 s
alternate between speakers (the next speaker is never the current one), separated by pauses of
0.1 to 1 s, and a share ``overlap_share`` of turns starts before the previous one ends (by 0.2
to 1 s). Every speaker of a recording speaks from one session of its own, so speakers differ in
condition as well as in voice. A turn is a stretch of the speaker's session audio: its
utterances with their leading and trailing silence trimmed, end to end.

``write_conversations`` writes ``<output_folder>/<part>/<id>.wav`` (16 kHz), ``<id>.rttm``
(the reference: one ``SPEAKER`` line per turn, overlaps kept) and ``conversations.csv``
(``ID, part, wav, rttm, duration, speakers``); a second call with the same options reuses
them. Everything follows from the seed of the caller's random generator.
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


# part -> groups; a group: speaker -> sessions; a session: its files in order.
Groups = dict[str, list[dict[str, list[list[str]]]]]


def write_conversations(parts: Groups, counts: dict[str, int], output_folder: str,
                        max_speakers: int, min_minutes: float, max_minutes: float,
                        overlap_share: float, rng: random.Random, options: dict) -> Path:
    """``counts[part]`` conversations of each part, each among the speakers of one group
    (the groups taken in turn), drawn with ``rng``; returns the CSV. ``options`` (the
    sources and the seed of ``rng``) decide whether an earlier set is reused."""
    out = Path(output_folder)
    listing, stamp = out / "conversations.csv", out / "options.json"
    options = {**options, "counts": counts, "max_speakers": max_speakers,
               "min_minutes": min_minutes, "max_minutes": max_minutes,
               "overlap_share": overlap_share}
    if listing.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == options:
        return listing
    rows = []
    for part, count in counts.items():
        groups = [g for g in parts[part] if len(g) >= 2]
        if count and not groups:
            raise InputError(f"conversations ({part}): no group of two speakers or more")
        (out / part).mkdir(parents=True, exist_ok=True)
        for number in range(count):
            group = groups[number % len(groups)]
            name = f"{part}_{number:03d}"
            speakers = rng.sample(sorted(group), rng.randint(2, min(max_speakers, len(group))))
            streams = {s: _stream(group[s][rng.randrange(len(group[s]))]) for s in speakers}
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
