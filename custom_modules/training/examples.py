"""Training data: SpeechBrain datasets from the prepared CSVs, with random crops at load time.

Each training example is a random crop of ``crop_seconds`` from its CSV segment (one length
for every example, so a batch has no padding: the paper crops 2 s, SpeechBrain 3 s);
utterances shorter than the crop are repeated to fill it. Randomness comes from torch's
generator, which PyTorch's DataLoader seeds per worker from the main process's generator
(itself decorrelated per rank, ``training.distributed.decorrelate_ranks``), so a run is
reproducible from its seed. Speaker labels are encoded from the training CSV only.

With several ``speeds`` (WeSpeaker's speed perturbation, e.g. ``[1.0, 0.9, 1.1]``), each
example is played at one of them, drawn uniformly, and a changed speed counts as a new
speaker: speed changes pitch and formants together, so the model gets ``len(speeds)`` times as
many classes to tell apart. Class ``k * speakers + s`` is speaker ``s`` at ``speeds[k]``.
Then the example augmenter (``training.augment``) adds noise, music, babble or a room, in the
same worker.

A crop whose audio cannot be read (a truncated file, a silent stretch) is replaced by another
random example, with a warning naming the file; the example's ``replaced`` count goes into the
epoch's log line. One bad file never ends a run; ``MAX_ATTEMPTS`` bad ones in a row do.
"""

import logging
import os
from collections.abc import Sequence
from typing import NamedTuple

import speechbrain as sb
import torch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.dataio.encoder import CategoricalEncoder
from torchaudio.functional import resample

from custom_modules.audio import AudioError, read_audio
from custom_modules.errors import InputError
from custom_modules.training.augment import ExampleAugmenter

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 20   # unreadable examples in a row before giving up: the data, not bad luck


def random_crop(wav: str, start: int, stop: int, seconds: float, sample_rate: int,
                speed: float = 1.0) -> torch.Tensor:
    """A random crop of ``wav[start:stop]`` of ``seconds``, played at ``speed`` (1.1: 10 %
    faster and higher; the crop keeps its duration)."""
    length = round(seconds * sample_rate)
    source_length = round(length * speed)
    available = stop - start
    if available <= source_length:
        segment = read_audio(wav, sample_rate, start, stop)
        segment = segment.repeat(source_length // segment.numel() + 1)[:source_length]
    else:
        offset = start + int(torch.randint(0, available - source_length + 1, (1,)).item())
        segment = read_audio(wav, sample_rate, offset, offset + source_length)
    if speed == 1.0:
        return segment
    played = resample(segment, round(sample_rate * speed), sample_rate)
    return torch.nn.functional.pad(played, (0, max(0, length - played.numel())))[:length]


class TrainingSet(NamedTuple):
    """The dataset, the speakers' label encoder and the number of classes to train."""

    dataset: DynamicItemDataset
    encoder: CategoricalEncoder
    num_classes: int


class CroppedExamples:
    """What makes each training example (a module-level class, so the dataset pickles for
    DataLoader workers started by spawn or forkserver, Python 3.14's default): ``pipeline``
    is the dataset's dynamic item, ``sig`` / ``spk_id_encoded`` / ``replaced``."""

    def __init__(self, dataset: DynamicItemDataset, encoder: CategoricalEncoder,
                 train_csv: str, crop_seconds: float, sample_rate: int,
                 speeds: Sequence[float], augmenter: ExampleAugmenter | None):
        self.dataset, self.encoder, self.train_csv = dataset, encoder, train_csv
        self.crop_seconds, self.sample_rate = crop_seconds, sample_rate
        self.speeds, self.augmenter = list(speeds), augmenter

    def example(self, wav: str, start: str, stop: str, spk_id: str
                ) -> tuple[torch.Tensor, int, int]:
        """The crop, its class and how many unreadable examples it replaces."""
        for replaced in range(MAX_ATTEMPTS):
            choice = int(torch.randint(0, len(self.speeds), (1,)).item())
            try:
                crop = random_crop(wav, int(start), int(stop), self.crop_seconds,
                                   self.sample_rate, self.speeds[choice])
            except AudioError as error:
                logger.warning("training example replaced: %s", error)
                data = self.dataset
                row = data.data[data.data_ids[int(torch.randint(len(data), (1,)))]]
                wav, start, stop, spk_id = row["wav"], row["start"], row["stop"], row["spk_id"]
                continue
            label = self.encoder.encode_label(spk_id) + choice * len(self.encoder)
            return (crop if self.augmenter is None else self.augmenter(crop)), label, replaced
        raise InputError(f"{MAX_ATTEMPTS} training examples in a row could not be read (the "
                         f"last: {wav}); check {self.train_csv}")

    def pipeline(self, wav: str, start: str, stop: str, spk_id: str):
        crop, label, replaced = self.example(wav, start, stop, spk_id)
        yield crop
        yield torch.LongTensor([label])
        yield torch.LongTensor([replaced])


def training_set(train_csv: str, label_encoder_file: str, crop_seconds: float,
                 sample_rate: int, speeds: Sequence[float],
                 augmenter: ExampleAugmenter | None) -> TrainingSet:
    """Dataset yielding ``sig`` (a random crop at a random speed from ``speeds``, augmented),
    ``spk_id_encoded`` and ``replaced`` (unreadable examples replaced to make it), with the
    encoder (fitted on ``train_csv``, saved to / reloaded from ``label_encoder_file``) and
    ``speakers * len(speeds)`` classes."""
    if not os.path.isfile(train_csv):
        raise InputError(f"{train_csv}: training CSV not found; run the data preparation")
    if not speeds or any(not 0.5 <= speed <= 2.0 for speed in speeds):
        raise InputError(f"speaker_speeds must be a non-empty list of factors in [0.5, 2], got "
                         f"{speeds}")
    if not isinstance(crop_seconds, (int, float)) or crop_seconds <= 0:
        raise InputError(f"crop_seconds must be one positive duration (every crop of a batch "
                         f"has it), got {crop_seconds}")
    if augmenter is not None:
        augmenter.load()
    dataset = DynamicItemDataset.from_csv(csv_path=train_csv)
    encoder = CategoricalEncoder()
    examples = CroppedExamples(dataset, encoder, train_csv, crop_seconds, sample_rate, speeds,
                               augmenter)
    pipeline = sb.utils.data_pipeline.takes("wav", "start", "stop", "spk_id")(
        sb.utils.data_pipeline.provides("sig", "spk_id_encoded", "replaced")(examples.pipeline))
    sb.dataio.dataset.add_dynamic_item([dataset], pipeline)
    encoder.load_or_create(path=label_encoder_file, from_didatasets=[dataset],
                           output_key="spk_id")
    encoder.expect_len(len({row["spk_id"] for row in dataset.data.values()}))
    sb.dataio.dataset.set_output_keys([dataset], ["id", "sig", "spk_id_encoded", "replaced"])
    return TrainingSet(dataset, encoder, len(encoder) * len(speeds))
