"""Shared test helpers: speech-like audio made on the spot (no downloads), CSV reading, the
training recipe at test size."""

import csv
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from custom_modules import ECAPA_TDNN, MelFrontend
from custom_modules.inference.pretrained import write_pretrained
from data_prep import synthetic_audio
from data_prep.splits import SplitOptions


@pytest.fixture(autouse=True)
def own_enrolment_store(tmp_path, monkeypatch):
    """Each test's default enrolment databases (``interface.encoder.default_store``) in its
    own folder, never the user's."""
    monkeypatch.setenv("ECAPA_SPEAKER_DATA", str(tmp_path / "user_data"))


# The folder recipes at test size.
TINY_RECIPE = ["--channels=[32, 32, 32, 32, 96]", "--n_mels=40", "--num_workers=0",
               "--test_speakers=2", "--split_ratio=[75, 25]", "--warmup_epochs=0.5",
               "--check_precisions_at_export=False"]   # one test checks it


def train(corpus: Path, output: Path, *overrides: str, launcher=(sys.executable,),
          hook: str | None = None, recipe: str = "hparams/ecapa_folder.yaml"
          ) -> subprocess.CompletedProcess:
    """A training recipe on ``corpus`` (optionally through ``tests/recipe_with_hooks.py``)."""
    if not any(o.startswith("--batch_size") for o in overrides):
        overrides = (*overrides, "--batch_size=8")
    hooked = ["tests/recipe_with_hooks.py", hook] if hook else []
    given = {o.split("=")[0] for o in overrides}
    tiny = [o for o in TINY_RECIPE if o.split("=")[0] not in given]   # an override wins
    command = [*launcher, *hooked, "recipes/train_speaker_embeddings.py",
               recipe, f"--data_folder={corpus}",
               f"--output_folder={output}", *tiny, *overrides]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)


def epochs_logged(output: Path) -> list[int]:
    """The epochs of ``output/train_log.txt``'s lines."""
    lines = (output / "train_log.txt").read_text().splitlines()
    return [int(line.split(",")[0].split(":")[1]) for line in lines if line.startswith("epoch")]


# A SpeechBrain model folder's hyperparams.yaml (spkrec-ecapa-voxceleb's layout, tiny model).
SPEECHBRAIN_HPARAMS = """pretrained_path: {folder}
n_mels: 40
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>
mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False
embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [32, 32, 32, 32, 96]
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 16
    se_channels: 16
    lin_neurons: 24
mean_var_norm_emb: !new:speechbrain.processing.features.InputNormalization
    norm_type: global
    std_norm: False
modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    mean_var_norm_emb: !ref <mean_var_norm_emb>
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        mean_var_norm_emb: !ref <mean_var_norm_emb>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
        mean_var_norm_emb: !ref <pretrained_path>/mean_var_norm_emb.ckpt
"""


def speechbrain_model_folder(folder: Path) -> Path:
    """A SpeechBrain speaker model folder in the layout of ``spkrec-ecapa-voxceleb`` (a tiny
    ECAPA with random weights and batch-norm statistics, embedding statistics, two labels)."""
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN as SpeechBrainECAPA
    from speechbrain.processing.features import InputNormalization

    torch.manual_seed(0)
    model = SpeechBrainECAPA(40, channels=[32, 32, 32, 32, 96], attention_channels=16,
                             se_channels=16, lin_neurons=24)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if "running_var" in name:
                tensor.uniform_(0.5, 2.0)
            elif tensor.is_floating_point():
                tensor.add_(0.05 * torch.randn_like(tensor))
    torch.save(model.state_dict(), folder / "embedding_model.ckpt")
    norm = InputNormalization(norm_type="global", std_norm=False)
    norm(torch.randn(50, 1, 24) + 0.5, torch.ones(50))
    norm._save(folder / "mean_var_norm_emb.ckpt")
    (folder / "hyperparams.yaml").write_text(SPEECHBRAIN_HPARAMS.format(folder=folder))
    (folder / "label_encoder.txt").write_text("'spk1' => 0\n'spk2' => 1\n================\n"
                                              "'starting_index' => 0\n")
    return folder


TINY_MODEL = {"input_size": 40, "channels": [32, 32, 32, 32, 96], "attention_channels": 16,
              "se_channels": 16, "lin_neurons": 24}


def speech_like(seconds: float, sample_rate: int = 16000, seed: int = 0) -> torch.Tensor:
    """A mono float32 waveform ``(samples,)`` with the structure of voiced speech."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(synthetic_audio.speech_like(seconds, sample_rate, rng)).float()


def padded_batch(seconds: list[float], sample_rate: int = 16000) -> tuple[torch.Tensor,
                                                                         torch.Tensor]:
    """Zero-padded batch ``(batch, samples)`` of speech-like utterances and relative lengths."""
    waves = [speech_like(s, sample_rate, seed=i) for i, s in enumerate(seconds)]
    longest = max(w.numel() for w in waves)
    batch = torch.zeros(len(waves), longest)
    for row, wave in enumerate(waves):
        batch[row, :wave.numel()] = wave
    return batch, torch.tensor([w.numel() / longest for w in waves])


def write_corpus(root: Path, speakers: int, utterances: int, seconds: tuple[float, float],
                 voice_seed: int = 0, first_seconds: float | None = None) -> Path:
    """A folder-per-speaker corpus ``root/spkNN/uM.wav`` of speech-like audio. Every
    utterance of a speaker is a rendering of the same seeded voice (different lengths of it),
    so even an untrained model scores a speaker's utterances alike; lengths are drawn from
    ``seconds``, except the very first file's, ``first_seconds`` when given."""
    rng = np.random.default_rng(0)
    for speaker in range(speakers):
        for utterance in range(utterances):
            path = root / f"spk{speaker:02d}" / f"u{utterance}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            length = rng.uniform(*seconds)
            if first_seconds is not None and speaker == utterance == 0:
                length = first_seconds
            voice = np.random.default_rng(voice_seed + speaker)
            soundfile.write(path, synthetic_audio.speech_like(length, 16000, voice), 16000)
    return root


def split_options(**changes) -> SplitOptions:
    """The preparations' split options in the tests (whole utterances of at least 1 s, 90/10
    by speakers, 5000 validation trials, seed 1234), ``changes`` replacing some."""
    return dataclasses.replace(SplitOptions("utterances", 3.0, 1.0, (90, 10), "speakers", 5000,
                                            1234), **changes)


def read_csv(path) -> list[dict]:
    """Rows of a CSV file as dicts."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def tiny_pretrained(folder: Path, threshold: float = 0.5, seed: int = 0,
                    seen_data: bool = False) -> Path:
    """A pretrained folder with a tiny random model (40 mels, C=32, 24-d embeddings). With
    ``seen_data`` its batch norms hold statistics of speech-like audio, as after training."""
    torch.manual_seed(seed)
    frontend, model = MelFrontend(n_mels=40), ECAPA_TDNN(**TINY_MODEL)
    if seen_data:
        with torch.no_grad():
            model.train()(frontend(torch.stack([speech_like(2.0, seed=i) for i in range(4)])))
        model.eval()
    return write_pretrained(folder, frontend, model, threshold=threshold)


def experiment_with_backend(root: Path) -> Path:
    """A tiny corpus prepared as an experiment (``root/exp``), a tiny model and its
    lda+as-norm back-end calibrated on the validation trials, as the training recipe exports
    them (operating points eer and far_10%)."""
    from custom_modules.evaluation.backend_fit import ScoringOptions, fit_model_backend
    from custom_modules.inference.pretrained import load_embedder
    from custom_modules.sidecars import exported_state
    from data_prep.folder_prepare import prepare_folder

    write_corpus(root / "corpus", 14, 6, (1.0, 2.5), voice_seed=200)
    prepare_folder(str(root / "corpus"), str(root / "exp/data"), 5, 80,
                   split_options(split_ratio=(75, 25), valid_trials=60), num_workers=1)
    folder = tiny_pretrained(root / "exp/pretrained", seen_data=True)
    data = root / "exp/data"
    fit_model_backend(load_embedder(folder), exported_state(folder), folder,
                      str(data / "train.csv"),
                      str(data / "valid_trials.txt"), str(data / "valid.csv"), "lda+as-norm",
                      ScoringOptions("utterances", 20000, 3, 10, 4, False, 1234), [0.1],
                      "eer", 0.5, False, str(root / "exp/embeddings"), 120.0, "fp32")
    return root / "exp"
