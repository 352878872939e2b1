"""Training step time: our ECAPA-TDNN + MelFrontend against SpeechBrain's stock ECAPA_TDNN +
Fbank + InputNormalization, same augmentations, same batch, same run.

    python -m benchmarks.bench_train_step [steps]

Batch 32 x 2 s at 16 kHz, C=512, AAM-softmax head, Adam. One step = wave augmentation
(SpeechBrain's Augmenter: noise, babble, reverberation, speed, frequency and chunk drop, on the
generated substitute corpora, original kept) + features + per-sample SpecAugment + model +
loss + backward + update. Before timing, both models get the same weights and must give the
same embeddings (max abs difference < 1e-5) on the same features. Steps alternate between the
two so that machine noise hits both alike; prints the median step time of each and the ratio.
"""

import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from speechbrain.augment.augmenter import Augmenter
from speechbrain.augment.time_domain import AddNoise, AddReverb, DropChunk, DropFreq, SpeedPerturb
from speechbrain.lobes.features import Fbank
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN as SpeechBrainECAPA
from speechbrain.processing.features import InputNormalization

from benchmarks.machine import describe
from custom_modules import ECAPA_TDNN, MelFrontend
from custom_modules.training.losses import AAMSoftmaxHead
from custom_modules.training.spec_augment import PerSampleSpecAugment
from data_prep.augment_prepare import prepare_augmentation
from data_prep.synthetic_audio import speech_like

CHANNELS = [512, 512, 512, 512, 1536]


def augmenter(csvs: dict) -> Augmenter:
    """The training YAML's augmentation pipeline."""
    return Augmenter(concat_original=True, shuffle_augmentations=True, min_augmentations=1,
                     max_augmentations=3, augment_prob=1.0, augmentations=[
                         AddNoise(csv_file=csvs["noise"], snr_low=0, snr_high=15),
                         AddNoise(csv_file=csvs["speech"], snr_low=13, snr_high=20),
                         AddReverb(csv_file=csvs["rir"]),
                         SpeedPerturb(orig_freq=16000, speeds=[95, 100, 105]),
                         DropFreq(drop_freq_count_low=1, drop_freq_count_high=3),
                         DropChunk(drop_length_low=1000, drop_length_high=2000,
                                   drop_count_low=1, drop_count_high=5)])


class SpeechBrainFeatures(torch.nn.Module):
    """Fbank + sentence mean normalisation, as SpeechBrain's VoxCeleb recipe computes them."""

    def __init__(self):
        super().__init__()
        self.fbank = Fbank(n_mels=80)
        self.norm = InputNormalization(norm_type="sentence", std_norm=False)

    def forward(self, wavs, lengths):
        return self.norm(self.fbank(wavs), lengths)


def make_step(features, model, head, augment):
    optimizer = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=1e-3)
    spec_augment = PerSampleSpecAugment().train()

    def step(wavs, lengths, labels):
        augmented, augmented_lengths = augment(wavs, lengths)
        feats = spec_augment(features(augmented, augmented_lengths))
        loss, _ = head(model(feats, augmented_lengths), augment.replicate_labels(labels))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return step


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    torch.manual_seed(0)
    csvs = prepare_augmentation(tempfile.mkdtemp(), None, None, generated=True, num_generated=20,
                                seconds=4.0)
    rng = np.random.default_rng(0)
    wavs = torch.from_numpy(np.stack([speech_like(2.0, 16000, rng) for _ in range(32)])).float()
    lengths, labels = torch.ones(32), torch.arange(32) % 16

    ours, theirs = ECAPA_TDNN(80, channels=CHANNELS), SpeechBrainECAPA(80, channels=CHANNELS)
    ours.load_state_dict(theirs.state_dict())
    with torch.no_grad():
        feats = MelFrontend()(wavs, lengths)
        difference = (ours.eval()(feats, lengths) - theirs.eval()(feats, lengths)).abs().max()
        frontend_difference = (SpeechBrainFeatures()(wavs, lengths) - feats).abs().max()
    assert difference < 1e-5 and frontend_difference < 1e-3, (difference, frontend_difference)
    ours.train()
    theirs.train()
    runs = {"ours": make_step(MelFrontend(), ours, AAMSoftmaxHead(192, 16), augmenter(csvs)),
            "speechbrain": make_step(SpeechBrainFeatures(), theirs, AAMSoftmaxHead(192, 16),
                                     augmenter(csvs))}
    times = {name: [] for name in runs}
    for index in range(steps + 1):
        for name, step in runs.items():
            torch.manual_seed(index)
            start = time.perf_counter()
            step(wavs, lengths, labels)
            if index > 0:  # the first step of each warms up
                times[name].append(time.perf_counter() - start)
    ours_s, theirs_s = (statistics.median(times[n]) for n in ("ours", "speechbrain"))
    print(describe())
    print(f"batch 32 x 2 s, C=512, full augmentation, {torch.get_num_threads()} threads, "
          f"{steps} steps each; same weights give max difference {float(difference):.1e}")
    for label, name, median in (("ours", "ours", ours_s), ("SpeechBrain", "speechbrain", theirs_s)):
        runs_text = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"{label + ':':<13}median {median:.2f} s/step  ({runs_text})")
    print(f"ratio (SpeechBrain / ours): {theirs_s / ours_s:.2f}")


if __name__ == "__main__":
    main()
