"""Sidecars: what is tuned for a model after its export, kept apart from the model folder.

A model folder is written once, by its export (training's, or the import of a published
model): weights, settings, and the back-end and precision check the export made. Nothing
writes into it afterwards. Whatever is tuned later goes to a *sidecar*, a folder of its own
that the user names and chooses when loading the model:

- ``backend``: a scoring back-end (``backend.json``, ``backend.pt``): fitted on a domain's
  development speakers (``recipes/export_backend.py``) or recalibrated on your own pairs
  (``python -m custom_modules calibrate``);
- ``precisions``: the precision check on your own lists (``recipes/check_precisions.py``),
  which ``precision: auto`` reads;
- ``diarization``: the diarization settings tuned on your conversations
  (``recipes/diarize.py``).

A sidecar is ``<store>/<name>/v<N>/`` with its kind's files and ``sidecar.json`` (format
version, kind, the fingerprint of the model it was made for, when, the command that made
it). Writing a name again adds a version and never changes an earlier one; ``<store>/<name>``
means its newest version. A sidecar made for other weights is refused when it is chosen.
``python -m custom_modules sidecars list|compare|drop`` lists, compares and removes them.

>>> import tempfile
>>> store = Path(tempfile.mkdtemp())
>>> with new_sidecar(store / "mine", "diarization", "0123abcd", "a doctest") as f:
...     _ = (f / "diarization.json").write_text('{"pruning": 0.3}')
>>> read_sidecar(store / "mine").version, read_sidecar(store / "mine").kind
(1, 'diarization')
"""

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from custom_modules.errors import InputError
from custom_modules.files import within

MANIFEST = "sidecar.json"
FORMAT_VERSION = 1
# Each kind and the files it holds (the same names as in a model folder).
KIND_FILES = {"backend": ("backend.json", "backend.pt"),
              "precisions": ("precisions.json",),
              "diarization": ("diarization.json",)}
VERSION = re.compile(r"v([1-9][0-9]*)")


class Sidecar(NamedTuple):
    """One version of a named sidecar: its folder, name, version, kind, the fingerprint of
    the model it was made for, when (UTC) and the command that made it."""

    path: Path
    name: str
    version: int
    kind: str
    model: str
    made: str
    made_by: str


class ModelState(NamedTuple):
    """Where each kind of a model's state is read from: the chosen sidecar of that kind, else
    the model folder as exported."""

    folder: Path
    backend: Path
    precisions: Path
    diarization: Path


def versions(path: str | os.PathLike) -> list[Path]:
    """The version folders of the named sidecar ``path``, oldest first."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return []
    found = [(int(m.group(1)), p) for p in path.iterdir()
             if (m := VERSION.fullmatch(p.name)) and p.is_dir() and not p.is_symlink()]
    return [p for _, p in sorted(found)]


def read_sidecar(path: str | os.PathLike) -> Sidecar:
    """The sidecar at ``path``: a named one (its newest version) or one version
    (``<name>/v<N>``); anything else is a one-line ``InputError`` naming it."""
    path = Path(path)
    if not VERSION.fullmatch(path.name):
        found = versions(path)
        if not found:
            raise InputError(f"{path}: not a sidecar (no version folder v1, v2... in it)")
        path = found[-1]
    manifest = within(path, MANIFEST)
    try:
        meta = json.loads(manifest.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format version is not {FORMAT_VERSION}")
        if meta.get("kind") not in KIND_FILES:
            raise ValueError(f"kind {meta.get('kind')!r} is not one of {', '.join(KIND_FILES)}")
        fields = [meta[key] for key in ("model", "made", "made_by")]
        if not all(isinstance(value, str) for value in fields):
            raise TypeError("model, made and made_by must be strings")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"{manifest}: not a readable sidecar ({type(error).__name__}: "
                         f"{error})") from None
    missing = [name for name in KIND_FILES[meta["kind"]] if not within(path, name).is_file()]
    if missing:
        raise InputError(f"{path}: a {meta['kind']} sidecar without {', '.join(missing)}")
    return Sidecar(path, path.parent.name, int(path.name[1:]), meta["kind"], *fields)


@contextlib.contextmanager
def new_sidecar(path: str | os.PathLike, kind: str, model: str, made_by: str
                ) -> Iterator[Path]:
    """Write the next version of the sidecar ``path`` (a name in a store): yields an empty
    folder to write the ``kind``'s files into; when the block ends without an error the
    folder gets its ``sidecar.json`` and becomes the new version, whole (after an error
    nothing is left)."""
    if kind not in KIND_FILES:
        raise InputError(f"sidecar kind {kind!r}: one of {', '.join(KIND_FILES)}")
    path = Path(path)
    if path.exists() and (path.is_symlink() or not path.is_dir()):
        raise InputError(f"{path}: exists and is not a sidecar folder")
    earlier = versions(path)
    existing = read_sidecar(path).kind if earlier else kind
    if existing != kind:
        raise InputError(f"{path}: a {existing} sidecar; a {kind} one needs another name")
    path.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".writing-", dir=path))
    try:
        yield staging
        missing = [n for n in KIND_FILES[kind] if not (staging / n).is_file()]
        if missing:
            raise RuntimeError(f"the {kind} sidecar was not written whole: no "
                               f"{', '.join(missing)}")
        meta = {"format_version": FORMAT_VERSION, "kind": kind, "model": model,
                "made": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                "made_by": made_by}
        (staging / MANIFEST).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        staging.chmod(0o755)
        number = int(earlier[-1].name[1:]) + 1 if earlier else 1
        while True:     # another writer may take a number first: os.rename never replaces
            try:
                os.rename(staging, path / f"v{number}")
                break
            except OSError:
                if not (path / f"v{number}").exists():
                    raise
                number += 1
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def list_sidecars(store: str | os.PathLike) -> list[Sidecar]:
    """Every version of every sidecar in ``store``, by name then version; folders that are
    not sidecars are left out."""
    store = Path(store)
    if not store.is_dir():
        raise InputError(f"{store}: no such folder")
    return [read_sidecar(version) for name in sorted(store.iterdir())
            for version in versions(name)]


def drop_sidecar(path: str | os.PathLike) -> list[Path]:
    """Remove one version (``<name>/v<N>``) or a whole named sidecar; returns the version
    folders removed. Only a sidecar is removed (each version is read first)."""
    path = Path(path)
    dropped = [path] if VERSION.fullmatch(path.name) else versions(path)
    if not dropped:
        raise InputError(f"{path}: not a sidecar (nothing removed)")
    for version in dropped:
        read_sidecar(version)
    for version in dropped:
        shutil.rmtree(version)
    with contextlib.suppress(OSError):   # the name goes with its last version, if empty
        (path.parent if VERSION.fullmatch(path.name) else path).rmdir()
    return dropped


def model_state(folder: str | os.PathLike, sidecars: list[str | os.PathLike] | None,
                model: str) -> ModelState:
    """Where a model's back-end, precision check and diarization settings are read from: the
    ``sidecars`` chosen (at most one of each kind, each made for the weights whose
    fingerprint is ``model``), else ``folder``."""
    chosen: dict[str, Path] = {}
    for given in sidecars or []:
        sidecar = read_sidecar(given)
        if sidecar.model != model:
            raise InputError(f"{given}: a sidecar made for another model (fingerprint "
                             f"{sidecar.model}, this one is {model})")
        if sidecar.kind in chosen:
            raise InputError(f"{given}: a second {sidecar.kind} sidecar (the first is "
                             f"{chosen[sidecar.kind]}); choose one")
        chosen[sidecar.kind] = sidecar.path
    return exported_state(folder)._replace(**chosen)


def exported_state(folder: str | os.PathLike) -> ModelState:
    """The state of a model folder as exported, without sidecars."""
    folder = Path(folder)
    return ModelState(folder, *(folder for _ in KIND_FILES))


def compare_sidecars(first: str | os.PathLike, second: str | os.PathLike) -> list[str]:
    """Lines naming every value that differs between two sidecars of one kind (their JSON
    files, key by key; tensors are compared by their files' bytes)."""
    a, b = read_sidecar(first), read_sidecar(second)
    if a.kind != b.kind:
        raise InputError(f"{first} is a {a.kind} sidecar, {second} a {b.kind} one")
    lines = [f"model: {a.model} / {b.model}"] if a.model != b.model else []
    for name in KIND_FILES[a.kind]:
        left, right = within(a.path, name), within(b.path, name)
        if not name.endswith(".json"):
            if left.read_bytes() != right.read_bytes():
                lines.append(f"{name}: the tensors differ")
            continue
        flat_a, flat_b = (_leaves(json.loads(p.read_text(encoding="utf-8")))
                          for p in (left, right))
        lines += [f"{key}: {flat_a.get(key, '(none)')} / {flat_b.get(key, '(none)')}"
                  for key in sorted(set(flat_a) | set(flat_b))
                  if flat_a.get(key) != flat_b.get(key)]
    return lines


def _leaves(value, prefix: str = "") -> dict[str, object]:
    """A JSON value as ``{"a.b.0": leaf}``."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return {prefix: value}
    return {k: v for key, item in items
            for k, v in _leaves(item, f"{prefix}.{key}" if prefix else str(key)).items()}
