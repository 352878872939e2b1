"""Turn the training checkpoints into a complete pretrained folder.

Writes ``<pretrained_folder>/``: ``hyperparams.yaml``, ``embedding_model.ckpt``,
``classifier.ckpt``, ``label_encoder.txt`` and a ``README.md`` saying how the model was
trained (the YAML, the augmentation corpora, the epochs) and its validation EER; the decision
threshold is the validation EER threshold. The weights are the last epoch's (``weights:
last``, the end of the annealed schedule: the default, since the bounded validation's
standard error, about 0.25 points at VoxCeleb's shape, is larger than late epochs differ),
the checkpoint with the lowest validation EER (``best``), or, with ``average`` set, the mean
of the last ``average`` epochs' checkpoints (WeSpeaker's ``num_avg``), validated again as
averaged.
"""

import shutil
from pathlib import Path

import torch
from speechbrain.utils.distributed import if_main_process

from custom_modules.errors import InputError
from custom_modules.inference.pretrained import write_pretrained
from custom_modules.models.embedder import Embedder
from custom_modules.training.init_from import CLASSES, HEAD, read_class_layout
from custom_modules.training.validation import BoundedValidation


def export_best(checkpointer, embedder: Embedder, classifier: torch.nn.Module,
                label_encoder_file: str, folder: str, hparams_file: str, average: int | None,
                weights: str, validation: BoundedValidation | None, corpora: dict[str, str],
                started_from: dict | None = None) -> dict:
    """Load the exported weights into ``embedder`` and ``classifier`` and write the folder;
    returns its meta (``epoch`` or ``epochs``, ``EER``, ``threshold``). ``started_from`` is
    ``training.init_from``'s report when the training started from another model; the class
    layout (``classes.json``) is copied from beside the label encoder when there is one.

    Call it on every process (loading synchronises them); only the main one writes."""
    if average is not None and average > 1:
        meta = _average_last(checkpointer, average, {"embedding_model": embedder.embedding_model,
                                                     "classifier": classifier})
        if validation is not None and if_main_process():
            meta.update({k: v for k, v in validation(embedder.eval()).items()
                         if k != "seconds"})
    else:
        meta = _load_chosen(checkpointer, weights)
    if not if_main_process():
        return meta
    layout = Path(label_encoder_file).parent / CLASSES
    speeds, subcenters = read_class_layout(layout)
    target = write_pretrained(folder, embedder.compute_features, embedder.embedding_model,
                              meta["threshold"],
                              speaker_rows(classifier.weight, speeds, subcenters),
                              label_encoder_file)
    torch.save(classifier.state_dict(), target / HEAD)
    if layout.is_file():
        shutil.copyfile(layout, target / CLASSES)
    eer = validation_eer(meta)
    weights = (f"checkpoint `{meta['checkpoint']}`, epoch {meta['epoch']}" if "epoch" in meta
               else f"the mean of epochs {meta['epochs'][0]} to {meta['epochs'][-1]}")
    augmentation = ", ".join(f"{kind}: {source}" for kind, source in corpora.items()) or "none"
    origin = "random weights" if started_from is None else (
        f"the {started_from['kind']} `{started_from['init_from']}` "
        f"({started_from['classes_kept']} of {started_from['classes']} classes kept their "
        f"classifier rows; frozen: {', '.join(started_from['freeze']) or 'nothing'})")
    (target / "README.md").write_text(
        f"# Pretrained ECAPA-TDNN\n\nTrained with `{hparams_file}` (see `hyperparams.yaml` and "
        f"`train_log.txt` of the experiment); weights: {weights}.\n\n"
        f"- started from: {origin}\n"
        f"- augmentation corpora: {augmentation}\n- validation EER: {eer}\n"
        f"- decision threshold (validation EER threshold): {meta['threshold']}\n\n"
        f"Load it with:\n\n    from custom_modules import SpeakerEncoder\n"
        f"    encoder = SpeakerEncoder.from_hparams(source=\"{Path(folder)}\")\n\n"
        f"or with SpeechBrain (this package installed):\n\n"
        f"    from speechbrain.inference.speaker import EncoderClassifier\n"
        f"    model = EncoderClassifier.from_hparams(source=\"{Path(folder).resolve()}\", "
        f"savedir=\"...\")\n",
        encoding="utf-8")
    return meta


def validation_eer(meta: dict) -> str:
    """The exported weights' validation EER as words.

    >>> validation_eer({"EER": 3.649999999999999}), validation_eer({"EER": None})
    ('3.65 %', 'not measured')
    """
    return "not measured" if meta["EER"] is None else f"{meta['EER']:.2f} %"


WEIGHTS = ("last", "best")


def _load_chosen(checkpointer, weights: str) -> dict:
    """Recover the last epoch's checkpoint (``last``) or the lowest-EER one (``best``), else
    the latest; its meta."""
    if weights not in WEIGHTS:
        raise InputError(f"export weights {weights!r}: choose one of {', '.join(WEIGHTS)}")
    metas = [c.meta for c in checkpointer.list_checkpoints()]
    key = {"last": "epoch", "best": "EER"}[weights]
    if not any(key in meta for meta in metas):
        checkpoint = checkpointer.recover_if_possible()
    elif weights == "last":
        checkpoint = checkpointer.recover_if_possible(max_key="epoch")
    else:
        checkpoint = checkpointer.recover_if_possible(min_key="EER")
    if checkpoint is None:
        raise InputError(f"{checkpointer.checkpoints_dir}: no checkpoint to export")
    # Checkpoints of a run without validation trials carry no EER and no threshold, and
    # intra-epoch ones no epoch.
    return {"EER": None, "threshold": None, "epoch": None, **checkpoint.meta,
            "checkpoint": checkpoint.path.name}


def _average_last(checkpointer, count: int, modules: dict[str, torch.nn.Module]) -> dict:
    """Load into ``modules`` the mean of their weights in the last ``count`` end-of-epoch
    checkpoints (integer buffers, e.g. batch counts, from the latest)."""
    epochs = sorted((c for c in checkpointer.list_checkpoints()
                     if c.meta.get("end-of-epoch") and "epoch" in c.meta),
                    key=lambda c: c.meta["epoch"])[-count:]
    if len(epochs) < count:
        raise InputError(f"average_checkpoints={count}, but {checkpointer.checkpoints_dir} "
                         f"keeps {len(epochs)} end-of-epoch checkpoints")
    for name, module in modules.items():
        states = [torch.load(c.paramfiles[name], map_location="cpu", weights_only=True)
                  for c in epochs]
        mean = {key: (sum(s[key] for s in states) / len(states)
                      if value.is_floating_point() else value)
                for key, value in states[-1].items()}
        module.load_state_dict(mean)
    return {"EER": None, "threshold": None, "epochs": [c.meta["epoch"] for c in epochs]}


def speaker_rows(weight: torch.Tensor, speeds: list[float], subcenters: int) -> torch.Tensor:
    """The AAM-softmax head ``(speeds * speakers * subcenters, dim)`` as one unit row per
    speaker ``(speakers, dim)``, what SpeechBrain's ``Classifier`` and label encoder read: the
    speaker at speed 1.0 (the first speed when 1.0 was not trained), the normalised mean of
    its sub-centres.

    >>> rows = speaker_rows(torch.eye(4)[[0, 1, 2, 3, 0, 1, 2, 3]], [0.9, 1.0], 2)
    >>> rows.shape, round(float(rows[0, 0]), 4)
    (torch.Size([2, 4]), 0.7071)
    """
    speed = speeds.index(1.0) if 1.0 in speeds else 0
    grouped = weight.detach().reshape(len(speeds), -1, subcenters, weight.shape[1])[speed]
    return torch.nn.functional.normalize(
        torch.nn.functional.normalize(grouped, dim=2).mean(dim=1), dim=1)
