"""The pretrained folder: everything needed to embed without the training code, loadable by
``SpeakerEncoder`` and by SpeechBrain's ``EncoderClassifier.from_hparams(source=folder)``.

Layout (SpeechBrain's ``EncoderClassifier`` conventions)::

    hyperparams.yaml        modules: compute_features (MelFrontend), mean_var_norm,
                            embedding_model (ECAPA_TDNN), classifier, optionally
                            mean_var_norm_emb; the label encoder, SpeechBrain's pretrainer and
                            the decision threshold
    embedding_model.ckpt    state dict of each module, named <module>.ckpt
    classifier.ckpt         one unit row per speaker of the label encoder, as SpeechBrain's
                            Classifier holds them (the training's full AAM-softmax head, all
                            speeds and sub-centres, is aam_head.ckpt with classes.json)
    label_encoder.txt       speakers (and label_encoder.ckpt, the same file under the name
                            SpeechBrain's pretrainer looks for)

SpeechBrain's ``EncoderClassifier`` normalises the features in a module of its own
(``mean_var_norm``) after ``compute_features``; our frontend has normalised them already, and
that module (``SentenceNormalisation``) repeats the same normalisation over the valid frames,
which changes nothing on a file alone: both loaders give the same embeddings (tested).
SpeechBrain imports our frontend and model classes from this package, which must be
installed where it runs.

``load_embedder(folder)`` builds the modules from ``hyperparams.yaml``, read as data with an
allow-list of classes (``inference.model_yaml``: nothing in a folder executes), and loads every
``<module>.ckpt`` found there, or in ``checkpoint`` (a training checkpoint folder written by
SpeechBrain's ``Checkpointer``) when one is given. Weights are read with ``weights_only=True``.
"""

import json
import os
import shutil
from pathlib import Path

import torch

from custom_modules.errors import InputError, finite_number
from custom_modules.files import read_utf8, within
from custom_modules.inference.model_yaml import read_model_yaml
from custom_modules.models.ecapa import ECAPA_TDNN
from custom_modules.models.embedder import Embedder
from custom_modules.models.frontend import MelFrontend, SentenceNormalisation

HPARAMS = "hyperparams.yaml"
LABELS = "label_encoder.txt"


def write_pretrained(folder: str | os.PathLike, compute_features: torch.nn.Module,
                     embedding_model: torch.nn.Module, threshold: float | None = None,
                     classifier: torch.Tensor | None = None,
                     label_encoder: str | os.PathLike | None = None,
                     emb_norm_std: bool | None = None) -> Path:
    """Write ``hyperparams.yaml``, the ``<module>.ckpt`` files and the label encoder.

    The frontend and the model are described by their ``config`` (constructor arguments).
    ``classifier`` is ``(speakers, dim)``, one class direction per speaker of
    ``label_encoder`` (a SpeechBrain label-encoder file, copied in), in its order. With
    ``emb_norm_std`` set, the file also declares SpeechBrain's global embedding
    normalisation (``mean_var_norm_emb``; its statistics file is the caller's to copy in).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = compute_features.config
    text = (f"sample_rate: {config['sample_rate']}\n"
            f"threshold: {json.dumps(threshold)}\n"
            f"compute_features: !new:custom_modules.models.frontend.MelFrontend\n"
            f"{_indented(config)}"
            "# For SpeechBrain's EncoderClassifier: the frontend's own normalisation again\n"
            "mean_var_norm: !new:custom_modules.models.frontend.SentenceNormalisation\n"
            f"    mean_norm: {json.dumps(config['mean_norm'])}\n"
            f"    std_norm: {json.dumps(config['std_norm'])}\n"
            f"embedding_model: !new:custom_modules.models.ecapa.ECAPA_TDNN\n"
            f"{_indented(embedding_model.config)}")
    modules = ["compute_features", "mean_var_norm", "embedding_model"]
    loadables = ["embedding_model"]
    states = {"embedding_model": embedding_model.state_dict()}
    if classifier is not None:
        rows, dim = classifier.shape
        speakers = None if label_encoder is None else len(read_labels(label_encoder))
        if speakers is not None and rows != speakers:
            raise ValueError(f"classifier of {rows} rows for the {speakers} speakers of "
                             f"{label_encoder}")
        text += ("classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier\n"
                 f"    input_size: {dim}\n    out_neurons: {rows}\n    lin_blocks: 0\n")
        modules.append("classifier")
        loadables.append("classifier")
        states["classifier"] = {"weight": classifier.detach().clone()}
    if emb_norm_std is not None:
        text += ("normalize_embeddings: false  # true: apply mean_var_norm_emb\n"
                 "mean_var_norm_emb: !new:speechbrain.processing.features.InputNormalization\n"
                 f"    norm_type: global\n    std_norm: {json.dumps(emb_norm_std)}\n")
        modules.append("mean_var_norm_emb")
        loadables.append("mean_var_norm_emb")
    if label_encoder is not None:
        shutil.copyfile(label_encoder, folder / LABELS)
        shutil.copyfile(label_encoder, folder / "label_encoder.ckpt")
        text += "label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder\n"
        loadables.append("label_encoder")
    text += "modules:\n" + "".join(f"    {m}: !ref <{m}>\n" for m in modules)
    text += ("# SpeechBrain's EncoderClassifier.from_hparams loads <name>.ckpt of the folder\n"
             "pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer\n"
             "    loadables:\n" + "".join(f"        {m}: !ref <{m}>\n" for m in loadables))
    (folder / HPARAMS).write_text(text, encoding="utf-8")
    for name, state in states.items():
        torch.save(state, folder / f"{name}.ckpt")
    return folder


def load_embedder(source: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
                  device: str = "cpu") -> Embedder:
    """Build the embedder described by ``source/hyperparams.yaml`` with its weights (from
    ``checkpoint`` when given). One-line ``InputError`` for a folder that is not usable."""
    source = Path(source)
    weights = Path(checkpoint) if checkpoint is not None else source
    if not within(source, HPARAMS).is_file():
        raise InputError(f"{source}: not a pretrained folder (no {HPARAMS})")
    hparams = read_model_yaml(read_utf8(source / HPARAMS), str(source / HPARAMS))
    for key in ("sample_rate", "threshold", "modules"):
        if key not in hparams:
            raise InputError(f"{source / HPARAMS}: no '{key}'")
    modules = hparams["modules"]
    if not isinstance(modules, dict):
        raise InputError(f"{source / HPARAMS}: modules is a {type(modules).__name__}, not a "
                         f"mapping of names to modules")
    for name in ("compute_features", "embedding_model"):
        if name not in modules:
            raise InputError(f"{source / HPARAMS}: modules has no {name}")
    if not isinstance(modules["compute_features"], MelFrontend) or \
            not isinstance(modules["embedding_model"], ECAPA_TDNN):
        raise InputError(f"{source / HPARAMS}: SpeechBrain's own modules; convert the folder "
                         f"first (custom_modules.interop.speechbrain.import_speechbrain)")
    frontend, norm = modules["compute_features"], modules.get("mean_var_norm")
    rate = hparams["sample_rate"]
    if type(rate) is not int or rate != frontend.config["sample_rate"]:
        raise InputError(f"{source / HPARAMS}: sample_rate {rate!r} is not the rate its "
                         f"compute_features takes ({frontend.config['sample_rate']})")
    threshold = hparams["threshold"]
    if threshold is not None and not finite_number(threshold):
        raise InputError(f"{source / HPARAMS}: threshold {threshold!r} is not a finite number "
                         f"(or null)")
    if norm is not None and (not isinstance(norm, SentenceNormalisation) or
                             (norm.mean_norm, norm.std_norm) !=
                             (frontend.mean_norm, frontend.std_norm)):
        raise InputError(f"{source / HPARAMS}: mean_var_norm is not the frontend's own "
                         f"normalisation (SentenceNormalisation with its mean_norm and "
                         f"std_norm): SpeechBrain's loader would embed differently")
    if not within(weights, "embedding_model.ckpt").is_file():
        raise InputError(f"{weights}: no embedding_model.ckpt")
    for name, module in modules.items():
        path = within(weights, f"{name}.ckpt")
        if not path.is_file():
            continue
        if hasattr(module, "_load_statistics_dict"):  # SpeechBrain's InputNormalization
            module._load_statistics_dict(_normalisation_statistics(path))
        else:
            state = read_tensor_file(path)
            try:
                module.load_state_dict(state)
            except RuntimeError as error:
                details = str(error).splitlines()[-1].strip()
                raise InputError(f"{path}: does not fit the {name} that {HPARAMS} declares "
                                 f"({details})") from None
    # Like SpeechBrain's encode_batch(normalize=False), the embedding normalisation is only
    # applied when the folder asks for it.
    emb_norm = None
    if "mean_var_norm_emb" in modules:
        if "normalize_embeddings" not in hparams:
            raise InputError(f"{source / HPARAMS}: mean_var_norm_emb without "
                             f"normalize_embeddings (true or false)")
        emb_norm = modules["mean_var_norm_emb"] if hparams["normalize_embeddings"] else None
    embedder = Embedder(modules["compute_features"], modules["embedding_model"], emb_norm,
                        hparams["threshold"], hparams["sample_rate"])
    return embedder.to(device).eval()


def read_tensor_file(path: str | os.PathLike):
    """A model folder's tensor file, read as data (``weights_only=True``, on the CPU); a file
    that cannot be read so (a pickle, a damaged file) is a one-line ``InputError``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable file is the folder's problem, not a bug
        raise InputError(f"{path}: not a tensor file that can be read safely "
                         f"({type(error).__name__})") from None


def _normalisation_statistics(path: Path) -> dict:
    """The statistics of SpeechBrain's ``InputNormalization`` (``count``, ``glob_mean``,
    ``glob_std``), read as data: its own ``_load`` calls ``torch.load`` without
    ``weights_only``, which would run a pickle in a folder from someone else."""
    stats = read_tensor_file(path)
    if not isinstance(stats, dict) or not {"count", "glob_mean", "glob_std"} <= set(stats):
        raise InputError(f"{path}: not normalisation statistics (no count, glob_mean and "
                         f"glob_std)")
    mean, std = stats["glob_mean"], stats["glob_std"]
    if not all(isinstance(t, torch.Tensor) and t.is_floating_point() and t.dim() == 1
               for t in (mean, std)) or std.shape not in (mean.shape, (1,)) \
            or not bool(torch.isfinite(mean).all() and torch.isfinite(std).all()):
        raise InputError(f"{path}: glob_mean and glob_std are not finite vectors of one "
                         f"size (or a single std)")
    # SpeechBrain's older files carry per-speaker statistics too, which embedding never uses.
    return {"count": stats["count"], "glob_mean": mean, "glob_std": std}


def _indented(kwargs: dict) -> str:
    """``key: value`` lines, values in JSON (which YAML reads as it is); an activation class
    is written as ``!name:`` so that it is passed as a class."""
    return "".join(f"    {key}: !name:{value}\n" if key == "activation"
                   else f"    {key}: {json.dumps(value)}\n" for key, value in kwargs.items())



def read_labels(path: str | os.PathLike) -> dict[str, int]:
    """A SpeechBrain label encoder file as ``{label: index}``."""
    from speechbrain.dataio.encoder import CategoricalEncoder  # SpeechBrain only when needed

    encoder = CategoricalEncoder()
    encoder.load(path)
    return dict(encoder.lab2ind)
