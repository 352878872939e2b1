"""Start a training from a trained model (``init_from``), with layers frozen (``freeze``).

``init_from`` is either a pretrained folder (``<experiment>/pretrained``, or a SpeechBrain
folder converted by ``custom_modules.interop.speechbrain.import_speechbrain``) or a training
checkpoint (``<experiment>/save/CKPT+...``). The embedding model takes its weights; the new
recipe's frontend and model must be configured like the source's (a difference is a one-line
error naming the setting). The classifier is new, except the rows of the classes both label
encoders share: the same speaker at the same speed (``speaker_speeds``) keeps its row, and its
sub-centres when both heads have as many.

The class layout of a training (its ``speaker_speeds`` and sub-centres) is ``classes.json``,
written beside the label encoder at the start of training and exported with the model;
a folder without one (SpeechBrain's) is read as one speed and one sub-centre per speaker when
the classifier's rows say so.
"""

import json
import logging
from pathlib import Path

import torch

from custom_modules.errors import InputError
from custom_modules.inference.pretrained import HPARAMS, LABELS, load_embedder, read_labels

logger = logging.getLogger(__name__)
CLASSES = "classes.json"
MODEL = "model.json"        # beside a training's checkpoints: its frontend and model configs
HEAD = "aam_head.ckpt"      # an exported folder's full head; classifier.ckpt has a row a speaker
# The model settings that hparams/training.yaml has at its top level (the others are set
# under embedding_model or compute_features).
OVERRIDABLE = {"n_mels", "channels", "lin_neurons", "sample_rate"}


def write_model_configs(folder: str | Path, compute_features: torch.nn.Module,
                        embedding_model: torch.nn.Module) -> None:
    """``model.json`` beside a training's checkpoints: the configuration of its frontend and
    model, which ``init_from`` checks when it starts from one of those checkpoints."""
    Path(folder, MODEL).write_text(json.dumps({"compute_features": compute_features.config,
                                               "embedding_model": embedding_model.config})
                                   + "\n", encoding="utf-8")


def write_class_layout(folder: str | Path, speeds: list[float], subcenters: int,
                       resumed: bool = False) -> None:
    """``classes.json``: what each classifier row is (``row = (speed * speakers + speaker) *
    subcenters + subcentre``). A resumed run must keep its layout: a change is an
    ``InputError`` (its checkpoints would not fit)."""
    path = Path(folder, CLASSES)
    layout = {"speaker_speeds": list(speeds), "subcenters": subcenters}
    if resumed and path.is_file():
        before = json.loads(path.read_text(encoding="utf-8"))
        if before != layout:
            raise InputError(f"{path}: this experiment trained with {before}; resuming it with "
                             f"{layout} would not fit its checkpoints (use another "
                             f"output_folder, or the same speaker_speeds and subcenters)")
    path.write_text(json.dumps(layout) + "\n", encoding="utf-8")


def read_class_layout(path: Path) -> tuple[list[float], int]:
    """``(speaker_speeds, subcenters)`` from ``classes.json`` (one speed, one sub-centre when
    there is no such file)."""
    if not path.is_file():
        return [1.0], 1
    layout = json.loads(path.read_text(encoding="utf-8"))
    return layout["speaker_speeds"], layout["subcenters"]


class Source:
    """Where ``init_from`` points: its weights, label encoder and class layout files."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise InputError(f"init_from {self.path}: no such folder")
        if (self.path / HPARAMS).is_file():
            self.kind, self.weights, meta = "pretrained folder", self.path, self.path
        elif (self.path / "CKPT.yaml").is_file():
            self.kind, self.weights, meta = "training checkpoint", self.path, self.path.parent
        else:
            raise InputError(f"init_from {self.path}: neither a pretrained folder ({HPARAMS}) "
                             f"nor a training checkpoint (CKPT.yaml)")
        if not (self.weights / "embedding_model.ckpt").is_file():
            raise InputError(f"init_from {self.path}: no embedding_model.ckpt")
        self.labels, self.classes, self.model = meta / LABELS, meta / CLASSES, meta / MODEL

    def state(self, name: str) -> dict[str, torch.Tensor] | None:
        """The state dict of ``<name>.ckpt`` (``None`` when the source has none); the
        classifier of an exported folder is its full head, ``aam_head.ckpt``."""
        path = self.weights / f"{name}.ckpt"
        if name == "classifier" and (self.weights / HEAD).is_file():
            path = self.weights / HEAD
        return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() \
            else None


def check_same_architecture(source: Source, compute_features: torch.nn.Module,
                            embedding_model: torch.nn.Module) -> None:
    """One-line ``InputError`` when the recipe's frontend or model differ from the source's:
    by configuration (a pretrained folder's, or the ``model.json`` a training wrote beside its
    checkpoints), and always by parameter shapes."""
    configs = None
    if source.kind == "pretrained folder":
        theirs = load_embedder(source.path)
        configs = {"compute_features": theirs.compute_features.config,
                   "embedding_model": theirs.embedding_model.config}
    elif source.model.is_file():
        configs = json.loads(source.model.read_text(encoding="utf-8"))
    for name, ours in (("compute_features", compute_features),
                       ("embedding_model", embedding_model)):
        if configs is not None:
            theirs_config, our_config = _effective(configs[name]), _effective(ours.config)
            differ = {k: (v, our_config.get(k)) for k, v in theirs_config.items()
                      if our_config.get(k) != v}
            if differ:
                key, (value, mine) = next(iter(differ.items()))
                fix = f"set --{key}={value}" if key in OVERRIDABLE else \
                    f"add {key}: {value} under {name} in the YAML"
                raise InputError(f"init_from {source.path}: its {name} has {key}={value}, "
                                 f"this recipe {mine} ({fix} to match; {len(differ)} "
                                 f"setting(s) differ)")
    state = source.state("embedding_model")
    mine = embedding_model.state_dict()
    for key in sorted(set(state) | set(mine)):
        if key not in state or key not in mine or state[key].shape != mine[key].shape:
            raise InputError(f"init_from {source.path}: embedding_model.ckpt does not fit this "
                             f"recipe's model at {key} ({_shape(state, key)} there, "
                             f"{_shape(mine, key)} here)")


def _effective(config: dict) -> dict:
    """A configuration as it computes: a frontend's ``f_max: None`` is its Nyquist frequency
    (SpeechBrain's published folders say 8000.0 where our recipes leave it None)."""
    if "f_max" in config and config["f_max"] is None:
        return {**config, "f_max": config["sample_rate"] / 2}
    return config


def _shape(state: dict, key: str) -> str:
    return tuple(state[key].shape).__str__() if key in state else "absent"


def shared_rows(old_labels: dict[str, int], old_speeds: list[float], old_subcenters: int,
                new_labels: dict[str, int], new_speeds: list[float], new_subcenters: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices ``(new_rows, old_rows)`` of the classes both layouts share (same speaker,
    same speed); sub-centres are shared only when both have as many.

    >>> new, old = shared_rows({"a": 0, "b": 1}, [1.0], 1, {"b": 0, "c": 1}, [1.0, 0.9], 1)
    >>> new.tolist(), old.tolist()
    ([0], [1])
    """
    subcenters = old_subcenters if old_subcenters == new_subcenters else 0
    new_rows, old_rows = [], []
    for speed_index, speed in enumerate(new_speeds):
        if speed not in old_speeds:
            continue
        old_speed = old_speeds.index(speed)
        for speaker, index in new_labels.items():
            if speaker in old_labels:
                new_class = speed_index * len(new_labels) + index
                old_class = old_speed * len(old_labels) + old_labels[speaker]
                for sub in range(subcenters):
                    new_rows.append(new_class * new_subcenters + sub)
                    old_rows.append(old_class * old_subcenters + sub)
    return torch.tensor(new_rows, dtype=torch.long), torch.tensor(old_rows, dtype=torch.long)


def start_classifier(source: Source, classifier: torch.nn.Module, new_labels: dict[str, int],
                     new_speeds: list[float]) -> int:
    """Copy into ``classifier.weight`` the source's rows of the classes both share; returns
    how many classes kept their rows."""
    state = source.state("classifier")
    if state is None or "weight" not in state or not source.labels.is_file():
        logger.info("init_from %s: no classifier or label encoder, every class is new",
                    source.path)
        return 0
    old_labels = read_labels(source.labels)
    if source.classes.is_file():
        old_speeds, old_subcenters = read_class_layout(source.classes)
    elif len(state["weight"]) == len(old_labels):
        old_speeds, old_subcenters = [1.0], 1
    else:
        logger.warning("init_from %s: %d classifier rows for %d speakers and no %s: every "
                       "class is new", source.path, len(state["weight"]), len(old_labels),
                       CLASSES)
        return 0
    if len(state["weight"]) != len(old_labels) * len(old_speeds) * old_subcenters or \
            state["weight"].shape[1] != classifier.weight.shape[1]:
        raise InputError(f"init_from {source.path}: its classifier has "
                         f"{tuple(state['weight'].shape)} rows, which is not its "
                         f"{len(old_labels)} speakers x {len(old_speeds)} speeds x "
                         f"{old_subcenters} sub-centres of this model's embedding size")
    new_rows, old_rows = shared_rows(old_labels, old_speeds, old_subcenters, new_labels,
                                     new_speeds, classifier.subcenters)
    with torch.no_grad():
        classifier.weight[new_rows] = state["weight"][old_rows].to(classifier.weight)
    return len(torch.unique(new_rows // classifier.subcenters))


def frozen_modules(model: torch.nn.Module, prefixes: list[str]) -> list[torch.nn.Module]:
    """Stop the gradients of the parameters of ``model`` named by ``prefixes`` (e.g.
    ``["blocks.0", "blocks.1"]``: a prefix is a whole dotted name) and return the submodules
    they name; the training keeps them in eval mode (their batch-norm statistics do not move
    either)."""
    named = dict(model.named_modules())
    unknown = [p for p in prefixes if p not in named or p == ""]
    if unknown:
        tops = ", ".join(n for n, _ in model.named_children())
        raise InputError(f"freeze: {unknown[0]} is not a submodule of the embedding model "
                         f"(its layers: {tops}; deeper ones as blocks.0.conv ...)")
    for prefix in prefixes:
        for parameter in named[prefix].parameters():
            parameter.requires_grad_(False)
    return [named[p] for p in prefixes]


def initialise_from(path: str, compute_features: torch.nn.Module,
                    embedding_model: torch.nn.Module, classifier: torch.nn.Module,
                    labels: dict[str, int], speeds: list[float]) -> dict:
    """Load the source's embedding model and shared classifier rows into the recipe's modules;
    returns what was done (for the log and the exported README)."""
    source = Source(path)
    check_same_architecture(source, compute_features, embedding_model)
    embedding_model.load_state_dict(source.state("embedding_model"))
    kept = start_classifier(source, classifier, labels, speeds)
    report = {"init_from": str(source.path), "kind": source.kind, "classes_kept": kept,
              "classes": classifier.num_classes}
    logger.info("started from the %s %s: embedding model loaded, %d of %d classes keep their "
                "classifier rows", source.kind, source.path, kept, classifier.num_classes)
    return report
