"""The training loop: a SpeechBrain ``Brain`` for speaker embeddings with AAM-softmax.

``compute_forward`` reads like the algorithm: augment the waveforms -> log-mel features ->
per-sample SpecAugment -> ECAPA-TDNN embedding. ``compute_objectives`` is the AAM-softmax loss.
Before every step the learning rate and the margin follow the global step; after every epoch
the model is scored on speaker-disjoint validation trials and the checkpoint is kept by its
EER (best and last). On CPU with several processes, batch norm is not converted to
``SyncBatchNorm`` (which needs CUDA); DDP broadcasts rank 0's statistics instead.
"""

import logging
import os

import speechbrain as sb
from torch.nn.parallel import DistributedDataParallel

from custom_modules.data.catalogue import read_utterance_csvs
from custom_modules.data.trials import read_trials
from custom_modules.evaluation.metrics import eer
from custom_modules.evaluation.verification import trial_scores
from custom_modules.inference.embedding import embed_utterances
from custom_modules.models.embedder import Embedder
from custom_modules.training.distributed import unwrap

logger = logging.getLogger(__name__)


class SpeakerBrain(sb.Brain):
    """Trains ``modules.embedding_model`` through ``modules.classifier`` (AAMSoftmaxHead).

    Reads the hparams in ``HPARAMS`` (the training recipe checks that the YAML has them):
    ``spec_augment`` and ``wav_augment`` (a SpeechBrain ``Augmenter``) may be null,
    ``valid_trials`` may be null (checkpoints are then kept by recency), ``tensorboard`` is
    SpeechBrain's ``TensorboardLogger`` or null.
    """

    HPARAMS = ("wav_augment", "spec_augment", "lr_schedule", "valid_csv", "valid_trials",
               "train_logger", "tensorboard", "sample_rate")

    def compute_forward(self, batch, stage):
        """Waveforms -> embeddings ``(batch, 1, dim)``; augmentation in training only."""
        batch = batch.to(self.device)
        wavs, lengths = batch.sig
        if stage == sb.Stage.TRAIN and self.hparams.wav_augment is not None:
            wavs, lengths = self.hparams.wav_augment(wavs, lengths)
        feats = self.modules.compute_features(wavs, lengths)
        if stage == sb.Stage.TRAIN and self.hparams.spec_augment is not None:
            feats = self.hparams.spec_augment(feats)
        return self.modules.embedding_model(feats, lengths)

    def compute_objectives(self, predictions, batch, stage):
        """AAM-softmax loss; labels are repeated like the augmented copies of the batch."""
        labels = batch.spk_id_encoded.data.reshape(-1)
        if stage == sb.Stage.TRAIN and self.hparams.wav_augment is not None:
            labels = self.hparams.wav_augment.replicate_labels(labels)
        loss, accuracy = self.modules.classifier(predictions, labels)
        self.accuracy_sum += float(accuracy) * len(labels)
        self.accuracy_count += len(labels)
        return loss

    def on_fit_batch_start(self, batch, should_step):
        """Learning rate and margin from the global optimiser step."""
        steps = max(1, self.steps_per_epoch)
        lr = self.hparams.lr_schedule.apply(self.optimizer, self.optimizer_step, steps)
        margin = unwrap(self.modules.classifier).set_epoch(1 + self.optimizer_step / steps)
        self.current = {"lr": lr, "margin": margin}

    def on_stage_start(self, stage, epoch=None):
        self.accuracy_sum, self.accuracy_count = 0.0, 0

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """After each training epoch: validation EER, log line, checkpoint kept by EER."""
        if stage != sb.Stage.TRAIN:
            return
        stats = {"loss": stage_loss, "accuracy": self.accuracy_sum / max(1, self.accuracy_count)}
        meta = {}
        trials = self.hparams.valid_trials
        if trials and not os.path.isfile(trials):
            logger.warning("%s not found: checkpoints are kept by recency only", trials)
        elif sb.utils.distributed.if_main_process() and trials:
            value, threshold = self.validation_eer()
            meta = {"EER": 100 * value, "threshold": threshold}
        # Every process must make the same checkpointing calls.
        meta = sb.utils.distributed.ddp_broadcast(meta, src=0)
        valid = {"EER": meta["EER"]} if meta else None
        for logger_ in (self.hparams.train_logger, self.hparams.tensorboard):
            if logger_ is not None:
                logger_.log_stats(stats_meta={"epoch": epoch, **self.current},
                                  train_stats=stats, valid_stats=valid)
        self.checkpointer.save_and_keep_only(meta={"epoch": epoch, **meta},
                                             min_keys=["EER"] if meta else None,
                                             num_to_keep=1)

    def on_fit_start(self):
        super().on_fit_start()
        self.current = {}

    def make_dataloader(self, dataset, stage, ckpt_prefix="dataloader-", **loader_kwargs):
        loader = super().make_dataloader(dataset, stage, ckpt_prefix, **loader_kwargs)
        if stage == sb.Stage.TRAIN:  # optimiser steps (batches / --grad_accumulation_factor)
            self.steps_per_epoch = len(loader) // self.grad_accumulation_factor
        return loader

    def embedder(self) -> Embedder:
        """The model being trained, as the ``Embedder`` that verification and export use (not
        a copy: the same modules, so validation scores what would be exported). Eval mode is
        the caller's business."""
        return Embedder(unwrap(self.modules.compute_features),
                        unwrap(self.modules.embedding_model),
                        sample_rate=self.hparams.sample_rate)

    def validation_eer(self) -> tuple[float, float]:
        """EER and its threshold on the validation trials, with the current weights."""
        catalogue = read_utterance_csvs([self.hparams.valid_csv])
        embedder = self.embedder().eval()
        embedded, _ = embed_utterances(embedder, list(catalogue.values()), skip_bad=True)
        embedder.train()
        scores, labels = trial_scores(embedded, read_trials(self.hparams.valid_trials),
                                      self.hparams.valid_trials)
        return eer(scores[labels], scores[~labels])

    def _wrap_distributed(self):
        """DDP without SyncBatchNorm on CPU (gloo): SpeechBrain's conversion needs CUDA."""
        if not self.distributed_launch or self.distributed_backend != "gloo":
            return super()._wrap_distributed()
        for name, module in self.modules.items():
            if any(p.requires_grad for p in module.parameters()):
                self.modules[name] = DistributedDataParallel(
                    module, find_unused_parameters=self.find_unused_parameters)
        return None

