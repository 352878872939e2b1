"""Training data: SpeechBrain datasets from the prepared CSVs, with random crops at load time.

Each training example is a random crop of its CSV segment, with a duration drawn uniformly
from ``crop_seconds``; utterances shorter than the crop are repeated to fill it. Randomness
comes from torch's generator, which SpeechBrain seeds per data-loader worker, so a run is
reproducible from its seed. Speaker labels are encoded from the training CSV only.

With several ``speeds`` (WeSpeaker's speed perturbation, e.g. ``[1.0, 0.9, 1.1]``), each
example is played at one of them, drawn uniformly, and a changed speed counts as a new
speaker: speed changes pitch and formants together, so the model gets ``len(speeds)`` times as
many classes to tell apart. Class ``k * speakers + s`` is speaker ``s`` at ``speeds[k]``.
"""

import os
from collections.abc import Sequence
from typing import NamedTuple

import speechbrain as sb
import torch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.dataio.encoder import CategoricalEncoder
from torchaudio.functional import resample

from custom_modules.audio import read_audio
from custom_modules.errors import InputError


def random_crop(wav: str, start: int, stop: int, crop_seconds: tuple[float, float],
                sample_rate: int = 16000, speed: float = 1.0) -> torch.Tensor:
    """A random crop of ``wav[start:stop]`` of ``crop_seconds[0]``-``crop_seconds[1]`` s,
    played at ``speed`` (1.1: 10 % faster and higher; the crop keeps its duration)."""
    low, high = crop_seconds
    length = int((low + (high - low) * torch.rand(1).item()) * sample_rate)
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


def training_set(train_csv: str, label_encoder_file: str, crop_seconds: tuple[float, float],
                 sample_rate: int = 16000, speeds: Sequence[float] = (1.0,)) -> TrainingSet:
    """Dataset yielding ``sig`` (a random crop at a random speed from ``speeds``) and
    ``spk_id_encoded``, with the encoder (fitted on ``train_csv``, saved to / reloaded from
    ``label_encoder_file``) and ``speakers * len(speeds)`` classes."""
    if not os.path.isfile(train_csv):
        raise InputError(f"{train_csv}: training CSV not found; run the data preparation")
    if not speeds or any(not 0.5 <= speed <= 2.0 for speed in speeds):
        raise InputError(f"speaker_speeds must be a non-empty list of factors in [0.5, 2], got "
                         f"{speeds}")
    dataset = DynamicItemDataset.from_csv(csv_path=train_csv)
    encoder = CategoricalEncoder()

    @sb.utils.data_pipeline.takes("wav", "start", "stop", "spk_id")
    @sb.utils.data_pipeline.provides("sig", "spk_id_encoded")
    def example_pipeline(wav, start, stop, spk_id):
        choice = int(torch.randint(0, len(speeds), (1,)).item())
        yield random_crop(wav, int(start), int(stop), crop_seconds, sample_rate, speeds[choice])
        yield torch.LongTensor([encoder.encode_label(spk_id) + choice * len(encoder)])

    sb.dataio.dataset.add_dynamic_item([dataset], example_pipeline)
    encoder.load_or_create(path=label_encoder_file, from_didatasets=[dataset],
                           output_key="spk_id")
    sb.dataio.dataset.set_output_keys([dataset], ["id", "sig", "spk_id_encoded"])
    return TrainingSet(dataset, encoder, len(encoder) * len(speeds))
