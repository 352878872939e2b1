"""SpeakerEncoder: three-line use, any input format, verification, enrolment, bad files."""

import numpy as np
import pytest
import soundfile
import torch
from conftest import tiny_pretrained
from scipy.signal import resample_poly

from custom_modules import SpeakerEncoder
from data_prep.synthetic_audio import speech_like


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("interface")
    tiny_pretrained(root / "pretrained", threshold=0.9)
    for name, seed in (("alice", 1), ("bob", 2)):
        for take in range(2):
            rng = np.random.default_rng(seed)
            soundfile.write(root / f"{name}{take}.wav", speech_like(2.0 + take, 16000, rng),
                            16000)
    return root


def test_three_lines_and_any_format(folder, tmp_path):
    encoder = SpeakerEncoder.from_hparams(source=folder / "pretrained", savedir=tmp_path)
    embedding = encoder.encode_file(folder / "alice0.wav")
    assert embedding.shape == (24,)
    wave, _ = soundfile.read(folder / "alice0.wav")
    high = resample_poly(wave, 3, 1)
    soundfile.write(tmp_path / "stereo48k.wav", np.stack([high, high], axis=1), 48000,
                    subtype="PCM_16")
    other = encoder.encode_file(tmp_path / "stereo48k.wav")
    assert torch.nn.functional.cosine_similarity(embedding, other, dim=0) > 0.99
    batch = encoder.encode_batch(torch.from_numpy(wave).float().repeat(2, 1))
    assert batch.shape == (2, 1, 24)


def test_verify_enroll_identify(folder, tmp_path):
    encoder = SpeakerEncoder.from_hparams(source=folder / "pretrained", savedir=tmp_path)
    score, same = encoder.verify_files(folder / "alice0.wav", folder / "alice1.wav")
    assert same == (score > 0.9)
    assert encoder.verify_files(folder / "alice0.wav", folder / "bob0.wav",
                                threshold=2.0)[1] is False
    encoder.enroll("alice", [folder / "alice0.wav"])
    encoder.enroll("bob", [folder / "bob0.wav"])
    ranking = encoder.identify(folder / "alice1.wav", top_k=5)
    assert [name for name, _ in ranking] in (["alice", "bob"], ["bob", "alice"])
    assert ranking[0][1] >= ranking[1][1]
    reloaded = SpeakerEncoder.from_hparams(source=folder / "pretrained", savedir=tmp_path)
    assert set(reloaded.enrolled) == {"alice", "bob"}


@pytest.mark.parametrize(("make", "words"), [
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: p.write_bytes(b"garbage" * 40), "unreadable audio"),
    (lambda p: soundfile.write(p, np.zeros(16000), 16000), "silent"),
    (lambda p: soundfile.write(p, 0.3 * np.random.default_rng(0).standard_normal(3200), 16000),
     "too short"),
])
def test_bad_files_name_the_file(folder, tmp_path, make, words):
    path = tmp_path / "bad.wav"
    make(path)
    encoder = SpeakerEncoder.from_hparams(source=folder / "pretrained", savedir=tmp_path)
    with pytest.raises(ValueError, match=words) as error:
        encoder.encode_file(path)
    assert str(path) in str(error.value)
    with pytest.raises(ValueError, match="no such file"):
        encoder.encode_file(tmp_path / "missing.wav")
    with pytest.raises(ValueError, match="not a pretrained folder"):
        SpeakerEncoder.from_hparams(source=tmp_path)
