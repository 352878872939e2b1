"""Diarization segments and their files: RTTM (NIST's ``SPEAKER`` lines, what
``pyannote.metrics`` and dscore read) and JSON.

``SPEAKER <file> 1 <start> <duration> <NA> <NA> <speaker> <NA> <NA>``, times in seconds.
"""

import json
import os
from pathlib import Path
from typing import NamedTuple

from custom_modules.errors import InputError


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
    """
    Path(path).write_text("".join(
        f"SPEAKER {recording} 1 {s.start:.3f} {s.end - s.start:.3f} <NA> <NA> {s.speaker} "
        f"<NA> <NA>\n" for s in segments), encoding="utf-8")


def read_rttm(path: str | os.PathLike) -> dict[str, list[Segment]]:
    """Segments per recording of an RTTM file; a malformed line is a one-line error naming
    the file and the line."""
    recordings: dict[str, list[Segment]] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
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
            recordings.setdefault(fields[1], []).append(
                Segment(start, round(start + duration, 6), fields[7]))
        except (IndexError, ValueError):
            raise InputError(f"{path}:{number}: not an RTTM SPEAKER line: "
                             f"{line.strip()!r}") from None
    return recordings


def write_json(path: str | os.PathLike, recording: str, segments: list[Segment]) -> None:
    """``{"recording": ..., "segments": [{"start", "end", "speaker"}, ...]}``."""
    Path(path).write_text(json.dumps(
        {"recording": recording, "segments": [s._asdict() for s in segments]}, indent=1)
        + "\n", encoding="utf-8")
