"""SpeakerEncoder: three-line use, resampling and downmixing of files, verification and
identification scores against cosines computed here, enrolment, bad files."""

import numpy as np
import pytest
import soundfile
import torch
import torch.nn.functional as F
import torchaudio
from conftest import speech_like, tiny_pretrained

from custom_modules import SpeakerEncoder

NAMES = ("alice", "bob", "carol")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny model (saved threshold 0.9), a 2 s recording of each speaker of ``NAMES`` and
    one of a stranger."""
    root = tmp_path_factory.mktemp("interface")
    tiny_pretrained(root / "pretrained", threshold=0.9, seen_data=True)
    for seed, name in enumerate((*NAMES, "stranger"), start=1):
        soundfile.write(root / f"{name}.wav", speech_like(2.0, seed=seed).numpy(), 16000)
    return root


@pytest.fixture
def encoder(folder, tmp_path):
    return SpeakerEncoder.from_hparams(source=folder / "pretrained", savedir=tmp_path,
                                       speech_detection=False)


def test_three_lines_and_batches(folder, encoder):
    embedding = encoder.encode_file(folder / "alice.wav")
    assert embedding.shape == (24,)
    wave, _ = soundfile.read(folder / "alice.wav", dtype="float32")
    batch = encoder.encode_batch(torch.from_numpy(wave).repeat(2, 1))
    assert torch.allclose(batch[0, 0], embedding, atol=1e-5)
    assert torch.allclose(batch[1, 0], embedding, atol=1e-5)


@pytest.mark.parametrize("rate", [8000, 44100])
def test_a_file_is_downmixed_then_resampled_before_embedding(encoder, tmp_path, rate):
    """A stereo file at another rate embeds as the mean of its two channels resampled to
    16 kHz with torchaudio's windowed sinc (done here), given to the model: equal to float
    rounding. Another resampler (scipy's polyphase, a wider sinc, Kaiser window) is off by
    2e-3 or more, one channel alone by 0.3."""
    left, right = speech_like(2.0, rate, seed=11), speech_like(2.0, rate, seed=12)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, torch.stack([left, 0.5 * right], dim=1).numpy(), rate,
                    subtype="FLOAT")
    mono = (left + 0.5 * right) / 2
    expected = encoder.encode_batch(torchaudio.functional.resample(mono, rate, 16000))[0, 0]
    assert torch.allclose(encoder.encode_file(path), expected, atol=1e-5)


def test_identify_ranks_the_enrolments_by_their_cosine_with_the_query(folder, encoder,
                                                                      tmp_path):
    for name in NAMES:
        encoder.enrol(name, [folder / f"{name}.wav"])
    reloaded = SpeakerEncoder.from_hparams(source=folder / "pretrained", savedir=tmp_path,
                                           speech_detection=False)
    enrolled = {name: encoder.encode_file(folder / f"{name}.wav") for name in NAMES}
    for query in (*NAMES, "stranger"):
        embedding = encoder.encode_file(folder / f"{query}.wav")
        # Each enrolled speaker's score: the cosine of the query with its one recording.
        expected = sorted(((float(F.cosine_similarity(embedding, e, dim=0)), name)
                           for name, e in enrolled.items()), reverse=True)
        if query in NAMES:       # an enrolled recording itself: cosine 1, ranked first
            assert expected[0] == (pytest.approx(1.0, abs=1e-6), query)
        found = reloaded.identify(folder / f"{query}.wav", top_k=2)
        assert [c.name for c in found.candidates] == [name for _, name in expected[:2]]
        assert [c.verdict.score for c in found.candidates] == pytest.approx(
            [score for score, _ in expected[:2]], abs=1e-5)
        best, name = expected[0]
        assert found.speaker == (name if best > 0.9 else None)     # the saved threshold
        assert reloaded.identify(folder / f"{query}.wav", threshold=best + 1e-4).speaker is None
        assert reloaded.identify(folder / f"{query}.wav", threshold=best - 1e-4).speaker == name
    assert len(reloaded.identify(folder / "bob.wav", top_k=5).candidates) == 3


def test_verify_scores_the_cosine_and_decides_with_the_saved_threshold(folder, encoder):
    alice, bob = (encoder.encode_file(folder / f"{n}.wav") for n in ("alice", "bob"))
    cosine = float(F.cosine_similarity(alice, bob, dim=0))
    verdict = encoder.verify_files(folder / "alice.wav", folder / "bob.wav")
    assert verdict.score == pytest.approx(cosine, abs=1e-5)
    assert verdict.same == (cosine > 0.9)                  # threshold 0.9, saved in the folder
    assert (verdict.operating_point, verdict.threshold) == ("saved threshold", 0.9)
    assert verdict.llr is None and verdict.probability is None    # no calibration saved
    itself = encoder.verify_files(folder / "alice.wav", folder / "alice.wav")
    assert itself.score == pytest.approx(1.0, abs=1e-6) and itself.same is True
    # A given threshold between the two scores separates them.
    middle = (cosine + 1.0) / 2
    given = encoder.verify_files(folder / "alice.wav", folder / "bob.wav", threshold=middle)
    assert (given.same, given.operating_point, given.threshold) == (False, "given threshold",
                                                                    middle)
    assert encoder.verify_files(folder / "alice.wav", folder / "alice.wav",
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
