"""Convert a SpeechBrain speaker model folder into our pretrained folder.

Input: a local folder in the layout of SpeechBrain's ``spkrec-ecapa-voxceleb``
(``hyperparams.yaml`` with ``compute_features`` (Fbank), ``mean_var_norm``, ``embedding_model``
(ECAPA_TDNN), optionally ``mean_var_norm_emb``; ``embedding_model.ckpt``, optionally
``mean_var_norm_emb.ckpt``, ``classifier.ckpt``, ``label_encoder.txt`` (or the same file as
``label_encoder.ckpt``, the name SpeechBrain's pretrainer saves it under)). The architecture is
read from the instantiated modules, so any ECAPA configuration converts; the weights load into
our ``ECAPA_TDNN`` unchanged (same state-dict keys) and the frontend settings map onto
``MelFrontend``.
"""

import os
import shutil
from pathlib import Path

import torch

from custom_modules.errors import InputError
from custom_modules.inference.model_yaml import read_model_yaml
from custom_modules.inference.pretrained import HPARAMS, read_tensor_file, write_pretrained
from custom_modules.models.ecapa import ECAPA_TDNN
from custom_modules.models.frontend import MelFrontend


def ecapa_config(model: torch.nn.Module) -> dict:
    """Constructor arguments of a SpeechBrain (or our) ECAPA_TDNN, read from its layers."""
    first, blocks = model.blocks[0], list(model.blocks)[1:]
    convs = [first.conv.conv] + [b.res2net_block.blocks[0].conv.conv for b in blocks] \
        + [model.mfa.conv.conv]
    return {"input_size": first.conv.conv.in_channels,
            "lin_neurons": model.fc.conv.out_channels,
            "channels": [first.conv.conv.out_channels] + [b.out_channels for b in blocks]
            + [model.mfa.conv.conv.out_channels],
            "kernel_sizes": [c.kernel_size[0] for c in convs],
            "dilations": [c.dilation[0] for c in convs],
            "attention_channels": model.asp.tdnn.conv.conv.out_channels,
            "res2net_scale": blocks[0].res2net_block.scale,
            "se_channels": blocks[0].se_block.conv1.conv.out_channels,
            "global_context": model.asp.global_context,
            "groups": [first.conv.conv.groups] + [b.tdnn1.conv.conv.groups for b in blocks]
            + [model.mfa.conv.conv.groups],
            "dropout": first.dropout.p}


def frontend_config(fbank: torch.nn.Module, normalization: torch.nn.Module | None) -> dict:
    """``MelFrontend`` arguments equivalent to a SpeechBrain ``Fbank`` (+ sentence norm)."""
    stft, filters = fbank.compute_STFT, fbank.compute_fbanks
    rate = stft.sample_rate
    if getattr(fbank, "deltas", False) or getattr(fbank, "context", False) \
            or filters.filter_shape != "triangular" or not filters.log_mel:
        raise InputError("only SpeechBrain Fbank with triangular log-mel filters and no deltas "
                         "or context can be converted")
    return {"sample_rate": rate, "n_fft": stft.n_fft,
            "win_length": 1000 * stft.win_length / rate,
            "hop_length": 1000 * stft.hop_length / rate, "n_mels": filters.n_mels,
            "f_min": float(filters.f_min), "f_max": float(filters.f_max),
            "top_db": filters.top_db, "amin": filters.amin,
            "mean_norm": normalization is not None,
            "std_norm": bool(normalization is not None and normalization.std_norm)}


def import_speechbrain(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Write our pretrained folder at ``target`` from SpeechBrain's folder ``source`` (read as
    data; its files may be links, as SpeechBrain's hub cache makes them)."""
    source, target = Path(source), Path(target)
    if not (source / HPARAMS).is_file() or not (source / "embedding_model.ckpt").is_file():
        raise InputError(f"{source}: not a SpeechBrain speaker model folder (needs "
                         f"{HPARAMS} and embedding_model.ckpt)")
    hparams = read_model_yaml((source / HPARAMS).read_text(encoding="utf-8"),
                              str(source / HPARAMS))
    sb_model = hparams["embedding_model"]
    norm = hparams.get("mean_var_norm")
    if norm is not None and norm.norm_type != "sentence":
        raise InputError(f"{source / HPARAMS}: mean_var_norm must be sentence-level")
    model = ECAPA_TDNN(**ecapa_config(sb_model))
    model.load_state_dict(read_tensor_file(source / "embedding_model.ckpt"))
    frontend = MelFrontend(**frontend_config(hparams["compute_features"], norm))
    has_emb_norm = "mean_var_norm_emb" in hparams and \
        (source / "mean_var_norm_emb.ckpt").is_file()
    classifier = hparams.get("classifier")
    if classifier is not None and (source / "classifier.ckpt").is_file():
        classifier.load_state_dict(read_tensor_file(source / "classifier.ckpt"))
        if set(classifier.state_dict()) != {"weight"}:  # hidden layers: not a cosine head
            classifier = None
    else:
        classifier = None
    labels = next((p for p in (source / "label_encoder.txt", source / "label_encoder.ckpt")
                   if p.is_file()), None)
    write_pretrained(target, frontend, model, hparams.get("threshold"),
                     None if classifier is None else classifier.weight, labels,
                     emb_norm_std=hparams["mean_var_norm_emb"].std_norm if has_emb_norm
                     else None)
    if has_emb_norm:
        shutil.copyfile(source / "mean_var_norm_emb.ckpt", target / "mean_var_norm_emb.ckpt")
    return target
