"""Flight of the Amazon Queen's voice acting: Debian's ``flight-of-the-amazon-queen``
1.0.0-9 (freeware, redistributable: the Flight-of-the-Amazon-Queen licence of its copyright
file), English, about 30 characters.

The speech is inside the game's resource file ``queen.1c`` (ScummVM's rebuilt format): a
``QTBL`` header (version, compression 1 = MP3, entry count), then 21-byte entries (name 12
bytes, bundle 1, offset and size as big-endian 32-bit). Each ``.SB`` entry is one spoken line,
a bare MP3 stream at 11,025 Hz. Whose line it is comes from its name, as the engine builds it:
``<key><4 hex>J<seg>`` and ``JOE<4 digits><seg>`` are the hero, Joe; ``<key><4 hex>P<seg>``
the other person of the dialogue whose ``.DOG`` file stores ``key`` (an int16 at byte 24 of
its ``AmBk`` block), named by the file (``FAYE1.DOG``: Faye). Cut-scene lines (``C...``) mix
speakers and are left out, and so are ``MAN`` (several passers-by) and characters with fewer
than ``min_lines`` lines; a character with more than ``max_lines`` (Joe has ~1,900) keeps that
many, drawn at random (``seed``). Actors may voice more than one character: speakers here are
characters, which the README says.

The ``.deb`` is pinned by SHA-256 and unpacked with ``dpkg-deb -x``; a resource file that is not
in this format is refused in one line. The dialogue is the session.
"""

import random
import re
import struct
from collections import Counter
from pathlib import Path

from custom_modules.errors import InputError
from custom_modules.interop.registry import PinnedFile, debian_package, unpack_debian
from data_prep.real_speech.collection import Recording, write_collection

PACKAGE = ("flight-of-the-amazon-queen", "1.0.0-9",
           PinnedFile(34859620,
                      "40c08fd258d6fe95c46c1eaf5e9137f84ba330657995a281bd887c94a560a0f1"))
RESOURCE = "usr/share/scummvm/flight-of-the-amazon-queen/queen.1c"
HEADER, ENTRY = 15, 21
DIALOGUE_LINE = re.compile(r"(?P<key>\d\d)(?:[0-9A-F]{4}|SSSS|XXXX)(?P<who>[JP])[0-9A-F]")
JOE_LINE = re.compile(r"JOE\d{4}[0-9A-F]")
LEFT_OUT = {"MAN"}


def resource_table(path: Path) -> dict[str, tuple[int, int]]:
    """``name -> (offset, size)`` of every entry of a ``queen.1c``."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        header = handle.read(HEADER)
        if len(header) < HEADER or header[:4] != b"QTBL" or header[12] != 1:
            raise InputError(f"{path}: not a Flight of the Amazon Queen resource file with "
                             f"MP3 speech (QTBL header, compression 1)")
        count = struct.unpack(">H", header[13:15])[0]
        raw = handle.read(count * ENTRY)
    if len(raw) != count * ENTRY:
        raise InputError(f"{path}: truncated entry table ({count} entries announced)")
    table = {}
    for k in range(count):
        entry = raw[k * ENTRY:(k + 1) * ENTRY]
        name = entry[:12].split(b"\0")[0].decode("ascii", errors="replace")
        offset, length = struct.unpack(">II", entry[13:21])
        if offset + length > size:
            raise InputError(f"{path}: entry {name!r} runs past the end of the file")
        table[name] = (offset, length)
    return table


def queen_recordings(resource: Path, target: Path, min_lines: int, max_lines: int,
                     seed: int) -> list[Recording]:
    """Extract the attributed spoken lines of ``resource`` as MP3 files under ``target``."""
    table = resource_table(resource)
    speakers: dict[int, str] = {}
    with open(resource, "rb") as handle:
        def read(name: str) -> bytes:
            offset, length = table[name]
            handle.seek(offset)
            return handle.read(length)

        for name in sorted(n for n in table if n.endswith(".DOG")):
            block = read(name)
            if block[:4] != b"AmBk" or len(block) < 26:
                raise InputError(f"{resource}: dialogue {name} is not an AmBk block")
            speakers[struct.unpack(">h", block[24:26])[0]] = name[:-4].rstrip("0123456789")
        lines = []
        for name in sorted(n for n in table if n.endswith(".SB")):
            stem = name[:-3]
            match = DIALOGUE_LINE.fullmatch(stem)
            if JOE_LINE.fullmatch(stem) or (match and match["who"] == "J"):
                who, session = "JOE", match["key"] if match else "objects"
            elif match and int(match["key"]) in speakers:
                who, session = speakers[int(match["key"])], match["key"]
            else:
                continue
            lines.append((name, who, session))
        counts = Counter(who for _, who, _ in lines)
        rng = random.Random(seed)
        chosen = {who: set(rng.sample([n for n, w, _ in lines if w == who],
                                      min(max_lines, count)))
                  for who, count in sorted(counts.items())
                  if who not in LEFT_OUT and count >= min_lines}
        kept = []
        for name, who, session in lines:
            if name not in chosen.get(who, ()):
                continue
            path = target / f"{name[:-3]}.mp3"
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.with_suffix(".part").write_bytes(read(name))
                path.with_suffix(".part").rename(path)
            kept.append(Recording(str(path), f"queen-{who.lower()}", session, name[:-3], "en",
                                  "queen"))
    if len({r.speaker for r in kept}) < 10:
        raise InputError(f"{resource}: {len({r.speaker for r in kept})} characters with "
                         f"{min_lines} lines or more; expected at least 10 (not the resource "
                         f"file this builder reads)")
    return kept


def build_queen(save_folder: str, download_folder: str, min_lines: int, max_lines: int,
                chunk_seconds: float, min_seconds: float, num_workers: int, seed: int) -> dict:
    """Download (once) and check the package, extract the lines, write the collection."""
    deb = debian_package(*PACKAGE, download_folder)
    root = unpack_debian(deb, Path(download_folder, PACKAGE[0]))
    resource = root / RESOURCE
    if not resource.is_file():
        raise InputError(f"{root}: no {RESOURCE}")
    recordings = queen_recordings(resource, Path(download_folder, "queen-lines"), min_lines,
                                  max_lines, seed)
    return write_collection(save_folder, recordings, chunk_seconds, min_seconds, num_workers)
