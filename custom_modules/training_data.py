"""Training data: SpeechBrain datasets from the prepared CSVs, with random crops at load time.

Each training example is a random crop of its CSV segment, with a duration drawn uniformly
from ``crop_seconds``; utterances shorter than the crop are repeated to fill it. Randomness
comes from torch's generator, which SpeechBrain seeds per data-loader worker, so a run is
reproducible from its seed. Speaker labels are encoded from the training CSV only.
"""

import os

import speechbrain as sb
import torch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.dataio.encoder import CategoricalEncoder

from custom_modules.audio import read_audio


def random_crop(wav: str, start: int, stop: int, crop_seconds: tuple[float, float],
                sample_rate: int = 16000) -> torch.Tensor:
    """A random crop of ``wav[start:stop]`` of ``crop_seconds[0]``-``crop_seconds[1]`` s."""
    low, high = crop_seconds
    length = int((low + (high - low) * torch.rand(1).item()) * sample_rate)
    available = stop - start
    if available <= length:
        segment = read_audio(wav, sample_rate, start, stop)
        return segment.repeat(length // segment.numel() + 1)[:length]
    offset = start + int(torch.randint(0, available - length + 1, (1,)).item())
    return read_audio(wav, sample_rate, offset, offset + length)


def training_set(train_csv: str, label_encoder_file: str, crop_seconds: tuple[float, float],
                 sample_rate: int = 16000) -> tuple[DynamicItemDataset, CategoricalEncoder]:
    """Dataset yielding ``sig`` (a random crop) and ``spk_id_encoded``, and the encoder
    (fitted on ``train_csv``, saved to / reloaded from ``label_encoder_file``)."""
    if not os.path.isfile(train_csv):
        raise ValueError(f"{train_csv}: training CSV not found; run the data preparation")
    dataset = DynamicItemDataset.from_csv(csv_path=train_csv)

    @sb.utils.data_pipeline.takes("wav", "start", "stop")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav, start, stop):
        return random_crop(wav, int(start), int(stop), crop_seconds, sample_rate)

    encoder = CategoricalEncoder()

    @sb.utils.data_pipeline.takes("spk_id")
    @sb.utils.data_pipeline.provides("spk_id_encoded")
    def label_pipeline(spk_id):
        return torch.LongTensor([encoder.encode_label(spk_id)])

    sb.dataio.dataset.add_dynamic_item([dataset], audio_pipeline)
    sb.dataio.dataset.add_dynamic_item([dataset], label_pipeline)
    encoder.load_or_create(path=label_encoder_file, from_didatasets=[dataset],
                           output_key="spk_id")
    sb.dataio.dataset.set_output_keys([dataset], ["id", "sig", "spk_id_encoded"])
    return dataset, encoder
