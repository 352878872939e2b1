"""The training recipe as ``recipes/train_speaker_embeddings.py`` runs it, in a straight line:
run options -> distributed group -> experiment folder -> data preparation (main process) ->
training set -> classifier for its speakers -> ``SpeakerBrain.fit`` -> replica check ->
export of the best checkpoint -> its scoring back-end (``evaluation.backend_fit``).

``KEYS`` are the top-level YAML keys it reads and ``RUN_OPTIONS`` the SpeechBrain run options
it honours; ``custom_modules.config.load_recipe`` checks both.
"""

import json
import logging
import os
from pathlib import Path

import speechbrain as sb
import torch
from speechbrain.utils.distributed import if_main_process, run_on_main

from custom_modules.config import Recipe, all_run_options, device_of
from custom_modules.errors import InputError, finite_number
from custom_modules.inference.precision import supported
from custom_modules.sidecars import exported_state
from custom_modules.training.anchor import StartingPoint
from custom_modules.training.brain import SpeakerBrain
from custom_modules.training.distributed import distributed_defaults, replicas_identical
from custom_modules.training.examples import training_set
from custom_modules.training.export_pretrained import export_best, validation_eer
from custom_modules.training.init_from import (
    initialise_from,
    write_class_layout,
    write_model_configs,
)

logger = logging.getLogger(__name__)
STARTED_FROM = "started_from.json"   # what init_from loaded, kept for resumed runs
KEYS = ("export_weights", "check_precisions_at_export", "precision_check", "output_folder",
        "save_folder", "pretrained_folder", "preparation", "train_csv",
        "crop_seconds", "speaker_speeds", "example_augment", "dataloader_options",
        "compute_features", "embedding_model", "classifier", "modules", "opt_class",
        "epoch_counter", "checkpointer", "init_from", "backend", "precision",
        *SpeakerBrain.HPARAMS)
TRAINING_PRECISIONS = ("fp32", "bf16", "fp16", "auto")
# Not honoured: this recipe has no test stage (test_only, eval_precision: verification is its
# own recipe, recipes/speaker_verification.py); DataParallel is SpeechBrain's deprecated
# single-process multi-GPU mode (use torchrun); TorchScript cannot compile the model.
RUN_OPTIONS = all_run_options() - {"test_only", "eval_precision", "data_parallel_backend",
                                 "jit", "jit_module_keys"}


def train(recipe: Recipe) -> dict:
    """Prepare, train and export; returns the exported checkpoint's meta (epoch, EER,
    threshold)."""
    hparams = recipe.hparams
    run_opts = distributed_defaults(recipe.run_opts)
    if "precision" not in run_opts.overridden_args:   # else Brain takes --precision
        hparams["precision"] = training_precision(hparams["precision"], device_of(run_opts),
                                                  recipe.path)
    schedule, average = hparams["lr_schedule"], hparams["average_checkpoints"]
    if average and schedule.cycle_epochs and average > schedule.cycle_epochs / 2:
        logger.warning("average_checkpoints=%d reaches back past the last learning-rate "
                       "cycle's descent (%g epochs a cycle): the mean takes in its peak",
                       average, schedule.cycle_epochs)
    sb.utils.distributed.ddp_init_group(run_opts)
    log_config = run_opts.log_config or sb.core.DEFAULT_LOG_CONFIG
    sb.create_experiment_directory(experiment_directory=hparams["output_folder"],
                                   log_config=log_config)
    if if_main_process():
        Path(hparams["output_folder"], "hyperparams.yaml").write_text(
            f"# Composed from {recipe.path} and the command line\n{recipe.text}",
            encoding="utf-8")
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    if processes > 1 and hparams["preparation"] and not Path(hparams["train_csv"]).is_file():
        logger.warning("preparing the data on rank 0 while %d processes wait at most 2 hours: "
                       "for VoxCeleb (hours of conversion) run recipes/prepare_data.py with "
                       "the same YAML and options before a multi-process launch",
                       processes - 1)
    for step in hparams["preparation"]:
        run_on_main(step)
    label_encoder = f"{hparams['save_folder']}/label_encoder.txt"
    augmenter = hparams["example_augment"]
    corpora = {} if augmenter is None else augmenter.sources()
    logger.info("augmentation corpora: %s", corpora or "none")
    train_data = training_set(hparams["train_csv"], label_encoder, hparams["crop_seconds"],
                              hparams["sample_rate"], hparams["speaker_speeds"], augmenter)
    classifier = hparams["classifier"](num_classes=train_data.num_classes)
    checkpointer = hparams["checkpointer"]
    resumed = checkpointer.find_checkpoint() is not None
    if if_main_process():
        write_class_layout(hparams["save_folder"], hparams["speaker_speeds"],
                           classifier.subcenters, resumed)
        write_model_configs(hparams["save_folder"], hparams["compute_features"],
                            hparams["embedding_model"])
    if not finite_number(hparams["anchor_weight"]) or hparams["anchor_weight"] < 0:
        raise InputError(f"anchor_weight {hparams['anchor_weight']!r}: a number from 0 (off)")
    started_from = None
    if hparams["init_from"] is not None:
        started_from = start_from(hparams, classifier, dict(train_data.encoder.lab2ind),
                                  resumed)
    elif hparams["freeze"] or hparams["pretrained_lr_scale"] != 1 or hparams["anchor_weight"]:
        raise InputError(f"freeze {hparams['freeze']}, pretrained_lr_scale "
                         f"{hparams['pretrained_lr_scale']} and anchor_weight "
                         f"{hparams['anchor_weight']} apply to a model started from "
                         f"init_from, which is null")
    hparams["modules"]["classifier"] = classifier
    checkpointer.add_recoverable("classifier", classifier)
    if hparams["anchor_weight"] > 0:     # a resumed run reads it back from its checkpoint
        hparams["modules"]["starting_point"] = StartingPoint(hparams["embedding_model"])
        checkpointer.add_recoverable("starting_point", hparams["modules"]["starting_point"])
    brain = SpeakerBrain(modules=hparams["modules"], opt_class=hparams["opt_class"],
                         hparams=hparams, run_opts=run_opts, checkpointer=checkpointer)
    brain.fit(hparams["epoch_counter"], train_data.dataset, None,
              train_loader_kwargs=hparams["dataloader_options"])
    # A diagnostic: rank 0's weights are exported (and checkpointed) either way, so a long
    # run is not thrown away over it.
    if not replicas_identical(hparams["embedding_model"]):
        logger.error("the training processes ended with different weights (a DDP defect): "
                     "exporting the first process's")
    elif torch.distributed.is_initialized():
        logger.info("weights identical on %d processes", torch.distributed.get_world_size())
    meta = export_best(checkpointer, brain.embedder(), classifier, label_encoder,
                       hparams["pretrained_folder"], recipe.path,
                       hparams["average_checkpoints"], hparams["export_weights"],
                       brain.validation, corpora,
                       started_from)
    logger.info("exported %s (validation EER %s)", hparams["pretrained_folder"],
                validation_eer(meta))
    folder = hparams["pretrained_folder"]   # the export writes its back-end and check here
    if hparams["backend"] is not None and if_main_process():
        hparams["backend"](brain.embedder().eval(), exported_state(folder), folder)
    if hparams["check_precisions_at_export"] and if_main_process():
        if hparams["valid_trials"] and Path(hparams["valid_trials"]).is_file():
            hparams["precision_check"](brain.embedder().eval(), exported_state(folder),
                                       folder)
            logger.info("precisions checked on the validation trials: %s",
                        Path(folder, "precisions.json"))
        else:
            logger.warning("no validation trials: the precisions are not checked (auto "
                           "is fp32 for this model)")
    return meta


def training_precision(requested: str, device: str, source: str) -> str:
    """The YAML's ``precision`` as SpeechBrain's Brain takes it: ``auto`` becomes bf16 where
    ``device`` runs bfloat16 natively (``inference.precision.supported``), else fp16 on a CUDA
    GPU (one before Ampere: mixed precision with loss scaling) and fp32 on a CPU.

    >>> training_precision("fp32", "cpu", "demo.yaml")
    'fp32'
    """
    if requested not in TRAINING_PRECISIONS:
        raise InputError(f"{source}: precision {requested!r}: choose one of "
                         f"{', '.join(TRAINING_PRECISIONS)}")
    if requested != "auto":
        return requested
    chosen = "bf16" if supported("bf16", device) else \
        "fp16" if device.startswith("cuda") else "fp32"
    logger.info("precision auto: %s on %s", chosen, device)
    return chosen


def start_from(hparams: dict, classifier: torch.nn.Module, labels: dict[str, int],
               resumed: bool) -> dict:
    """Load ``init_from`` into the modules, or, on a resumed run (whose checkpoint has the
    weights), only read back what the first run recorded in ``save_folder/started_from.json``
    (so the source may be gone by then); returns that record."""
    record = Path(hparams["save_folder"], STARTED_FROM)
    if resumed and record.is_file():
        return json.loads(record.read_text(encoding="utf-8"))
    started_from = initialise_from(hparams["init_from"], hparams["compute_features"],
                                   hparams["embedding_model"], classifier, labels,
                                   hparams["speaker_speeds"])
    started_from["freeze"] = hparams["freeze"]
    if if_main_process():
        record.write_text(json.dumps(started_from) + "\n", encoding="utf-8")
    return started_from
