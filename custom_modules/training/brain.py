"""The training loop: a SpeechBrain ``Brain`` for speaker embeddings with AAM-softmax.

``compute_forward`` reads like the algorithm: augment the waveforms -> log-mel features ->
per-sample SpecAugment -> ECAPA-TDNN embedding; under a ``precision`` other than fp32 only the
model runs in autocast (augmentation and features stay float32). ``compute_objectives`` is the
AAM-softmax loss (in float32 whatever the precision). Before every step the learning rate and
the margin follow the global step. Every ``valid_every`` epochs (and after the last) the model
is scored on a bounded subset of speaker-disjoint validation trials on the main process, and
checkpoints are kept by that EER (best and latest; more when checkpoints are averaged).

Each epoch's log line also says what the step cost: seconds per optimiser step and the share of
them spent waiting for the data loader (both from the second batch on: ``start_up`` is the wait
for the first, while the loader's workers start), the training examples whose audio could not
be read (replaced by others, ``training.examples``), the validation's seconds and, on CUDA, the
peak GPU memory. On CPU with several processes, batch norm is not converted to
``SyncBatchNorm`` (which needs CUDA); DDP broadcasts rank 0's statistics instead.
"""

import logging
import math
import os
import time

import speechbrain as sb
import torch
from torch.nn.parallel import DistributedDataParallel

from custom_modules.models.embedder import Embedder
from custom_modules.training.checkpointing import save_epoch
from custom_modules.training.distributed import decorrelate_ranks, summed_over_ranks, unwrap
from custom_modules.training.init_from import frozen_modules
from custom_modules.training.validation import BoundedValidation

logger = logging.getLogger(__name__)


class SpeakerBrain(sb.Brain):
    """Trains ``modules.embedding_model`` through ``modules.classifier`` (AAMSoftmaxHead).

    Reads the hparams in ``HPARAMS`` (the training recipe checks that the YAML has them):
    ``spec_augment`` and ``wav_augment`` (a SpeechBrain ``Augmenter``) may be null,
    ``valid_trials`` may be null (checkpoints are then kept by recency), ``tensorboard`` is
    SpeechBrain's ``TensorboardLogger`` or null; ``weight_decay`` applies to the model and
    ``classifier_weight_decay`` to the AAM-softmax weights (the paper uses 2e-5 and 2e-4).
    """

    HPARAMS = ("wav_augment", "spec_augment", "lr_schedule", "valid_csv", "valid_trials",
               "valid_utterances", "valid_max_seconds", "valid_every", "weight_decay",
               "classifier_weight_decay", "average_checkpoints", "train_logger",
               "tensorboard", "sample_rate", "freeze", "pretrained_lr_scale", "anchor_weight")

    def compute_forward(self, batch, stage):
        """Waveforms -> embeddings ``(batch, 1, dim)``; augmentation in training only."""
        batch = batch.to(self.device)
        wavs, lengths = batch.sig
        # In float32 under autocast too: bfloat16 would add noise to the waveforms (the
        # speed change's resampling) and round the filterbank energies.
        with torch.autocast(self.device_type, enabled=False):
            if stage == sb.Stage.TRAIN and self.hparams.wav_augment is not None:
                wavs, lengths = self.hparams.wav_augment(wavs, lengths)
            feats = self.modules.compute_features(wavs, lengths)
        if stage == sb.Stage.TRAIN and self.hparams.spec_augment is not None:
            feats = self.hparams.spec_augment(feats)
        return self.modules.embedding_model(feats, lengths)

    def compute_objectives(self, predictions, batch, stage):
        """AAM-softmax loss (plus ``anchor_weight`` times the squared distance from the
        started-from weights, ``training.anchor``); labels are repeated like the augmented
        copies of the batch."""
        labels = batch.spk_id_encoded.data.reshape(-1)
        if stage == sb.Stage.TRAIN and self.hparams.wav_augment is not None:
            labels = self.hparams.wav_augment.replicate_labels(labels)
        loss, accuracy = self.modules.classifier(predictions, labels)
        if stage == sb.Stage.TRAIN and self.hparams.anchor_weight > 0:   # training.anchor
            distance = self.modules.starting_point.distance(
                unwrap(self.modules.embedding_model))
            loss = loss + self.hparams.anchor_weight * distance
            self.current["anchor_distance"] = float(distance.detach())   # the last step's
        self.totals["accuracy"] += float(accuracy) * len(labels)
        self.totals["examples"] += len(labels)
        self.totals["replaced"] += int(batch.replaced.data.sum())
        return loss

    def on_fit_batch_start(self, batch, should_step):
        """Learning rate and margin from the global optimiser step; the data wait ends."""
        now = time.perf_counter()
        # The first batch's wait is the loader's start-up (its workers start each epoch).
        self.totals["data_wait" if self.totals["steps"] else "start_up"] += now - self.step_ended
        # Brain puts every module in train mode each epoch; looked up by name, as DDP's
        # SyncBatchNorm conversion replaces batch-norm objects.
        model = unwrap(self.modules.embedding_model)
        for name in self.hparams.freeze:
            model.get_submodule(name).eval()
        self.step_started = now
        steps = max(1, self.steps_per_epoch)
        counter = self.hparams.epoch_counter     # a time budget may compress the schedule
        lr = self.hparams.lr_schedule.apply(self.optimizer, self.optimizer_step, steps,
                                            share=counter.planned / counter.limit)
        margin = unwrap(self.modules.classifier).set_epoch(1 + self.optimizer_step / steps)
        self.current = {"lr": lr, "margin": margin}

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """The step's compute ends (after the GPU has finished it)."""
        if self.device_type == "cuda":
            torch.cuda.synchronize()
        self.step_ended = time.perf_counter()
        self.totals["compute"] += self.step_ended - self.step_started
        self.totals["steps"] += 1

    def on_stage_start(self, stage, epoch=None):
        self.totals = dict.fromkeys(("accuracy", "examples", "replaced", "data_wait",
                                     "start_up", "compute", "steps"), 0)
        self.totals["processes"] = 1                # summed over ranks: how many there are
        self.step_ended = time.perf_counter()
        if self.device_type == "cuda":
            torch.cuda.reset_peak_memory_stats()

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """After each training epoch: validation EER (every ``valid_every`` epochs), the log
        line, and a checkpoint kept by EER."""
        if stage != sb.Stage.TRAIN:
            return
        stats = {"loss": stage_loss, **self.epoch_costs()}
        meta = {}
        last = self.last_epoch()                 # every process asks, every epoch
        due = epoch % self.hparams.valid_every == 0 or last
        if self.validation is not None and due and sb.utils.distributed.if_main_process():
            embedder = self.embedder().eval()
            meta = self.validation(embedder)
            embedder.train()
        # Every process must make the same checkpointing calls.
        meta = sb.utils.distributed.ddp_broadcast(meta, src=0)
        valid = {"EER": meta["EER"], "seconds": meta["seconds"]} if meta else None
        for logger_ in (self.hparams.train_logger, self.hparams.tensorboard):
            if logger_ is not None:
                logger_.log_stats(stats_meta={"epoch": epoch, **self.current},
                                  train_stats=stats, valid_stats=valid)
        # Kept: the lowest-EER checkpoint, the latest, and the epochs to average.
        save_epoch(self.checkpointer,
                   {"epoch": epoch, **{k: v for k, v in meta.items() if k != "seconds"}},
                   ["EER"] if self.validation is not None else None,
                   self.hparams.average_checkpoints or 1)

    def last_epoch(self) -> bool:
        """Whether training stops after this epoch: the epoch limit, the time budget (rank 0
        plans for all: the epochs that fit, which the learning rates follow) or
        ``--optimizer_step_limit``."""
        counter = self.hparams.epoch_counter
        plan = counter.plan() if sb.utils.distributed.if_main_process() else counter.planned
        counter.decide(sb.utils.distributed.ddp_broadcast(plan, src=0))
        return counter.is_last() or self._optimizer_step_limit_exceeded

    def epoch_costs(self) -> dict[str, float]:
        """What the epoch's steps cost, over every process: accuracy, replaced examples,
        seconds per step and the share of them spent waiting for data, both once the loader
        has started (``start_up``: seconds to the first batch, per process) and, on CUDA, the
        peak GPU memory in GB (this process's)."""
        totals = summed_over_ranks(self.totals, self.device)
        busy = totals["compute"] + totals["data_wait"]
        costs = {"accuracy": totals["accuracy"] / max(1, totals["examples"]),
                 "replaced": int(totals["replaced"]),
                 "step_seconds": busy / max(1, totals["steps"]),
                 "data_wait": totals["data_wait"] / busy if busy > 0 else math.nan,
                 "start_up": totals["start_up"] / totals["processes"]}
        if self.device_type == "cuda":
            costs["gpu_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
        return costs

    def on_fit_start(self):
        # Before the optimiser and DDP see the parameters.
        frozen_modules(unwrap(self.modules.embedding_model), self.hparams.freeze)
        super().on_fit_start()
        decorrelate_ranks()              # after the model is built and wrapped: it must agree
        self.current = {}
        self.device_type = torch.device(self.device).type
        trials = self.hparams.valid_trials
        self.validation = None
        if trials and not os.path.isfile(trials):
            logger.warning("%s not found: checkpoints are kept by recency only", trials)
        elif trials:
            self.validation = BoundedValidation(
                self.hparams.valid_csv, trials, self.hparams.valid_utterances,
                self.hparams.valid_max_seconds, self.hparams.sample_rate)

    def init_optimizers(self):
        """One optimiser, two weight decays: ``weight_decay`` on the model and
        ``classifier_weight_decay`` on the AAM-softmax weights (``--remove_vector_weight_decay``
        exempts biases and norms from both). The model's groups learn at
        ``pretrained_lr_scale`` times the schedule's rate (``lr_scale``); frozen parameters
        are in no group."""
        trained = {"compute_features", "embedding_model", "classifier"}
        stray = [name for name, module in self.modules.items() if name not in trained
                 and any(p.requires_grad for p in module.parameters())]
        if stray:
            raise RuntimeError(f"modules {stray} have trainable parameters that no optimiser "
                               f"group takes")
        groups = []
        for names, decay, scale in (({"compute_features", "embedding_model"},
                                     self.hparams.weight_decay,
                                     self.hparams.pretrained_lr_scale),
                                    ({"classifier"}, self.hparams.classifier_weight_decay, 1.0)):
            params = [p for name, module in self.modules.items() if name in names
                      for p in module.parameters() if p.requires_grad]
            vectors = [p for p in params if p.dim() <= 1] if self.remove_vector_weight_decay \
                else []
            groups.append({"params": [p for p in params if not any(p is v for v in vectors)],
                           "weight_decay": decay, "lr_scale": scale})
            if vectors:
                groups.append({"params": vectors, "weight_decay": 0.0, "lr_scale": scale})
        self.optimizer = self.opt_class([g for g in groups if g["params"]])
        self.optimizers_dict = {"opt_class": self.optimizer}
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("optimizer", self.optimizer)

    def optimizers_step(self):
        """SpeechBrain's optimiser step with the gradient norm clipped over every parameter
        group (its own clips ``param_groups[0]`` only, which left the AAM-softmax head, a later
        group, unclipped): unscale, clip to ``max_grad_norm``, step, zero the gradients."""
        optimizers = list(self.freeze_optimizers(self.optimizers_dict).values())
        for optimizer in optimizers:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(
                [p for group in optimizer.param_groups for p in group["params"]],
                self.max_grad_norm)
        if not self.scaler.is_enabled() and self.skip_nonfinite_grads:
            self.check_gradients()
        for optimizer in optimizers:
            self.scaler.step(optimizer)
        self.scaler.update()
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        self.optimizer_step += 1

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

    def _wrap_distributed(self):
        """DDP without SyncBatchNorm on CPU (gloo): SpeechBrain's conversion needs CUDA."""
        if not self.distributed_launch or self.distributed_backend != "gloo":
            return super()._wrap_distributed()
        for name, module in self.modules.items():
            if any(p.requires_grad for p in module.parameters()):
                self.modules[name] = DistributedDataParallel(
                    module, find_unused_parameters=self.find_unused_parameters)
        return None
