"""The utterance catalogue: what an utterance is, and reading the prepared CSVs into one.

One ``Utterance`` type serves the whole project: data preparation writes CSV rows from it,
verification, validation and the interface embed it, the visualisation picks from it. The CSVs
are SpeechBrain's (``ID,duration,wav,start,stop,spk_id``, start and stop in samples); IDs in
``valid.csv``, ``enrol.csv`` and ``test.csv`` are trial entries without their extension
(``id10270/x6uYqmx31kE/00001``), so trial lists resolve through them.

Example
-------
>>> u = Utterance("id10270/x6uYqmx31kE/00001", "/data/vox1/wav/id10270/x6uYqmx31kE/00001.wav",
...               0, 130240, "id10270", 8.14)
>>> u.speaker, u.stop
('id10270', 130240)
"""

import csv
import os
from typing import NamedTuple

from custom_modules.data.trials import utterance_id
from custom_modules.errors import InputError

COLUMNS = ("ID", "duration", "wav", "start", "stop", "spk_id")
REQUIRED = ("ID", "wav")


class Utterance(NamedTuple):
    """One utterance: an ID, its file, a segment in samples (``stop=None``: to the end), its
    speaker (``""`` when unknown) and its duration in seconds (``None`` when not known)."""

    id: str
    wav: str
    start: int = 0
    stop: int | None = None
    speaker: str = ""
    duration: float | None = None


def read_utterance_csvs(paths: list[str]) -> dict[str, Utterance]:
    """``ID -> Utterance`` from SpeechBrain CSVs.

    ``ID`` and ``wav`` are required; ``start`` and ``stop`` (samples), ``spk_id`` and
    ``duration`` may be absent or empty, meaning the whole file, an unknown speaker and an
    unknown duration (a cohort needs ``spk_id``). A missing file, a missing required column
    or a malformed number is a one-line ``InputError`` naming the file (and the line)."""
    rows: dict[str, Utterance] = {}
    for path in paths:
        if not os.path.isfile(path):
            raise InputError(f"{path}: utterance CSV not found")
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(f"{path}: missing columns {missing} (SpeechBrain's CSV "
                                 f"columns are {','.join(COLUMNS)})")
            for row in reader:
                try:
                    utterance = Utterance(row["ID"], row["wav"], int(row.get("start") or 0),
                                          _number(row.get("stop"), int), row.get("spk_id") or "",
                                          _number(row.get("duration"), float))
                except ValueError:
                    raise InputError(f"{path}:{reader.line_num}: duration, start and stop must "
                                     f"be numbers, got {row}") from None
                rows[utterance.id] = utterance
    return rows


def _number(text: str | None, kind: type) -> int | float | None:
    """A CSV cell as a number; empty or absent is ``None``."""
    return None if text in (None, "") else kind(text)


def resolve(entries: set[str], catalogue: dict[str, Utterance],
            data_folder: str | None) -> tuple[dict[str, Utterance], list[str]]:
    """Map trial entries to utterances (through the CSVs, whose IDs have no extension, else
    ``data_folder/entry``, whose ID is the entry itself: ``x/a.wav`` and ``x/a.flac`` are two
    files); returns them and the entries that could not be found.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> for name in ("a.wav", "a.flac"):
    ...     _ = open(os.path.join(folder, name), "w")
    >>> found, missing = resolve({"a.wav", "a.flac", "b.wav"}, {}, folder)
    >>> sorted(u.id for u in found.values()), missing
    (['a.flac', 'a.wav'], ['b.wav'])
    """
    found, missing = {}, []
    for entry in sorted(entries):
        key = utterance_id(entry)
        if key in catalogue:
            found[entry] = catalogue[key]
        elif data_folder is not None and os.path.isfile(os.path.join(data_folder, entry)):
            found[entry] = Utterance(entry, os.path.join(data_folder, entry))
        else:
            missing.append(entry)
    return found, missing


def by_speaker(utterances: list[Utterance]) -> dict[str, list[Utterance]]:
    """Speaker -> their utterances, in input order.

    >>> [len(v) for v in by_speaker([Utterance("a/1", "x", speaker="a"),
    ...                              Utterance("b/1", "y", speaker="b"),
    ...                              Utterance("a/2", "z", speaker="a")]).values()]
    [2, 1]
    """
    groups: dict[str, list[Utterance]] = {}
    for utterance in utterances:
        groups.setdefault(utterance.speaker, []).append(utterance)
    return groups
