"""Training examples: random crops, speed perturbation, and speed-perturbed speakers as classes."""

import csv
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from speechbrain.dataio.batch import PaddedBatch

from custom_modules.training.examples import random_crop, training_set

RATE = 16000


def sine(path: Path, frequency: float, seconds: float) -> Path:
    time = np.arange(int(seconds * RATE)) / RATE
    soundfile.write(path, (0.5 * np.sin(2 * np.pi * frequency * time)).astype("float32"), RATE)
    return path


def peak_frequency(wave: torch.Tensor) -> float:
    spectrum = np.abs(np.fft.rfft(wave.numpy()))
    return float(np.argmax(spectrum) * RATE / len(wave))


@pytest.mark.parametrize("speed", [1.0, 0.9, 1.1])
def test_crop_keeps_its_length_and_speed_scales_pitch(tmp_path, speed):
    wav = sine(tmp_path / "a.wav", 200.0, 3.0)
    crop = random_crop(str(wav), 0, 3 * RATE, 2.0, RATE, speed)
    assert crop.shape == (2 * RATE,)
    assert peak_frequency(crop) == pytest.approx(200.0 * speed, abs=1.0)


def test_short_segment_is_repeated_to_fill_the_crop(tmp_path):
    wav = sine(tmp_path / "short.wav", 300.0, 0.5)
    for speed in (1.0, 1.1):
        crop = random_crop(str(wav), 0, RATE // 2, 2.0, RATE, speed)
        assert crop.shape == (2 * RATE,)
        assert crop[-RATE // 4:].abs().max() > 0.1  # filled with speech, not zeros


def write_csv(tmp_path: Path, speakers: dict[str, float]) -> Path:
    path = tmp_path / "train.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ID", "duration", "wav", "start", "stop", "spk_id"])
        for speaker, frequency in speakers.items():
            for n in range(4):
                wav = sine(tmp_path / f"{speaker}_{n}.wav", frequency, 2.5)
                writer.writerow([f"{speaker}_{n}", 2.5, wav, 0, int(2.5 * RATE), speaker])
    return path


def test_speed_perturbed_speakers_are_new_classes(tmp_path):
    speakers = {"low": 150.0, "mid": 250.0, "high": 400.0}
    data = training_set(str(write_csv(tmp_path, speakers)), str(tmp_path / "labels.txt"),
                        1.0, RATE, [1.0, 0.9, 1.1], None)
    assert len(data.encoder) == 3 and data.num_classes == 9
    torch.manual_seed(0)
    seen = set()
    for draw in range(20 * len(data.dataset)):
        example = data.dataset[draw % len(data.dataset)]
        label = int(example["spk_id_encoded"])
        speed = [1.0, 0.9, 1.1][label // 3]
        speaker = data.encoder.decode_ndim(label % 3)
        assert speaker == example["id"].split("_")[0]
        assert peak_frequency(example["sig"]) == pytest.approx(speakers[speaker] * speed,
                                                               abs=2.0)
        seen.add(label)
    assert seen == set(range(9))


def test_one_speed_keeps_plain_speaker_labels(tmp_path):
    data = training_set(str(write_csv(tmp_path, {"a": 200.0, "b": 300.0})),
                        str(tmp_path / "labels.txt"), 1.0, RATE, [1.0], None)
    assert data.num_classes == 2
    assert {int(data.dataset[i]["spk_id_encoded"]) for i in range(len(data.dataset))} == {0, 1}


@pytest.mark.parametrize("speeds", [[], [1.0, 3.0], [0.0]])
def test_bad_speeds_are_one_line_errors(tmp_path, speeds):
    csv_path = write_csv(tmp_path, {"a": 200.0, "b": 300.0})
    with pytest.raises(ValueError, match="speeds"):
        training_set(str(csv_path), str(tmp_path / "labels.txt"), 1.0, RATE, speeds, None)


def test_missing_training_csv_is_a_one_line_error(tmp_path):
    with pytest.raises(ValueError, match="training CSV not found"):
        training_set(str(tmp_path / "nope.csv"), str(tmp_path / "labels.txt"), 1.0, RATE,
                     [1.0], None)


def test_crops_of_one_length_and_a_batch_without_padding(tmp_path):
    with pytest.raises(ValueError, match="crop_seconds must be one positive duration"):
        training_set(str(write_csv(tmp_path, {"a": 200.0})), str(tmp_path / "l.txt"),
                     [2.0, 3.0], RATE, [1.0], None)


def test_an_unreadable_example_is_replaced_and_counted(tmp_path, caplog):
    path = write_csv(tmp_path, {"a": 200.0, "b": 300.0})
    rows = path.read_text().splitlines()
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF" + b"\0" * 100)
    path.write_text("\n".join(rows + [f"bad,2.5,{broken},0,40000,b"]) + "\n")
    data = training_set(str(path), str(tmp_path / "labels.txt"), 1.0, RATE, [1.0], None)
    index = data.dataset.data_ids.index("bad")
    torch.manual_seed(0)
    example = data.dataset[index]
    assert int(example["replaced"]) >= 1
    assert example["sig"].shape == (RATE,)
    # The replacement is a readable example, labelled with its own speaker.
    frequency = peak_frequency(example["sig"])
    speaker = data.encoder.decode_ndim(int(example["spk_id_encoded"]))
    assert frequency == pytest.approx({"a": 200.0, "b": 300.0}[speaker], abs=2.0)
    assert "training example replaced: " + str(broken) in caplog.text
    readable = data.dataset[data.dataset.data_ids.index("a_0")]
    assert int(readable["replaced"]) == 0


def test_the_dataset_pickles_and_loads_in_spawned_workers(tmp_path):
    """DataLoader workers started by spawn (forkserver, Python 3.14's default, pickles the
    same way) receive the dataset pickled: a pipeline built from local closures failed here."""
    data = training_set(str(write_csv(tmp_path, {"a": 200.0, "b": 300.0})),
                        str(tmp_path / "labels.txt"), 1.0, RATE, [1.0, 1.1], None)
    copy = pickle.loads(pickle.dumps(data.dataset))
    assert len(copy) == len(data.dataset) == 8
    loader = torch.utils.data.DataLoader(data.dataset, batch_size=4, num_workers=2,
                                         multiprocessing_context="spawn",
                                         collate_fn=PaddedBatch)
    batches = list(loader)
    assert sum(len(b.id) for b in batches) == 8
    for batch in batches:
        waves, _ = batch.sig
        assert waves.shape == (4, RATE)
        for wave, label, name in zip(waves, batch.spk_id_encoded.data[:, 0], batch.id,
                                     strict=True):
            speed = [1.0, 1.1][int(label) // 2]
            speaker = data.encoder.decode_ndim(int(label) % 2)
            assert speaker == name.split("_")[0]
            assert peak_frequency(wave) == pytest.approx({"a": 200.0, "b": 300.0}[speaker]
                                                         * speed, abs=2.0)
