"""Writing files into folders we do not trust (a model folder someone gave us): atomically, and
never through a path that is already there.

A folder can ship ``backend.json.part -> ~/.bashrc``: writing ``backend.json.part`` and
renaming it would overwrite the link's target. ``write_atomic`` instead creates a new file
with a random name in the target folder (``O_CREAT | O_EXCL``: it fails rather than open
anything that exists, link or not), writes and flushes it, then renames it over the target:
``os.replace`` replaces a link at the target itself, never the file it points to. A reader
sees the old file or the new one, never part of one; an interrupted write leaves only the
temporary file (``.<name>.*.part``), never a damaged target.

``within`` is how a file of such a folder is named before it is read: a link that leads out
of the folder (``embedding_model.ckpt -> ~/.ssh/id_rsa``) is refused, not followed.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> (folder / "x.json.part").symlink_to(folder / "victim")
>>> write_atomic(folder / "x.json", "{}\\n")
>>> (folder / "x.json").read_text(), (folder / "victim").exists()
('{}\\n', False)
"""

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from custom_modules.errors import InputError


def write_atomic(path: str | os.PathLike, content: str | bytes | Callable[[BinaryIO], None]
                 ) -> None:
    """Replace ``path`` whole by ``content`` (text as UTF-8, bytes, or a function that writes
    to the open binary file, e.g. ``lambda f: torch.save(obj, f)``)."""
    path = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part",
                                             dir=path.parent)
    except OSError as error:
        raise InputError(f"{path}: cannot be written ({error.strerror or error})") from None
    try:
        os.fchmod(handle, 0o644)     # mkstemp's 0o600 would hide a shared model's files
        with os.fdopen(handle, "wb") as sink:
            if callable(content):
                content(sink)
            else:
                sink.write(content.encode("utf-8") if isinstance(content, str) else content)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def within(folder: str | os.PathLike, name: str) -> Path:
    """``folder/name``, or a one-line ``InputError`` when it is a link out of ``folder``."""
    path = Path(folder, name)
    if path.is_symlink():
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise InputError(f"{path}: a link that leads nowhere (or to itself); it is not "
                             f"read") from None
        if not target.is_relative_to(Path(folder).resolve()):
            raise InputError(f"{path}: a link out of the model folder (to {target}); it is "
                             f"not read")
    return path


def read_utf8(path: str | os.PathLike) -> str:
    """The text of ``path``; text that is not UTF-8 is a one-line ``InputError`` (a missing
    or unreadable file stays the caller's ``OSError``)."""
    try:
        return Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") \
            from None
