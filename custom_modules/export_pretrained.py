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

from custom_modules.pretrained import write_pretrained


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
        raise ValueError(f"{checkpointer.checkpoints_dir}: no checkpoint to export")
    meta = dict(checkpoint.meta)
    if not if_main_process():
        return meta
    target = write_pretrained(folder, compute_features, embedding_model, meta.get("threshold"),
                              {"classifier": classifier})
    shutil.copyfile(label_encoder_file, target / "label_encoder.txt")
    eer = f"{meta['EER']:.2f}%" if "EER" in meta else "not measured"
    (target / "README.md").write_text(
        f"# Pretrained ECAPA-TDNN\n\nTrained with `{hparams_file}` (see `train_log.txt` of the "
        f"experiment); checkpoint `{checkpoint.path.name}`, epoch {meta.get('epoch')}.\n\n"
        f"- validation EER: {eer}\n- decision threshold (validation EER threshold): "
        f"{meta.get('threshold')}\n\nLoad it with `custom_modules.pretrained.load_embedder("
        f"\"{Path(folder)}\")`.\n", encoding="utf-8")
    return meta
