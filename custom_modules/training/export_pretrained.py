"""Turn the best training checkpoint into a complete pretrained folder.

Writes ``<pretrained_folder>/``: ``hyperparams.yaml``, ``embedding_model.ckpt``,
``classifier.ckpt``, ``label_encoder.txt`` and a ``README.md`` saying how the model was
trained and its validation EER; the decision threshold is the validation EER threshold of the
chosen checkpoint. Every file ``hyperparams.yaml`` refers to is in the folder.
"""

import shutil
from pathlib import Path

import torch
from speechbrain.utils.distributed import if_main_process

from custom_modules.errors import InputError
from custom_modules.inference.pretrained import write_pretrained


def export_best(checkpointer, compute_features: torch.nn.Module,
                embedding_model: torch.nn.Module, classifier: torch.nn.Module,
                label_encoder_file: str, folder: str, hparams_file: str) -> dict:
    """Load the checkpoint with the lowest validation EER (else the latest) into the modules
    and write the pretrained folder; returns the checkpoint's meta.

    Call it on every process (loading synchronises them); only the main one writes."""
    checkpoint = checkpointer.recover_if_possible(min_key="EER") \
        if any("EER" in c.meta for c in checkpointer.list_checkpoints()) \
        else checkpointer.recover_if_possible()
    if checkpoint is None:
        raise InputError(f"{checkpointer.checkpoints_dir}: no checkpoint to export")
    # Checkpoints of a run without validation trials carry no EER and no threshold, and
    # intra-epoch ones no epoch.
    meta = {"EER": None, "threshold": None, "epoch": None, **checkpoint.meta}
    if not if_main_process():
        return meta
    target = write_pretrained(folder, compute_features, embedding_model, meta["threshold"],
                              {"classifier": classifier})
    shutil.copyfile(label_encoder_file, target / "label_encoder.txt")
    eer = "not measured" if meta["EER"] is None else f"{meta['EER']:.2f}%"
    (target / "README.md").write_text(
        f"# Pretrained ECAPA-TDNN\n\nTrained with `{hparams_file}` (see `train_log.txt` of the "
        f"experiment); checkpoint `{checkpoint.path.name}`, epoch {meta['epoch']}.\n\n"
        f"- validation EER: {eer}\n- decision threshold (validation EER threshold): "
        f"{meta['threshold']}\n\nLoad it with:\n\n    from custom_modules import SpeakerEncoder\n"
        f"    encoder = SpeakerEncoder.from_hparams(source=\"{Path(folder)}\")\n",
        encoding="utf-8")
    return meta
