"""A real-speech collection on disk: one source's recordings as 16 kHz mono wav in the
folder-per-speaker layout, and a table that says who speaks, where and in which session.

Layout written by ``write_collection``::

    <save_folder>/<speaker>/<recording>.wav         (long recordings: <recording>-<k>.wav)
    <save_folder>/utterances.csv                    entry,speaker,session,recording,
                                                    language,source,seconds
    <save_folder>/report.json                       counts, and every file left out and why

``entry`` is the file's path relative to ``save_folder`` (how trial lists name it);
``recording`` names the original file, so that trials never pair two pieces of one recording
as a target; ``session`` (a meeting, a game level) lets target trials cross sessions.
Recordings longer than ``chunk_seconds`` are cut into pieces of equal length (each at most
``chunk_seconds``); pieces and files shorter than ``min_seconds`` are left out and counted.
"""

import csv
import math
import os
from pathlib import Path
from typing import NamedTuple

from custom_modules.audio import AudioError, read_audio, write_wav
from custom_modules.errors import InputError
from data_prep.manifest import process_pool, worker_count, write_json

SAMPLE_RATE = 16000
TABLE = "utterances.csv"
REPORT = "report.json"
COLUMNS = ("entry", "speaker", "session", "recording", "language", "source", "seconds")


class Recording(NamedTuple):
    """One original file: where it is and who speaks in it."""

    path: str
    speaker: str
    session: str
    recording: str
    language: str
    source: str


class Piece(NamedTuple):
    """A row of ``utterances.csv``."""

    entry: str
    speaker: str
    session: str
    recording: str
    language: str
    source: str
    seconds: float


def _convert(job: tuple[Recording, str, float, float]) -> tuple[list[Piece], str | None]:
    """Write a recording's pieces; returns them, or the problem that left it out."""
    recording, save_folder, chunk_seconds, min_seconds = job
    try:
        wave = read_audio(recording.path, SAMPLE_RATE, min_duration=min_seconds)
    except AudioError as error:
        return [], error.problem
    pieces_count = max(1, math.ceil(len(wave) / (chunk_seconds * SAMPLE_RATE)))
    size = len(wave) // pieces_count
    pieces = []
    for k in range(pieces_count):
        piece = wave[k * size:(k + 1) * size]
        if len(piece) < min_seconds * SAMPLE_RATE:
            continue
        name = recording.recording if pieces_count == 1 else f"{recording.recording}-{k}"
        entry = f"{recording.speaker}/{name}.wav"
        target = Path(save_folder, entry)
        if not target.is_file():
            write_wav(target, piece, SAMPLE_RATE)
        pieces.append(Piece(entry, recording.speaker, recording.session, recording.recording,
                            recording.language, recording.source,
                            round(len(piece) / SAMPLE_RATE, 3)))
    return pieces, None if pieces else "no piece long enough"


def write_collection(save_folder: str | os.PathLike, recordings: list[Recording],
                     chunk_seconds: float, min_seconds: float, num_workers: int) -> dict:
    """Convert ``recordings`` into ``save_folder`` (see the module docstring) with
    ``num_workers`` processes (0: one per core); returns the report (also ``report.json``).
    A second run rewrites only the table and the report."""
    if chunk_seconds < 2 * min_seconds:
        raise InputError(f"chunk_seconds={chunk_seconds} must be at least twice "
                         f"min_seconds={min_seconds}")
    names = [f"{r.speaker}/{r.recording}" for r in recordings]
    if len(set(names)) != len(names):
        raise InputError(f"{save_folder}: two recordings of one speaker share a name")
    jobs = [(r, str(save_folder), chunk_seconds, min_seconds) for r in recordings]
    Path(save_folder).mkdir(parents=True, exist_ok=True)
    with process_pool(worker_count(num_workers)) as pool:
        results = list(pool.map(_convert, jobs, chunksize=8))
    pieces = sorted(p for found, _ in results for p in found)
    skipped = [{"file": r.path, "reason": problem}
               for r, (_, problem) in zip(recordings, results, strict=True) if problem]
    if not pieces:
        raise InputError(f"{save_folder}: none of the {len(recordings)} recordings is usable")
    with open(Path(save_folder, f"{TABLE}.part"), "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        writer.writerows(pieces)
    os.replace(Path(save_folder, f"{TABLE}.part"), Path(save_folder, TABLE))
    report = {"recordings": len(recordings), "recordings_skipped": len(skipped),
              "pieces": len(pieces), "speakers": len({p.speaker for p in pieces}),
              "hours": round(sum(p.seconds for p in pieces) / 3600, 3), "skipped": skipped}
    write_json(Path(save_folder, REPORT), report)
    return {k: v for k, v in report.items() if k != "skipped"}


def read_collection(save_folder: str | os.PathLike) -> list[Piece]:
    """The rows of ``utterances.csv``; a missing or malformed table is a one-line error."""
    path = Path(save_folder, TABLE)
    if not path.is_file():
        raise InputError(f"{path}: not found (build the collection first)")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise InputError(f"{path}: columns must be {','.join(COLUMNS)}")
        try:
            return [Piece(**{**row, "seconds": float(row["seconds"])}) for row in reader]
        except (TypeError, ValueError):
            raise InputError(f"{path}:{reader.line_num}: malformed row") from None
