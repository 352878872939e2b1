"""Augmentation CSVs: real MUSAN / RIRS_NOISES layouts, generated substitutes, and that
SpeechBrain's AddNoise / AddReverb run on them."""

import json

import numpy as np
import pytest
import soundfile
import torch
from conftest import read_csv, speech_like
from speechbrain.augment.time_domain import AddNoise, AddReverb

from data_prep.augment_prepare import prepare_augmentation
from data_prep.synthetic_audio import room_impulse_response


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    save = tmp_path_factory.mktemp("augment")
    return prepare_augmentation(str(save), num_generated=8, seconds=2.0, num_workers=1)


def test_generated_substitutes_feed_speechbrain_augmenters(generated):
    assert generated["sources"] == {"noise": "generated", "babble": "generated",
                                    "rir": "generated"}
    noise = read_csv(generated["noise"])
    assert list(noise[0]) == ["ID", "duration", "wav", "wav_format", "wav_opts"]
    assert len(noise) == 8
    assert {r["wav"].rsplit("/", 1)[1].split("_")[0] for r in noise} == {
        "white", "pink", "brown", "blue"}
    clean = speech_like(1.0).repeat(2, 1)
    lengths = torch.ones(2)
    torch.manual_seed(0)
    for out in (AddNoise(csv_file=generated["noise"], snr_low=0, snr_high=5)(clean, lengths),
                AddNoise(csv_file=generated["babble"], snr_low=0, snr_high=5)(clean, lengths),
                AddReverb(csv_file=generated["rir"])(clean)):
        assert out.shape == clean.shape
        assert torch.isfinite(out).all()
        assert (out - clean).abs().mean() > 1e-3


def test_generated_rirs_start_with_their_peak_and_decay():
    rir = room_impulse_response(16000, np.random.default_rng(0), rt60=0.5)
    assert np.argmax(np.abs(rir)) == 0
    energy = rir[1:] ** 2
    assert energy[:2000].sum() > 10 * energy[-2000:].sum()
    assert len(rir) == int(1.2 * 0.5 * 16000)


def test_second_run_is_skipped(generated, tmp_path):
    again = prepare_augmentation(generated["noise"].rsplit("/", 1)[0], num_generated=8,
                                 seconds=2.0, num_workers=1)
    assert again["skipped"] is True


def test_babble_from_training_utterances(tmp_path):
    train = tmp_path / "train.csv"
    lines = ["ID,duration,wav,start,stop,spk_id"]
    for i in range(4):
        path = tmp_path / f"u{i}.wav"
        soundfile.write(path, speech_like(1.0, seed=i).numpy(), 16000)
        lines.append(f"u{i},1.0,{path},0,16000,s{i}")
    train.write_text("\n".join(lines) + "\n")
    out = prepare_augmentation(str(tmp_path / "aug"), babble_csv=str(train), num_generated=3,
                               seconds=1.5, num_workers=1)
    babble = read_csv(out["babble"])
    assert len(babble) == 3
    assert soundfile.info(babble[0]["wav"]).duration == 1.5


def test_musan_and_rirs_layouts(tmp_path):
    musan, rirs = tmp_path / "musan", tmp_path / "RIRS_NOISES"
    wave = speech_like(1.0).numpy()
    for relative in ("noise/free-sound/noise-0001.wav", "music/fma/music-0001.wav",
                     "speech/librivox/speech-0001.wav"):
        (musan / relative).parent.mkdir(parents=True)
        soundfile.write(musan / relative, wave, 16000)
    soundfile.write(musan / "music/fma/music-44k.wav", wave, 44100)
    for relative in ("simulated_rirs/smallroom/Room001/Room001-00001.wav",
                     "real_rirs_isotropic_noises/RVB2014_type1_rir_largeroom1_near_angla.wav",
                     "real_rirs_isotropic_noises/RVB2014_type1_noise_largeroom1_1.wav"):
        (rirs / relative).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(rirs / relative, room_impulse_response(16000, np.random.default_rng(1)),
                        16000)
    out = prepare_augmentation(str(tmp_path / "aug"), musan_folder=str(musan),
                               rirs_folder=str(rirs), num_workers=1)
    assert out["sources"] == {"noise": "musan", "babble": "musan", "rir": "rirs_noises"}
    assert [r["wav"].rsplit("/", 1)[1] for r in read_csv(out["noise"])] == [
        "music-0001.wav", "noise-0001.wav"]
    assert [r["wav"].rsplit("/", 1)[1] for r in read_csv(out["babble"])] == ["speech-0001.wav"]
    assert [r["wav"].rsplit("/", 1)[1] for r in read_csv(out["rir"])] == [
        "RVB2014_type1_rir_largeroom1_near_angla.wav", "Room001-00001.wav"]
    report = json.loads((tmp_path / "aug/augment_report.json").read_text())
    assert report["skipped_files"][0]["reason"] == "sample rate 44100 Hz, expected 16000 Hz"
    with pytest.raises(ValueError, match="is this MUSAN"):
        prepare_augmentation(str(tmp_path / "aug2"), musan_folder=str(tmp_path))
