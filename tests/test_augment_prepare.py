"""Augmentation: the corpora's CSVs (real MUSAN / RIRS_NOISES layouts, generated substitutes,
no silent fallback) and the examples' augmenter that reads them (SNRs, babble, rooms)."""

import csv
import json

import numpy as np
import pytest
import soundfile
import torch
from conftest import read_csv, speech_like

from custom_modules.training.augment import ExampleAugmenter, mix_at_snr
from data_prep.augment_prepare import prepare_augmentation
from data_prep.synthetic_audio import room_impulse_response


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    save = tmp_path_factory.mktemp("augment")
    return prepare_augmentation(str(save), None, None, generated=True, num_generated=8,
                                seconds=2.0, num_workers=1)


def augmenter(csvs: dict, **changes) -> ExampleAugmenter:
    """An augmenter on ``csvs`` (kind -> CSV) that always augments, with the recipe's ranges."""
    options = {"noise_csv": None, "music_csv": None, "speech_csv": None, "rir_csv": None,
               "probability": 1.0, "noise_snr": (0, 15), "music_snr": (5, 15),
               "babble_snr": (13, 20), "babble_talkers": (3, 7), "sample_rate": 16000,
               **{f"{kind}_csv": path for kind, path in csvs.items()}, **changes}
    return ExampleAugmenter(**options)


def test_generated_substitutes_are_listed_with_their_source(generated):
    assert generated["sources"] == {"noise": "generated", "music": "generated",
                                    "speech": "generated", "rir": "generated"}
    noise = read_csv(generated["noise"])
    assert list(noise[0]) == ["ID", "duration", "wav", "wav_format", "wav_opts"]
    assert len(noise) == 8
    assert {r["wav"].rsplit("/", 1)[1].split("_")[0] for r in noise} == {
        "white", "pink", "brown", "blue"}
    for kind in ("music", "speech"):
        row = read_csv(generated[kind])[0]
        assert soundfile.info(row["wav"]).duration == float(row["duration"]) == 2.0
    augment = augmenter({"noise": generated["noise"], "rir": generated["rir"]})
    assert augment.sources() == {"noise": "generated", "reverb": "generated"}


def test_no_corpus_and_no_generated_ones_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"no augmentation corpus given \(--musan_folder and "
                                         r"--rirs_folder\).*--generated_augmentation=True"):
        prepare_augmentation(str(tmp_path), None, None, generated=False)


def test_generated_rirs_start_with_their_peak_and_decay():
    rir = room_impulse_response(16000, np.random.default_rng(0), rt60=0.5)
    assert np.argmax(np.abs(rir)) == 0
    energy = rir[1:] ** 2
    assert energy[:2000].sum() > 10 * energy[-2000:].sum()
    assert len(rir) == int(1.2 * 0.5 * 16000)


def test_second_run_is_skipped(generated):
    again = prepare_augmentation(generated["noise"].rsplit("/", 1)[0], None, None,
                                 generated=True, num_generated=8, seconds=2.0, num_workers=1)
    assert again["skipped"] is True and again["sources"] == generated["sources"]


def test_talkers_are_training_utterances(tmp_path):
    train = tmp_path / "train.csv"
    lines = ["ID,duration,wav,start,stop,spk_id"]
    for i in range(4):
        path = tmp_path / f"u{i}.wav"
        soundfile.write(path, speech_like(1.0, seed=i).numpy(), 16000)
        lines.append(f"u{i},1.0,{path},0,16000,s{i}")
    train.write_text("\n".join(lines) + "\n")
    out = prepare_augmentation(str(tmp_path / "aug"), None, None, generated=True,
                               talkers_csv=str(train), num_generated=3, seconds=1.5,
                               num_workers=1)
    talkers = read_csv(out["speech"])
    assert [r["wav"] for r in talkers] == [str(tmp_path / f"u{i}.wav") for i in (0, 1, 2)]


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
    out = prepare_augmentation(str(tmp_path / "aug"), str(musan), str(rirs), generated=False,
                               num_workers=1)
    assert out["sources"] == {"noise": "musan", "music": "musan", "speech": "musan",
                              "rir": "rirs_noises"}
    names = {kind: [r["wav"].rsplit("/", 1)[1] for r in read_csv(out[kind])]
             for kind in ("noise", "music", "speech", "rir")}
    assert names == {"noise": ["noise-0001.wav"], "music": ["music-0001.wav"],
                     "speech": ["speech-0001.wav"],
                     "rir": ["RVB2014_type1_rir_largeroom1_near_angla.wav", "Room001-00001.wav"]}
    report = json.loads((tmp_path / "aug/augment_report.json").read_text())
    assert report["skipped_files"][0]["reason"] == "sample rate 44100 Hz, expected 16000 Hz"
    with pytest.raises(ValueError, match="is this MUSAN"):
        prepare_augmentation(str(tmp_path / "aug2"), str(tmp_path), str(rirs), generated=False)


def write_noise(path, samples: int, value: float = 0.5) -> str:
    """A CSV listing one file of alternating +-value (power value**2)."""
    wave = value * np.where(np.arange(samples) % 2 == 0, 1.0, -1.0)
    soundfile.write(path.with_suffix(".wav"), wave, 16000, subtype="FLOAT")
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ID", "duration", "wav", "wav_format", "wav_opts"])
        writer.writerow(["n", f"{samples / 16000:.4f}", path.with_suffix(".wav"), "wav", ""])
    return str(path)


@pytest.mark.parametrize("kind", ["noise", "music"])
def test_noise_is_mixed_at_an_snr_of_its_range(tmp_path, kind):
    csv_path = write_noise(tmp_path / "noise.csv", 16000 * 60)
    augment = augmenter({kind: csv_path}, **{f"{kind}_snr": (10, 10)})
    torch.manual_seed(0)
    clean = torch.from_numpy(speech_like(1.0).numpy())
    noisy = augment(clean)
    added = noisy - clean
    snr = 10 * torch.log10(clean.pow(2).mean() / added.pow(2).mean())
    assert float(snr) == pytest.approx(10.0, abs=1e-3)
    assert added.abs().max() == pytest.approx(float(added[0].abs()), rel=1e-4)  # +-a, as read


def test_babble_sums_several_talkers_and_a_short_file_is_tiled(tmp_path):
    csv_path = write_noise(tmp_path / "speech.csv", 4000)      # 0.25 s, shorter than the crop
    augment = augmenter({"speech": csv_path}, babble_snr=(15, 15), babble_talkers=(5, 5))
    clean = torch.ones(16000)
    added = augment(clean) - clean
    # Five copies of the same unit-power talker: +-5 before scaling to 15 dB below the clean.
    assert added.pow(2).mean().item() == pytest.approx(10 ** -1.5, rel=1e-4)
    assert torch.allclose(added[4000:8000], added[:4000])


def test_reverberation_keeps_the_level_and_the_direct_path_first(tmp_path):
    rir = np.zeros(800)
    rir[100], rir[400] = 1.0, 0.5                            # direct path, then an echo
    soundfile.write(tmp_path / "rir.wav", rir, 16000, subtype="FLOAT")
    (tmp_path / "rir.csv").write_text(f"ID,duration,wav,wav_format,wav_opts\nr,0.05,"
                                      f"{tmp_path / 'rir.wav'},wav,\n")
    augment = augmenter({"rir": str(tmp_path / "rir.csv")})
    clean = torch.zeros(4000)
    clean[1000] = 1.0
    wet = augment(clean)
    assert int(wet.abs().argmax()) == 1000                   # aligned on the direct path
    assert float(wet[1300] / wet[1000]) == pytest.approx(0.5, abs=1e-4)
    assert float(wet.pow(2).mean()) == pytest.approx(float(clean.pow(2).mean()), rel=1e-5)


def test_probability_is_the_share_of_augmented_examples(tmp_path):
    csv_path = write_noise(tmp_path / "noise.csv", 16000)
    augment = augmenter({"noise": csv_path}, probability=0.25)
    torch.manual_seed(3)
    clean = torch.ones(800)
    changed = sum(not torch.equal(augment(clean), clean) for _ in range(2000))
    assert changed / 2000 == pytest.approx(0.25, abs=0.03)
    assert mix_at_snr(clean, torch.zeros(800), 0.0).equal(clean)


def test_a_file_shorter_than_its_csv_says_and_a_broken_one_do_not_stop_training(tmp_path,
                                                                               caplog):
    # The CSV says 1.0004 s (rounded), the file has 1.0 s: a segment at the very end is
    # padded to the crop; a broken file skips the augmentation with a warning.
    wave = np.where(np.arange(16000) % 2 == 0, 0.5, -0.5)
    soundfile.write(tmp_path / "n.wav", wave, 16000, subtype="FLOAT")
    (tmp_path / "broken.wav").write_bytes(b"RIFF" + b"\0" * 60)
    (tmp_path / "noise.csv").write_text("ID,duration,wav,wav_format,wav_opts\n"
                                        f"n,1.0004,{tmp_path / 'n.wav'},wav,\n")
    (tmp_path / "bad.csv").write_text("ID,duration,wav,wav_format,wav_opts\n"
                                      f"b,60.0,{tmp_path / 'broken.wav'},wav,\n")
    torch.manual_seed(0)
    augment = augmenter({"noise": str(tmp_path / "noise.csv")})
    for _ in range(200):
        assert augment(torch.ones(15990)).shape == (15990,)
    broken = augmenter({"noise": str(tmp_path / "bad.csv")})
    clean = torch.ones(8000)
    assert torch.equal(broken(clean), clean)
    assert "augmentation skipped: " in caplog.text and "broken.wav" in caplog.text
