"""What every corpus preparation shares: a parallel header scan that skips and reports bad
files, SpeechBrain-format CSV rows (whole utterances or fixed chunks), atomic writes, and the
record that makes a second run with the same options a no-op.

CSV columns are SpeechBrain's: ``ID,duration,wav,start,stop,spk_id`` (start/stop in samples).
Scanned files are ``custom_modules.data.catalogue.Utterance``: the ID is the file's path
relative to the corpus root without its extension (``speaker/.../name``, as trial lists name
it), the speaker its first folder, ``stop`` its frame count.
"""

import csv
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import NamedTuple

from tqdm import tqdm

from custom_modules.audio import AudioError, AudioInfo, audio_info
from custom_modules.data.catalogue import COLUMNS, Utterance
from custom_modules.data.trials import utterance_id

logger = logging.getLogger(__name__)
OPTIONS_FILE = "prep_options.json"
REPORT_FILE = "prep_report.json"


class Scan(NamedTuple):
    """What ``scan`` found: the usable utterances (sorted by ID), a record per skipped file,
    and each usable file's header (sample rate and channels matter before conversion)."""

    utterances: list[Utterance]
    skipped: list[dict]
    headers: dict[str, AudioInfo]


def train_id(utterance: Utterance) -> str:
    """ID in train/dev CSVs, SpeechBrain's ``spk--session--utt``.

    >>> train_id(Utterance("id10001/1zcIwhmdeo4/00001", "x.wav"))
    'id10001--1zcIwhmdeo4--00001'
    """
    return utterance.id.replace("/", "--")


def trial_entry(utterance: Utterance) -> str:
    """How a trial list names it: the ID with the extension of its file.

    >>> trial_entry(Utterance("id10001/x/00001", "/data/wav/id10001/x/00001.wav"))
    'id10001/x/00001.wav'
    """
    return utterance.id + os.path.splitext(utterance.wav)[1]


def _probe(path: str) -> tuple[str, AudioInfo | None, str | None]:
    try:
        return path, audio_info(path), None
    except AudioError as error:
        return path, None, error.problem


def scan(files: list[tuple[str, str]], min_duration: float, sample_rate: int | None,
         num_workers: int) -> Scan:
    """Read the headers of ``files`` (``(path, relative path)`` pairs) on ``num_workers``
    processes, with a progress bar.

    Skipped, each with a ``{"file", "relative", "reason"}`` record: unreadable, empty, shorter
    than ``min_duration`` seconds, (when ``sample_rate`` is given) at another sample rate or
    with several channels, or a second file with the same ID (``a.wav`` beside ``a.flac``).
    """
    relative = dict(files)
    usable, skipped, headers = [], [], {}
    with process_pool(num_workers, runs_torch=False) as pool:
        results = pool.map(_probe, list(relative), chunksize=1024)
        for path, info, problem in tqdm(results, total=len(relative), desc="Reading headers",
                                        unit="file", mininterval=2.0):
            if info is not None:
                problem = _unusable(info, min_duration, sample_rate)
            rel = relative[path]
            if problem is not None:
                skipped.append({"file": path, "relative": rel, "reason": problem})
                continue
            usable.append(Utterance(utterance_id(rel), path, 0, info.frames, rel.split("/")[0],
                                    info.duration))
            headers[path] = info
    usable.sort(key=lambda u: (u.id, u.wav))
    kept: dict[str, Utterance] = {}
    for u in usable:
        if u.id in kept:
            skipped.append({"file": u.wav, "relative": relative[u.wav],
                            "reason": f"same ID as {kept[u.id].wav}"})
            del headers[u.wav]
        else:
            kept[u.id] = u
    return Scan(list(kept.values()), sorted(skipped, key=lambda s: s["file"]), headers)


def _unusable(info: AudioInfo, min_duration: float, sample_rate: int | None) -> str | None:
    if info.duration < min_duration:
        return f"too short: {info.duration:.2f} s, the minimum is {min_duration:.2f} s"
    if sample_rate is not None and info.sample_rate != sample_rate:
        return f"sample rate {info.sample_rate} Hz, expected {sample_rate} Hz"
    if sample_rate is not None and info.channels != 1:
        return f"{info.channels} channels, expected mono"
    return None


def utterance_rows(utterances: list[Utterance], ids: str = "train") -> list[list]:
    """One row per whole utterance; ``ids`` is ``"train"`` (``spk--session--utt``) or
    ``"trial"`` (``spk/session/utt``, as enrol/test CSVs and trial lists use)."""
    return [[train_id(u) if ids == "train" else u.id, f"{u.duration:.3f}", u.wav, u.start,
             u.stop, u.speaker] for u in utterances]


def chunk_rows(utterances: list[Utterance], seg_dur: float, sample_rate: int) -> list[list]:
    """SpeechBrain's fixed chunks: ``int(duration / seg_dur)`` chunks per utterance with IDs
    ``spk--session--utt_<start s>_<stop s>``; the duration column keeps the whole file's."""
    rows = []
    for u in utterances:
        for i in range(int(u.duration / seg_dur)):
            start, stop = i * seg_dur, i * seg_dur + seg_dur
            rows.append([f"{train_id(u)}_{start}_{stop}", f"{u.duration:.3f}", u.wav,
                         int(start * sample_rate), int(stop * sample_rate), u.speaker])
    return rows


def training_rows(utterances: list[Utterance], mode: str, seg_dur: float,
                  sample_rate: int) -> list[list]:
    """Train/dev rows: whole utterances (``mode="utterances"``) or fixed chunks."""
    return chunk_rows(utterances, seg_dur, sample_rate) if mode == "chunks" \
        else utterance_rows(utterances)


def write_csv(path: str | os.PathLike, rows: list[list]) -> None:
    """Write a SpeechBrain CSV atomically (temporary file renamed into place)."""
    partial = Path(f"{path}.part")
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    os.replace(partial, path)


def write_json(path: str | os.PathLike, content: dict) -> None:
    """Write ``content`` as indented JSON, atomically."""
    partial = Path(f"{path}.part")
    partial.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)


def already_prepared(save_folder: str | os.PathLike, options: dict, outputs: list[str]) -> bool:
    """True when ``save_folder`` holds every output of a finished run with the same options."""
    record = Path(save_folder, OPTIONS_FILE)
    if not record.is_file() or not all(Path(save_folder, name).is_file() for name in outputs):
        return False
    return json.loads(record.read_text(encoding="utf-8")) == json.loads(json.dumps(options))


def modification_stamp(paths: list) -> dict[str, int | None]:
    """Modification times (ns) of the inputs a preparation reads, for its options: a corpus
    regenerated in place, or a changed list, then counts as a change and is prepared again."""
    return {str(p): os.stat(p).st_mtime_ns if p is not None and os.path.exists(p) else None
            for p in paths}


def mark_prepared(save_folder: str | os.PathLike, options: dict) -> None:
    """Record a finished run; written last so an interrupted run is redone."""
    write_json(Path(save_folder, OPTIONS_FILE), options)


def process_pool(num_workers: int, runs_torch: bool = True) -> ProcessPoolExecutor:
    """Worker processes. Workers that run torch are started fresh ("spawn"): forked from a
    process whose torch thread pools are running, they can deadlock. Workers that only read
    headers are forked, which starts them in milliseconds instead of seconds."""
    context = get_context("spawn" if runs_torch else "fork")
    return ProcessPoolExecutor(max_workers=num_workers, mp_context=context)


def worker_count(num_workers: int | None) -> int:
    """``num_workers`` or, when ``None``, every core this process may use."""
    return num_workers or len(os.sched_getaffinity(0))
