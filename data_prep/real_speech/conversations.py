"""Real conversations for diarization: turns of real speakers stitched together
(``data_prep.conversations``), the development speakers' for tuning and the test speakers'
for the report (as the sets split them), each conversation among the speakers of one source
and language (a council's members, one dubbing's actors); and the two-speaker recording
that pyannote.audio ships (``pyannote.audio==4.0.7`` wheel, MIT: ``sample.wav`` with its
``sample.rttm``, 30 s), pinned by SHA-256 and read out of the wheel as a ZIP archive.
"""

import csv
import json
import random
import zipfile
from pathlib import Path

from custom_modules.interop.registry import PinnedFile, copy_member, pypi_wheel
from data_prep.conversations import write_conversations
from data_prep.real_speech.collection import read_collection

PYANNOTE = ("pyannote.audio", "4.0.7", "pyannote_audio-4.0.7-py3-none-any.whl",
            PinnedFile(894598, "852ea15c4d85bc34773e618267603ffca6a521669a74d33742692cc67fc700d6"))
SAMPLE = {
    "sample.wav": PinnedFile(960104,
                             "c319b4abca767b124e41432d364fd7df006cb26bb79d09326c487d606a134e6e"),
    "sample.rttm": PinnedFile(596,
                              "d78fe62c69d8e6dcbb42c26adfce83faccb374c5a1e6d987fe37f85f1c173c87"),
}


def speaker_groups(collections: dict[str, str], sets_summary: str) -> dict[str, list]:
    """``part -> groups``: ``dev`` the development speakers of the sets (``sets.json`` of
    ``sets.build_sets``), ``test`` the test speakers; a group per collection and language,
    each speaker's sessions, each session its pieces in order."""
    summary = json.loads(Path(sets_summary).read_text(encoding="utf-8"))
    side = {s: "dev" for s in summary["development"]["speakers"]}
    side.update({s: "test" for s in summary["test_speakers"]})
    groups: dict[tuple, dict[str, dict[str, list[str]]]] = {}
    for name, folder in collections.items():
        for piece in read_collection(folder):
            if piece.speaker in side:
                groups.setdefault((side[piece.speaker], name, piece.language), {}).setdefault(
                    piece.speaker, {}).setdefault(piece.session, []).append(
                    str(Path(folder, piece.entry)))
    return {part: [{speaker: [sessions[s] for s in sorted(sessions)]
                    for speaker, sessions in sorted(group.items())}
                   for key, group in sorted(groups.items()) if key[0] == part]
            for part in ("dev", "test")}


def real_conversations(collections: dict[str, str], sets_summary: str, output_folder: str,
                       dev_recordings: int, test_recordings: int, max_speakers: int,
                       min_minutes: float, max_minutes: float, overlap_share: float,
                       seed: int) -> Path:
    """Write the conversations (``data_prep.conversations``); returns their CSV."""
    return write_conversations(speaker_groups(collections, sets_summary),
                               {"dev": dev_recordings, "test": test_recordings}, output_folder,
                               max_speakers, min_minutes, max_minutes, overlap_share,
                               random.Random(seed), {"collections": collections,
                                                     "sets": sets_summary, "seed": seed})


def pyannote_sample(conversations: str, download_folder: str, output_folder: str) -> Path:
    """A recording list: the development conversations of ``conversations`` (for tuning) and
    pyannote.audio's sample as the one test recording."""
    wheel = pypi_wheel(*PYANNOTE, download_folder)
    out = Path(output_folder)
    with zipfile.ZipFile(wheel) as archive:
        for name, pin in SAMPLE.items():
            if not (out / name).is_file():
                copy_member(archive, f"pyannote/audio/sample/{name}", out / name, pin)
    with open(conversations, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["part"] == "dev"]
    rows.append({"ID": "sample", "part": "test", "wav": str(out / "sample.wav"),
                 "rttm": str(out / "sample.rttm"), "duration": "30.00", "speakers": 2})
    listing = out / "recordings.csv"
    with open(listing, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return listing
