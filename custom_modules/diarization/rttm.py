"""Diarization segments and their files: RTTM (NIST's ``SPEAKER`` lines, what
``pyannote.metrics`` and dscore read) and JSON.

``SPEAKER <file> 1 <start> <duration> <NA> <NA> <speaker> <NA> <NA>``, times in seconds.
Fields are separated by white space, so the file and speaker names are written with white
space, control characters and ``%`` percent-encoded (``my file`` as ``my%20file``) and read
back decoded: any name survives the round trip, and other tools see one field.
"""

import json
import os
import re
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote

from custom_modules.errors import InputError
from custom_modules.files import read_utf8


class Segment(NamedTuple):
    """A stretch of one speaker's speech, in seconds."""

    start: float
    end: float
    speaker: str


def write_rttm(path: str | os.PathLike, recording: str, segments: list[Segment]) -> None:
    """Write ``segments`` of ``recording`` as RTTM.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "a.rttm"
    >>> write_rttm(path, "a", [Segment(0.5, 2.0, "ann")])
    >>> path.read_text()
    'SPEAKER a 1 0.500 1.500 <NA> <NA> ann <NA> <NA>\\n'
    >>> read_rttm(path)
    {'a': [Segment(start=0.5, end=2.0, speaker='ann')]}
    >>> write_rttm(path, "my talk", [Segment(0.0, 1.0, "Ann Lee")])
    >>> path.read_text().split()[1], path.read_text().split()[7], read_rttm(path)
    ('my%20talk', 'Ann%20Lee', {'my talk': [Segment(start=0.0, end=1.0, speaker='Ann Lee')]})
    """
    Path(path).write_text("".join(
        f"SPEAKER {_field(recording)} 1 {s.start:.3f} {s.end - s.start:.3f} <NA> <NA> "
        f"{_field(s.speaker)} <NA> <NA>\n" for s in segments), encoding="utf-8")


def _field(name: str) -> str:
    """``name`` as one RTTM field: white space, control characters and ``%`` encoded."""
    if not name:
        raise InputError("an RTTM field (file or speaker name) cannot be empty")
    return re.sub(r"[\s%\x00-\x1f\x7f]",
                  lambda m: "".join(f"%{b:02X}" for b in m.group().encode("utf-8")), name)


def read_rttm(path: str | os.PathLike) -> dict[str, list[Segment]]:
    """Segments per recording of an RTTM file; a malformed line is a one-line error naming
    the file and the line."""
    recordings: dict[str, list[Segment]] = {}
    try:
        lines = read_utf8(path).splitlines()
    except OSError as error:
        raise InputError(f"{path}: cannot read it ({error.strerror})") from None
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or fields[0] != "SPEAKER":
            continue
        try:
            start, duration = float(fields[3]), float(fields[4])
            if duration < 0:
                raise ValueError("negative duration")
            recordings.setdefault(unquote(fields[1]), []).append(
                Segment(start, round(start + duration, 6), unquote(fields[7])))
        except (IndexError, ValueError):
            raise InputError(f"{path}:{number}: not an RTTM SPEAKER line: "
                             f"{line.strip()!r}") from None
    return recordings


def write_json(path: str | os.PathLike, recording: str, segments: list[Segment]) -> None:
    """``{"recording": ..., "segments": [{"start", "end", "speaker"}, ...]}``."""
    Path(path).write_text(json.dumps(
        {"recording": recording, "segments": [s._asdict() for s in segments]}, indent=1)
        + "\n", encoding="utf-8")
