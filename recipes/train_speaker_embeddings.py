"""Train ECAPA-TDNN speaker embeddings (SpeechBrain Brain, configured by HyperPyYAML).

    python recipes/train_speaker_embeddings.py hparams/ecapa.yaml --data_folder=...
    torchrun --nproc_per_node=2 recipes/train_speaker_embeddings.py hparams/ecapa.yaml ...

Prepares the data (on the main process), trains with checkpoints kept by validation EER and
intra-epoch checkpoints (``--ckpt_interval_minutes``), and exports the best checkpoint to the
pretrained folder.
"""

import logging
import sys

import speechbrain as sb
import torch

from custom_modules.export_pretrained import export_best
from custom_modules.hparams import load_hparams
from custom_modules.speaker_brain import (
    SpeakerBrain,
    distributed_defaults,
    replicas_identical,
)
from custom_modules.training_data import training_set


def main() -> None:
    hparams_file, _, overrides = sb.parse_arguments(sys.argv[1:])
    hparams, run_opts = load_hparams(sys.argv[1:])
    run_opts = distributed_defaults(run_opts)
    sb.utils.distributed.ddp_init_group(run_opts)
    sb.create_experiment_directory(experiment_directory=hparams["output_folder"],
                                   hyperparams_to_save=hparams_file, overrides=overrides)
    try:
        for step in hparams["preparation"]:
            sb.utils.distributed.run_on_main(step)
        train_data = training_set(hparams["train_csv"],
                                  f"{hparams['save_folder']}/label_encoder.txt",
                                  hparams["crop_seconds"], hparams["sample_rate"],
                                  hparams.get("speaker_speeds", [1.0]))
    except (ValueError, RuntimeError) as error:
        sys.exit(f"error: {error}")
    classifier = hparams["classifier"](num_classes=train_data.num_classes)
    hparams["modules"]["classifier"] = classifier
    hparams["checkpointer"].add_recoverable("classifier", classifier)
    brain = SpeakerBrain(modules=hparams["modules"], opt_class=hparams["opt_class"],
                         hparams=hparams, run_opts=run_opts, checkpointer=hparams["checkpointer"])
    brain.fit(hparams["epoch_counter"], train_data.dataset, None,
              train_loader_kwargs=hparams["dataloader_options"])
    logger = logging.getLogger(__name__)
    if not replicas_identical(hparams["embedding_model"]):
        sys.exit("error: the processes ended with different weights")
    if torch.distributed.is_initialized():
        logger.info("weights identical on %d processes", torch.distributed.get_world_size())
    meta = export_best(hparams["checkpointer"], hparams["compute_features"],
                       hparams["embedding_model"], classifier,
                       f"{hparams['save_folder']}/label_encoder.txt",
                       hparams["pretrained_folder"], hparams_file)
    logger.info("exported %s (validation EER %s)", hparams["pretrained_folder"], meta.get("EER"))


if __name__ == "__main__":
    main()
