"""The pretrained folder: everything needed to embed without the training code.

Layout (SpeechBrain's ``EncoderClassifier`` conventions)::

    hyperparams.yaml        modules: compute_features (MelFrontend), embedding_model
                            (ECAPA_TDNN), optionally mean_var_norm_emb; decision threshold
    embedding_model.ckpt    state dict of each module, named <module>.ckpt
    ...

``load_embedder(folder)`` builds the modules from ``hyperparams.yaml``, read as data with an
allow-list of classes (``inference.model_yaml``: nothing in a folder executes), and loads every
``<module>.ckpt`` found there, or in ``checkpoint`` (a training checkpoint folder written by
SpeechBrain's ``Checkpointer``) when one is given. Weights are read with ``weights_only=True``.
"""

import json
import os
from pathlib import Path

import torch

from custom_modules.errors import InputError
from custom_modules.inference.model_yaml import read_model_yaml
from custom_modules.models.embedder import Embedder

HPARAMS = "hyperparams.yaml"


def write_pretrained(folder: str | os.PathLike, compute_features: torch.nn.Module,
                     embedding_model: torch.nn.Module, threshold: float | None = None,
                     extra_modules: dict[str, torch.nn.Module] | None = None,
                     emb_norm_std: bool | None = None) -> Path:
    """Write ``hyperparams.yaml`` and ``<module>.ckpt`` files into ``folder``.

    The frontend and the model are described by their ``config`` (constructor arguments);
    ``extra_modules`` (e.g. the classifier) are saved as checkpoints beside them. With
    ``emb_norm_std`` set, the file also declares SpeechBrain's global embedding normalisation
    (``mean_var_norm_emb``; its statistics file is the caller's to copy in).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = (f"sample_rate: {compute_features.config['sample_rate']}\n"
            f"threshold: {json.dumps(threshold)}\n"
            f"compute_features: !new:custom_modules.models.frontend.MelFrontend\n"
            f"{_indented(compute_features.config)}"
            f"embedding_model: !new:custom_modules.models.ecapa.ECAPA_TDNN\n"
            f"{_indented(embedding_model.config)}"
            "modules:\n    compute_features: !ref <compute_features>\n"
            "    embedding_model: !ref <embedding_model>\n")
    if emb_norm_std is not None:
        text += ("    mean_var_norm_emb: !ref <mean_var_norm_emb>\n"
                 "normalize_embeddings: false  # true: apply mean_var_norm_emb\n"
                 "mean_var_norm_emb: !new:speechbrain.processing.features.InputNormalization\n"
                 f"    norm_type: global\n    std_norm: {json.dumps(emb_norm_std)}\n")
    (folder / HPARAMS).write_text(text, encoding="utf-8")
    modules = {"embedding_model": embedding_model, **(extra_modules or {})}
    for name, module in modules.items():
        torch.save(module.state_dict(), folder / f"{name}.ckpt")
    return folder


def load_embedder(source: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
                  device: str = "cpu") -> Embedder:
    """Build the embedder described by ``source/hyperparams.yaml`` with its weights (from
    ``checkpoint`` when given). One-line ``InputError`` for a folder that is not usable."""
    source = Path(source)
    weights = Path(checkpoint) if checkpoint is not None else source
    if not (source / HPARAMS).is_file():
        raise InputError(f"{source}: not a pretrained folder (no {HPARAMS})")
    hparams = read_model_yaml((source / HPARAMS).read_text(encoding="utf-8"),
                              str(source / HPARAMS))
    for key in ("sample_rate", "threshold", "modules"):
        if key not in hparams:
            raise InputError(f"{source / HPARAMS}: no '{key}'")
    modules = hparams["modules"]
    for name in ("compute_features", "embedding_model"):
        if name not in modules:
            raise InputError(f"{source / HPARAMS}: modules has no {name}")
    if not (weights / "embedding_model.ckpt").is_file():
        raise InputError(f"{weights}: no embedding_model.ckpt")
    for name, module in modules.items():
        path = weights / f"{name}.ckpt"
        if not path.is_file():
            continue
        if hasattr(module, "_load"):  # SpeechBrain's statistics (e.g. mean_var_norm_emb)
            module._load(str(path))
        else:
            module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
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


def _indented(kwargs: dict) -> str:
    """``key: value`` lines, values in JSON (which YAML reads as it is); an activation class
    is written as ``!name:`` so that it is passed as a class."""
    return "".join(f"    {key}: !name:{value}\n" if key == "activation"
                   else f"    {key}: {json.dumps(value)}\n" for key, value in kwargs.items())
