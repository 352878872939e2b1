"""Fish Fillets NG's voice acting: the Czech and Dutch speech packages of Debian
(``fillets-ng-data-cs``, ``fillets-ng-data-nl`` 1.0.1-1.1; GPL-2+, ALTAR interactive and the
Fish Fillets NG authors). Each dubbing has two main voices, the small fish and the big fish,
recorded by one actor each: about 650 lines each, per language, in
``usr/share/games/fillets-ng/sound/<level>/<lang>/<prefix>-<m|v>-<name>.ogg`` (``m``: malá,
the small fish; ``v``: velká, the big one). The minor roles (codes such as ``hs``, ``pap``)
are left out: a code does not name one actor across levels.

Each ``.deb`` is pinned by SHA-256 and unpacked with ``dpkg-deb -x`` (no maintainer script
runs); a package whose files are not in that layout is refused in one line. The level is the
session.
"""

import re
from pathlib import Path

from custom_modules.errors import InputError
from custom_modules.interop.registry import PinnedFile, debian_package, unpack_debian
from data_prep.real_speech.collection import Recording, write_collection

VERSION = "1.0.1-1.1"
PACKAGES = {
    "cs": PinnedFile(39042172,
                     "3ecef99b9456f1c80c9625c6f2418642b52d58e7167a46bad7a412db17991b14"),
    "nl": PinnedFile(32593580,
                     "afb4443fda9ab507dee578b75be857d121718a1cd6017a474f30e0eb13dc9d10"),
}
SOUND = "usr/share/games/fillets-ng/sound"
LINE = re.compile(r"[a-z0-9]+-(?P<role>[mv])-[\w-]+\.ogg")
ROLES = {"m": "small", "v": "big"}
MIN_LINES = 100   # per main voice; fewer means the package is not the one described above


def fillets_recordings(root: Path, language: str) -> list[Recording]:
    """The two main voices' lines of one language in an unpacked package ``root``."""
    sound = root / SOUND
    if not sound.is_dir():
        raise InputError(f"{root}: no {SOUND} (not a Fish Fillets NG speech package)")
    recordings = []
    for path in sorted(sound.glob(f"*/{language}/*.ogg")):
        match = LINE.fullmatch(path.name)
        if match is None:
            continue   # a minor role
        recordings.append(Recording(str(path), f"fillets-{language}-{ROLES[match['role']]}",
                                    path.parent.parent.name, path.stem, language, "fillets"))
    counts = {role: sum(r.speaker.endswith(role) for r in recordings) for role in ROLES.values()}
    if min(counts.values()) < MIN_LINES:
        raise InputError(f"{root}: {counts} lines of the main voices in {language}; expected "
                         f"at least {MIN_LINES} each (not the package this builder reads)")
    return recordings


def build_fillets(save_folder: str, download_folder: str, languages: list[str],
                  chunk_seconds: float, min_seconds: float, num_workers: int) -> dict:
    """Download (once) and check each language's package, unpack it, write the collection."""
    unknown = sorted(set(languages) - set(PACKAGES))
    if unknown or not languages:
        raise InputError(f"fillets languages {languages}: choose among {sorted(PACKAGES)}")
    recordings = []
    for language in languages:
        name = f"fillets-ng-data-{language}"
        deb = debian_package(name, VERSION, PACKAGES[language], download_folder)
        root = unpack_debian(deb, Path(download_folder, name))
        recordings += fillets_recordings(root, language)
    return write_collection(save_folder, recordings, chunk_seconds, min_seconds, num_workers)
