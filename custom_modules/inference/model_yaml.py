"""Reading a model folder's ``hyperparams.yaml`` without executing it.

HyperPyYAML's tags are code: ``!new:os.system`` or ``!apply:subprocess.run`` in a model
folder from someone else would run when the folder is loaded. Here the file is parsed as data
(PyYAML's safe loader) with three tags understood and nothing else:

- ``!new:<class>`` builds one of ``ALLOWED`` with the mapping (or list) under it as arguments;
- ``!name:<class>`` names an activation of ``ACTIVATIONS`` (passed as a class);
- ``!ref <key>`` is another top-level value (``<key>/suffix`` and ``<a.b>`` work as in
  HyperPyYAML); a key built once is the same object wherever it is referred to.

Any other tag (``!apply:``, ``!include:``, ``!copy``, ``!PLACEHOLDER``, ...), a class outside
the allow-list or a module name outside ``MODULES`` is a one-line ``InputError`` naming the
file, before anything is built. The reading is bounded: a file over ``MAX_BYTES``, a
reference that builds a string over ``MAX_STRING`` characters (every ``!ref`` is resolved
once, so references that double a string at each level cost their length, not 2^levels
calls) and a model declared with more than ``MAX_PARAMETERS`` parameters (counted on
PyTorch's meta device, which allocates nothing) or with a frontend larger than
``FRONTEND_LIMITS`` are refused, and only a text or a number goes into a string. Classes
that only matter to SpeechBrain's own loader (``Pretrainer``, ``CategoricalEncoder``) are
read as ``None``. The paths of this package before its reorganisation (``custom_modules.ecapa``,
``custom_modules.frontend``) still load.

>>> text = "n: 40\\nf: !new:custom_modules.models.frontend.MelFrontend\\n    n_mels: !ref <n>\\n"
>>> read_model_yaml(text, "hyperparams.yaml")["f"].config["n_mels"]
40
"""

import importlib
import inspect
import re

import torch
import yaml

from custom_modules.errors import InputError, first_line

# Dotted name in a model folder -> the class it builds (module path, attribute).
ALLOWED = {
    "custom_modules.models.frontend.MelFrontend": ("custom_modules.models.frontend",
                                                   "MelFrontend"),
    "custom_modules.models.ecapa.ECAPA_TDNN": ("custom_modules.models.ecapa", "ECAPA_TDNN"),
    "custom_modules.models.frontend.SentenceNormalisation": ("custom_modules.models.frontend",
                                                             "SentenceNormalisation"),
    "custom_modules.frontend.MelFrontend": ("custom_modules.models.frontend", "MelFrontend"),
    "custom_modules.ecapa.ECAPA_TDNN": ("custom_modules.models.ecapa", "ECAPA_TDNN"),
    "speechbrain.processing.features.InputNormalization": (
        "speechbrain.processing.features", "InputNormalization"),
    "speechbrain.lobes.features.Fbank": ("speechbrain.lobes.features", "Fbank"),
    "speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN": ("speechbrain.lobes.models.ECAPA_TDNN",
                                                       "ECAPA_TDNN"),
    "speechbrain.lobes.models.ECAPA_TDNN.Classifier": ("speechbrain.lobes.models.ECAPA_TDNN",
                                                       "Classifier"),
}
IGNORED = {"speechbrain.utils.parameter_transfer.Pretrainer",
           "speechbrain.dataio.encoder.CategoricalEncoder"}
ACTIVATIONS = {f"torch.nn.{name}" for name in ("ReLU", "LeakyReLU", "PReLU", "GELU", "SiLU",
                                                "Tanh", "Sigmoid", "ELU")}
MODULES = {"compute_features", "mean_var_norm", "embedding_model", "mean_var_norm_emb",
           "classifier"}
REFERENCE = re.compile(r"<([\w.]+)>")
MAX_BYTES = 1 << 20              # a model's YAML is a few kB
MAX_STRING = 10_000              # characters a !ref may build
MAX_PARAMETERS = 100_000_000     # ECAPA-TDNN C=1024 has 20.8 M
SIZED = {"custom_modules.models.ecapa.ECAPA_TDNN", "custom_modules.ecapa.ECAPA_TDNN",
         "speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN",
         "speechbrain.lobes.models.ECAPA_TDNN.Classifier"}
# The frontends' sizes (their filter banks are (n_fft / 2 + 1) x n_mels): the most accepted.
FRONTEND_LIMITS = {"n_fft": 16384, "n_mels": 1024, "sample_rate": 192000}


class _Tagged:
    """A tagged node, read as data: ``kind`` is new, name or ref."""

    def __init__(self, kind: str, target: str, value):
        self.kind, self.target, self.value = kind, target, value


class _Loader(yaml.SafeLoader):
    """The safe loader, knowing ``!new:``, ``!name:`` and ``!ref`` as data, with YAML 1.2's
    core schema (what HyperPyYAML's ruamel reads): ``1e-10`` is a number, ``yes``, ``on``,
    ``010`` and ``1:30`` are what 1.2 says (a string, a string, 10, a string); a key given
    twice is an error."""

    yaml_implicit_resolvers: dict = {}

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=True) for key, _ in node.value]
        twice = {key for key in keys if keys.count(key) > 1}
        if twice:
            raise InputError(f"key {sorted(map(str, twice))[0]!r} is given twice (line "
                             f"{node.start_mark.line + 1})")
        return super().construct_mapping(node, deep=deep)


for _tag, _pattern, _first in (
        ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
        ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
        ("float", r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                  r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", "-+0123456789."),
        ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""])):
    _Loader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_pattern),
                                  list(_first))


def _core_int(loader, node):
    """YAML 1.2 integers: decimal (``010`` is ten), ``0o`` octal, ``0x`` hexadecimal."""
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    return int(text, 16) if text.startswith("0x") else int(text, 10)


_Loader.add_constructor("tag:yaml.org,2002:int", _core_int)


def _tagged(kind: str):
    def construct(loader, suffix, node):
        if isinstance(node, yaml.MappingNode):
            value = loader.construct_mapping(node, deep=True)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_scalar(node)
        return _Tagged(kind, suffix, value)
    return construct


def _refused(loader, suffix, node):
    raise InputError(f"tag {node.tag!r} (line {node.start_mark.line + 1}) is not allowed in a "
                     f"model folder: only !new:, !name: and !ref are read")


_Loader.add_multi_constructor("!new:", _tagged("new"))
_Loader.add_multi_constructor("!name:", _tagged("name"))
_Loader.add_constructor("!ref", lambda loader, node: _Tagged("ref", "",
                                                             loader.construct_scalar(node)))
_Loader.add_multi_constructor("!", _refused)
_Loader.add_multi_constructor("tag:", _refused)


def read_model_yaml(text: str, path: str) -> dict:
    """The top-level values of a model folder's YAML, allowed classes built; ``InputError``
    (naming ``path``) for anything that would execute other code."""
    if len(text) > MAX_BYTES:
        raise InputError(f"{path}: {len(text)} characters, more than a model's YAML has "
                         f"({MAX_BYTES})")
    try:
        raw = yaml.load(text, Loader=_Loader)
        if not isinstance(raw, dict):
            raise InputError("not a mapping of keys to values")
        _check(raw, path, set())
        built: dict = {}
        return {key: _resolve(raw[key], raw, built, path, (key,)) for key in raw}
    except InputError as error:
        message = str(error)
        raise InputError(message if message.startswith(path) else f"{path}: {message}") \
            from None
    except yaml.YAMLError as error:
        raise InputError(f"{path}: malformed YAML ({str(error).splitlines()[0]})") from None
    except RecursionError:
        raise InputError(f"{path}: nested too deeply, or an alias refers to itself") from None


def _check(node, path: str, seen: set[int]) -> None:
    """Refuse what is not allowed anywhere in the file, before building anything (each node
    once: aliases share nodes)."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, _Tagged):
        if node.kind == "new" and node.target not in ALLOWED and node.target not in IGNORED:
            raise InputError(f"{path}: class {node.target} is not allowed in a model folder "
                             f"(allowed: {', '.join(sorted(ALLOWED))})")
        if node.kind == "name" and node.target not in ACTIVATIONS:
            raise InputError(f"{path}: !name:{node.target} is not an allowed activation "
                             f"({', '.join(sorted(ACTIVATIONS))})")
        _check(node.value, path, seen)
    elif isinstance(node, dict):
        if "modules" in node and isinstance(node["modules"], dict):
            unknown = set(node["modules"]) - MODULES
            if unknown:
                raise InputError(f"{path}: unknown module {sorted(unknown)[0]!r} (a model "
                                 f"folder has {', '.join(sorted(MODULES))})")
        for value in node.values():
            _check(value, path, seen)
    elif isinstance(node, list):
        for value in node:
            _check(value, path, seen)


def _resolve(node, raw: dict, built: dict, path: str, chain: tuple[str, ...]):
    """The value of ``node``; each node is resolved once (``built``, by node), so aliases and
    references share one value and a document of nested aliases stays its own size."""
    if isinstance(node, (dict, list)):
        if id(node) not in built:
            built[id(node)] = {k: _resolve(v, raw, built, path, chain) for k, v in
                               node.items()} if isinstance(node, dict) else \
                [_resolve(v, raw, built, path, chain) for v in node]
        return built[id(node)]
    if not isinstance(node, _Tagged):
        return node
    if node.kind == "ref":
        if id(node) not in built:
            built[id(node)] = _reference(str(node.value), raw, built, path, chain)
        return built[id(node)]
    if node.kind == "name":
        return getattr(importlib.import_module("torch.nn"), node.target.rsplit(".", 1)[1])
    if node.target in IGNORED:
        return None
    key = id(node)
    if key not in built:
        arguments = _resolve(node.value, raw, built, path, chain)
        module, attribute = ALLOWED[node.target]
        cls = getattr(importlib.import_module(module), attribute)

        def build(**where):
            return cls(**{**arguments, **where}) if isinstance(arguments, dict) else \
                cls(*(arguments if isinstance(arguments, list) else []))
        if isinstance(arguments, dict):
            for name, most in FRONTEND_LIMITS.items():
                value = arguments.get(name)
                if value is not None and (type(value) is not int or not 0 < value <= most):
                    raise InputError(f"{path}: {node.target}: {name} {value!r} is not an "
                                     f"integer from 1 to {most}")
        try:
            if node.target in SIZED and isinstance(arguments, dict):
                where = {"device": "meta"} if "device" in \
                    inspect.signature(cls).parameters else {}
                try:
                    with torch.device("meta"):
                        count = sum(p.numel() for p in build(**where).parameters())
                except RuntimeError:   # a class that cannot be built on meta: its sizes
                    count = max([v for v in arguments.values() if isinstance(v, int)],
                                default=0) ** 2
                if count > MAX_PARAMETERS:
                    raise InputError(f"{path}: {node.target} declared with {count:,} "
                                     f"parameters, more than {MAX_PARAMETERS:,}")
            built[key] = build()
        except (TypeError, ValueError, OverflowError, RuntimeError, AssertionError) as error:
            # what the file's values make the class refuse (device: cuda without CUDA too)
            raise InputError(f"{path}: {node.target}: {first_line(error)}") from None
    return built[key]


def _reference(text: str, raw: dict, built: dict, path: str, chain: tuple[str, ...]):
    """``<key>`` alone is the key's value (the same object); inside a string, its text.
    ``<a.b>`` is key ``b`` of the mapping written under ``a``: keys of the document only,
    never attributes of what was built."""
    def value_of(name: str):
        head, *rest = name.split(".")
        if head not in raw:
            raise InputError(f"{path}: !ref <{name}>: no key {head!r}")
        if head in chain:
            raise InputError(f"{path}: !ref <{name}> refers to itself")
        node = raw[head]
        for part in rest:
            if not isinstance(node, dict) or part not in node:
                raise InputError(f"{path}: !ref <{name}>: {part!r} is not a key of a mapping "
                                 f"written in the file")
            node = node[part]
        return _resolve(node, raw, built, path, (*chain, head))

    whole = REFERENCE.fullmatch(text.strip())
    if whole:
        return value_of(whole.group(1))
    pieces, size, end = [], 0, 0
    for match in REFERENCE.finditer(text):
        value = value_of(match.group(1))
        if not isinstance(value, str | int | float | bool | None):
            raise InputError(f"{path}: !ref {text!r}: <{match.group(1)}> is a "
                             f"{type(value).__name__}; only a text or a number goes into "
                             f"a string")
        for piece in (text[end:match.start()], str(value)):
            size += len(piece)
            if size > MAX_STRING:
                raise InputError(f"{path}: !ref {text!r} builds a string of more than "
                                 f"{MAX_STRING:,} characters")
            pieces.append(piece)
        end = match.end()
    return "".join(pieces) + text[end:]
