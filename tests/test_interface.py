"""SpeakerEncoder: three-line use, any input format, verification, enrolment, bad files."""

import numpy as np
import pytest
import soundfile
import torch
import torch.nn.functional as F
from conftest import tiny_pretrained
from scipy.signal import resample_poly

from custom_modules import SpeakerEncoder
from data_prep.synthetic_audio import speech_like

NAMES = ("alice", "bob", "carol")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny model and, per speaker, a 2 s recording and the same recording again at 48 kHz
    in stereo (another file, another format, the same voice)."""
    root = tmp_path_factory.mktemp("interface")
    tiny_pretrained(root / "pretrained", threshold=0.9, seen_data=True)
    for seed, name in enumerate(NAMES, start=1):
        wave = speech_like(2.0, 16000, np.random.default_rng(seed))
        soundfile.write(root / f"{name}.wav", wave, 16000)
        high = resample_poly(wave, 3, 1)
        soundfile.write(root / f"{name}_48k_stereo.wav", np.stack([high, high], axis=1), 48000,
                        subtype="PCM_16")
    return root


def test_three_lines_and_any_format(folder, tmp_path):
    encoder = SpeakerEncoder.from_hparams(source=folder / "pretrained", savedir=tmp_path,
                                          speech_detection=False)
    embedding = encoder.encode_file(folder / "alice.wav")
    assert embedding.shape == (24,)
    other = encoder.encode_file(folder / "alice_48k_stereo.wav")
    assert F.cosine_similarity(embedding, other, dim=0) > 0.99
    wave, _ = soundfile.read(folder / "alice.wav", dtype="float32")
    batch = encoder.encode_batch(torch.from_numpy(wave).repeat(2, 1))
    assert torch.allclose(batch[0, 0], embedding, atol=1e-5)
    assert torch.allclose(batch[1, 0], embedding, atol=1e-5)


def test_identify_ranks_the_query_speaker_first(folder, tmp_path):
    encoder = SpeakerEncoder.from_hparams(source=folder / "pretrained", savedir=tmp_path,
                                          speech_detection=False)
    for name in NAMES:
        encoder.enroll(name, [folder / f"{name}.wav"])
    reloaded = SpeakerEncoder.from_hparams(source=folder / "pretrained", savedir=tmp_path,
                                           speech_detection=False)
    for name in NAMES:
        found = reloaded.identify(folder / f"{name}_48k_stereo.wav", top_k=3)
        ranking = [(c.name, c.verdict.score) for c in found.candidates]
        assert ranking[0][0] == name
        assert found.speaker == name            # accepted at the saved threshold, 0.9
        assert sorted(n for n, _ in ranking) == sorted(NAMES)
        # Each score is the cosine of the query with that speaker's enrolment, computed
        # here from the two files' embeddings.
        query = encoder.encode_file(folder / f"{name}_48k_stereo.wav")
        for enrolled, score in ranking:
            expected = F.cosine_similarity(query, encoder.encode_file(folder / f"{enrolled}.wav"),
                                           dim=0)
            assert score == pytest.approx(float(expected), abs=1e-5)
    assert [c.name for c in reloaded.identify(folder / "bob.wav", top_k=1).candidates] == ["bob"]
    # Nobody passes a threshold above every score: the answer is "unknown".
    assert reloaded.identify(folder / "bob.wav", threshold=1.01).speaker is None


def test_verify_decides_with_the_saved_threshold(folder, tmp_path):
    encoder = SpeakerEncoder.from_hparams(source=folder / "pretrained", savedir=tmp_path,
                                          speech_detection=False)
    verdict = encoder.verify_files(folder / "alice.wav", folder / "alice_48k_stereo.wav")
    assert verdict.score > 0.99 and verdict.same is True     # threshold 0.9, saved in the folder
    assert (verdict.operating_point, verdict.threshold) == ("saved threshold", 0.9)
    assert verdict.llr is None and verdict.probability is None    # no calibration saved
    different = encoder.verify_files(folder / "alice.wav", folder / "bob.wav").score
    assert different < verdict.score
    # A threshold between the two scores separates them.
    middle = (verdict.score + different) / 2
    assert encoder.verify_files(folder / "alice.wav", folder / "bob.wav",
                                threshold=middle).same is False
    assert encoder.verify_files(folder / "alice.wav", folder / "alice_48k_stereo.wav",
                                threshold=middle).same is True


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
    encoder = SpeakerEncoder.from_hparams(source=folder / "pretrained", savedir=tmp_path,
                                          speech_detection=False)
    with pytest.raises(ValueError) as error:
        encoder.encode_file(path)
    assert str(error.value).startswith(f"{path}: {words}")
    with pytest.raises(ValueError, match="missing.wav: no such file"):
        encoder.encode_file(tmp_path / "missing.wav")
    with pytest.raises(ValueError, match="not a pretrained folder"):
        SpeakerEncoder.from_hparams(source=tmp_path)
    with pytest.raises(ValueError, match=r"run_opts \['precision'\]: SpeakerEncoder takes only"):
        SpeakerEncoder.from_hparams(source=folder / "pretrained",
                                    run_opts={"device": "cpu", "precision": "bf16"})
