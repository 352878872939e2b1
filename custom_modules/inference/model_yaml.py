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
file, before anything is built. Classes that only matter to SpeechBrain's own loader
(``Pretrainer``, ``CategoricalEncoder``) are read as ``None``. The paths of this package
before its reorganisation (``custom_modules.ecapa``, ``custom_modules.frontend``) still load.

>>> text = "n: 40\\nf: !new:custom_modules.models.frontend.MelFrontend\\n    n_mels: !ref <n>\\n"
>>> read_model_yaml(text, "hyperparams.yaml")["f"].config["n_mels"]
40
"""

import importlib
import re

import yaml

from custom_modules.errors import InputError

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


class _Tagged:
    """A tagged node, read as data: ``kind`` is new, name or ref."""

    def __init__(self, kind: str, target: str, value):
        self.kind, self.target, self.value = kind, target, value


class _Loader(yaml.SafeLoader):
    """The safe loader, knowing ``!new:``, ``!name:`` and ``!ref`` as data, and floats as
    YAML 1.2 (and HyperPyYAML) write them: ``1e-10`` is a number, not a string."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(
    r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+"
    r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?|\.(?:inf|Inf|INF))$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."))


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
    try:
        raw = yaml.load(text, Loader=_Loader)
    except InputError as error:
        raise InputError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        raise InputError(f"{path}: malformed YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: not a mapping of keys to values")
    _check(raw, path)
    built: dict = {}
    return {key: _resolve(raw[key], raw, built, path, (key,)) for key in raw}


def _check(node, path: str) -> None:
    """Refuse what is not allowed anywhere in the file, before building anything."""
    if isinstance(node, _Tagged):
        if node.kind == "new" and node.target not in ALLOWED and node.target not in IGNORED:
            raise InputError(f"{path}: class {node.target} is not allowed in a model folder "
                             f"(allowed: {', '.join(sorted(ALLOWED))})")
        if node.kind == "name" and node.target not in ACTIVATIONS:
            raise InputError(f"{path}: !name:{node.target} is not an allowed activation "
                             f"({', '.join(sorted(ACTIVATIONS))})")
        _check(node.value, path)
    elif isinstance(node, dict):
        if "modules" in node and isinstance(node["modules"], dict):
            unknown = set(node["modules"]) - MODULES
            if unknown:
                raise InputError(f"{path}: unknown module {sorted(unknown)[0]!r} (a model "
                                 f"folder has {', '.join(sorted(MODULES))})")
        for value in node.values():
            _check(value, path)
    elif isinstance(node, list):
        for value in node:
            _check(value, path)


def _resolve(node, raw: dict, built: dict, path: str, chain: tuple[str, ...]):
    if isinstance(node, dict):
        return {k: _resolve(v, raw, built, path, chain) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, raw, built, path, chain) for v in node]
    if not isinstance(node, _Tagged):
        return node
    if node.kind == "ref":
        return _reference(str(node.value), raw, built, path, chain)
    if node.kind == "name":
        return getattr(importlib.import_module("torch.nn"), node.target.rsplit(".", 1)[1])
    if node.target in IGNORED:
        return None
    key = id(node)
    if key not in built:
        arguments = _resolve(node.value, raw, built, path, chain)
        module, attribute = ALLOWED[node.target]
        cls = getattr(importlib.import_module(module), attribute)
        try:
            built[key] = cls(**arguments) if isinstance(arguments, dict) else \
                cls(*(arguments if isinstance(arguments, list) else []))
        except TypeError as error:
            raise InputError(f"{path}: {node.target}: {error}") from None
    return built[key]


def _reference(text: str, raw: dict, built: dict, path: str, chain: tuple[str, ...]):
    """``<key>`` alone is the key's value (the same object); inside a string, its text."""
    def value_of(name: str):
        head, *rest = name.split(".")
        if head not in raw:
            raise InputError(f"{path}: !ref <{name}>: no key {head!r}")
        if head in chain:
            raise InputError(f"{path}: !ref <{name}> refers to itself")
        value = _resolve(raw[head], raw, built, path, (*chain, head))
        for part in rest:
            value = value[part] if isinstance(value, dict) else getattr(value, part)
        return value

    whole = REFERENCE.fullmatch(text.strip())
    if whole:
        return value_of(whole.group(1))
    return REFERENCE.sub(lambda match: str(value_of(match.group(1))), text)
