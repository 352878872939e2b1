"""Recipe configuration: HyperPyYAML files, SpeechBrain's run options, and the keys a recipe
reads, with one-line errors for everything the user can get wrong.

- ``extends: base.yaml`` at the top of a file makes it a set of overrides of ``base.yaml``
  (a path relative to the file; chains are allowed). Mappings merge key by key, as
  SpeechBrain's command-line overrides do; a mapping with another ``!new:`` / ``!name:`` tag
  than the base's, and any other value, replaces the base's.
- ``--key=value`` overrides must name a top-level key of the (composed) file: a misspelt one is
  an error, not a silently ignored flag.
- Run options (``--device``, ``--precision``, ...) that the recipe does not use are refused.
- A key the recipe reads but the YAML lacks is an error naming the key.

``load_recipe`` returns the objects and the composed YAML text, which training saves into its
experiment folder (a complete, self-contained copy of what ran).
"""

import dataclasses
import difflib
import io
import re
import typing
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import torch
from hyperpyyaml import load_hyperpyyaml
from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.comments import CommentedMap

from custom_modules.errors import InputError, first_line

if TYPE_CHECKING:
    from speechbrain.utils.run_opts import RunOptions

EXTENDS = "extends"
REFERENCE = re.compile(r"<([A-Za-z_]\w*)")


class Recipe(NamedTuple):
    """A loaded recipe: the objects, SpeechBrain's run options, the composed YAML text (with
    the command-line overrides) and the file it came from."""

    hparams: dict
    run_opts: "RunOptions"
    text: str
    path: str


def all_run_options() -> frozenset[str]:
    """Every run option SpeechBrain parses; a recipe names the ones it honours.

    SpeechBrain is imported here and in ``load_recipe``, not at the top: loading a pretrained
    folder (``instantiate``) must not pull in its training stack."""
    from speechbrain.utils.run_opts import RunOptions

    return frozenset(RunOptions().as_dict()) - {"param_file", "overridden_args"}


def load_recipe(argv: list[str], keys: Sequence[str],
                run_options: Collection[str] = ()) -> Recipe:
    """Parse ``hparams.yaml --key=value ...`` the SpeechBrain way and load the file.

    ``keys`` are the top-level keys the recipe reads (each must be in the file);
    ``run_options`` the SpeechBrain run options it honours (any other given on the command
    line is refused).
    """
    from speechbrain import parse_arguments

    path, run_opts, overrides = parse_arguments(argv)
    run_opts = _typed(run_opts)
    refused = sorted(set(run_opts.overridden_args) - set(run_options))
    if refused:
        honoured = ", ".join(f"--{o}" for o in sorted(run_options)) or "none"
        listed = f" (run options it uses: {honoured})" if len(run_options) <= 5 else ""
        raise InputError(f"--{refused[0]} has no effect on this recipe{listed}")
    tree = compose(path)
    if overrides:
        given = _parse(overrides, "the command line")
        unknown = [key for key in given if key not in tree]
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(tree), n=1)
            hint = f" (did you mean --{close[0]}?)" if close else ""
            raise InputError(f"--{unknown[0]}: {path} has no such key{hint}")
        merge(tree, given)
    text = dump(tree)
    hparams = instantiate(text, path)
    require(hparams, keys, path)
    return Recipe(hparams, run_opts, text, path)


def _typed(run_opts: "RunOptions") -> "RunOptions":
    """Each run option given on the command line with its declared type: SpeechBrain parses
    an option whose default is ``None`` (``--optimizer_step_limit``) as a string, which its
    training loop then compares with an int at the first batch."""
    declared, typed = typing.get_type_hints(type(run_opts)), {}
    for name in run_opts.overridden_args:
        value, kinds = getattr(run_opts, name), typing.get_args(declared.get(name)) or ()
        number = next((k for k in (int, float) if k in kinds), None)
        if isinstance(value, str) and number is not None:
            try:
                typed[name] = number(value)
            except ValueError:
                wanted = "an integer" if number is int else "a number"
                raise InputError(f"--{name}={value}: not {wanted}") from None
    return dataclasses.replace(run_opts, **typed)


def compose(path: str | Path, seen: tuple[Path, ...] = ()) -> dict:
    """The YAML tree of ``path`` with its ``extends`` chain merged in (tags kept)."""
    path = Path(path)
    if path.resolve() in seen:
        raise InputError(f"{path}: extends itself (through {' -> '.join(map(str, seen))})")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"{path}: cannot read it ({error.strerror})") from None
    tree = _parse(text, str(path))
    if EXTENDS not in tree:
        return tree
    base = compose(path.parent / str(tree.pop(EXTENDS)), (*seen, path.resolve()))
    merge(base, tree)
    return base


def merge(base: dict, override: dict) -> None:
    """Update ``base`` in place: mappings with the same tag merge key by key, anything else
    replaces."""
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) \
                and _tag(value) in (None, _tag(base[key])):
            merge(base[key], value)
        else:
            base[key] = value


def dump(tree: dict) -> str:
    """The YAML text of a tree, tags and references kept, its top-level keys ordered so that
    every key comes after the keys it refers to (HyperPyYAML resolves a reference to a
    reference only backwards, and a merged file appends its new keys at the end)."""
    done: dict[str, None] = {}

    def visit(key: str, path: tuple[str, ...]) -> None:
        if key in done or key not in tree:
            return
        if key in path:
            raise InputError(f"the references of {' -> '.join((*path, key))} form a loop")
        for name in references(tree[key]):
            visit(name, (*path, key))
        done[key] = None

    for key in tree:
        visit(key, ())
    ordered = CommentedMap((key, tree[key]) for key in done)
    stream = io.StringIO()
    YAML().dump(ordered, stream)
    return stream.getvalue()


def references(node) -> list[str]:
    """Top-level keys that ``!ref`` / ``!copy`` tags inside ``node`` name."""
    if isinstance(node, dict):
        return [name for value in node.values() for name in references(value)]
    if isinstance(node, list):
        return [name for value in node for name in references(value)]
    if _tag(node) in ("!ref", "!copy"):
        return REFERENCE.findall(str(node.value))
    return []


def require(hparams: dict, keys: Sequence[str], source: str) -> None:
    """An ``InputError`` naming the first of ``keys`` that ``hparams`` lacks."""
    missing = [key for key in keys if key not in hparams]
    if missing:
        raise InputError(f"{source}: no '{missing[0]}' (this recipe reads "
                         f"{', '.join(keys)})")


def device_of(run_opts: "RunOptions") -> str:
    """The ``--device`` given, else CUDA when there is a GPU, else the CPU (SpeechBrain's
    choice); a CUDA device without CUDA is an ``InputError``."""
    device = run_opts.device or ("cuda:0" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device={device}: CUDA is not available here")
    return device


def _parse(text: str, where: str) -> dict:
    try:
        tree = YAML().load(text)
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or first_line(error)
        raise InputError(f"{where}:{line} malformed YAML ({problem})") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise InputError(f"{where}: expected a mapping of keys to values at the top")
    return tree


def _tag(node) -> str | None:
    tag = getattr(node, "tag", None)
    return getattr(tag, "value", None)


def instantiate(text: str, path: str) -> dict:
    """Build the objects. What fails here because of what the YAML says (an unset
    placeholder, a missing module, a wrong argument, a value a constructor refuses) is one line
    naming the file; an exception raised inside this package's own code, other than an
    ``InputError``, is a bug and keeps its traceback."""
    try:
        return load_hyperpyyaml(text)
    except YAMLError as error:
        raise InputError(f"{path}: malformed YAML ({first_line(error)})") from None
    except (ValueError, KeyError, AttributeError, ImportError, TypeError) as error:
        if not isinstance(error, InputError) and _raised_in_package(error):
            raise
        message = first_line(error)
        unset = re.match(r"'(\w+)' is a !PLACEHOLDER", message)
        hint = f" (set it on the command line: --{unset.group(1)}=...)" if unset else ""
        raise InputError(f"{path}: {message}{hint}") from None


def _raised_in_package(error: BaseException) -> bool:
    """Whether the traceback passes through this package's code after HyperPyYAML called it
    (a constructor of ours), rather than ending in HyperPyYAML, an import or a library."""
    package = str(Path(__file__).parent)
    inside_loader = False
    frame = error.__traceback__
    while frame is not None:
        filename = frame.tb_frame.f_code.co_filename
        if "hyperpyyaml" in filename:
            inside_loader = True
        elif inside_loader and filename.startswith(package):
            return True
        frame = frame.tb_next
    return False
