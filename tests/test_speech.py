"""Speech detection before embedding: synthesised speech between silence and noise keeps its
speech only, files without speech are one-line errors, clipping and a low level are warnings,
and the embedding is the speech's own. Needs espeak-ng (installed by `make test` as root)."""

import shutil
import subprocess

import numpy as np
import pytest
import soundfile
import torch
import torch.nn.functional as F
from conftest import tiny_pretrained

from custom_modules import SpeakerEncoder
from custom_modules.audio import read_audio
from custom_modules.errors import InputError
from custom_modules.inference.speech import SpeechDetector

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="espeak-ng is not installed")
RATE = 16000


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Spoken sentences, then files made of them: with silence and noise around, silence
    only, noise only, clipped, very quiet; and a tiny model."""
    root = tmp_path_factory.mktemp("speech")
    subprocess.run(["espeak-ng", "-w", str(root / "said.wav"),
                    "The quick brown fox jumps over the lazy dog near the river bank."],
                   check=True)
    speech = read_audio(root / "said.wav", RATE).numpy()
    noise = 0.05 * np.random.default_rng(0).standard_normal(2 * RATE).astype(np.float32)
    files = {"mixed": np.concatenate([np.zeros(RATE, np.float32), speech, noise]),
             "noise": noise, "clipped": np.clip(20 * speech, -1, 1), "quiet": 0.003 * speech,
             "speech": speech}
    for name, wave in files.items():
        soundfile.write(root / f"{name}.wav", wave, RATE)
    tiny_pretrained(root / "pretrained", threshold=0.5, seen_data=True)
    return root


def test_the_detector_keeps_the_speech_and_drops_silence_and_noise(recordings):
    detector = SpeechDetector()
    speech = read_audio(recordings / "speech.wav", RATE)
    mixed = read_audio(recordings / "mixed.wav", RATE)
    alone = sum(b - a for a, b in detector.segments(speech))
    kept, seconds = detector(mixed, "mixed.wav")
    # The same sentence is found inside the longer file: within 0.1 s, nothing from the
    # second of silence or the two seconds of noise.
    assert abs(seconds - alone / RATE) < 0.1
    assert seconds < speech.numel() / RATE          # the sentence's own pauses go too
    assert detector(read_audio(recordings / "noise.wav", RATE), "noise.wav")[1] == 0.0


def test_the_embedding_is_the_speechs_own(recordings, tmp_path):
    with_detection = SpeakerEncoder.from_hparams(recordings / "pretrained", savedir=tmp_path)
    whole = SpeakerEncoder.from_hparams(recordings / "pretrained", savedir=tmp_path,
                                        speech_detection=False)
    embedded = with_detection.embed(recordings / "mixed.wav")
    assert embedded.duration == pytest.approx(read_audio(recordings / "mixed.wav").numel()
                                              / RATE)
    # The reference: the kept samples written out, embedded without detection.
    kept, seconds = SpeechDetector()(read_audio(recordings / "mixed.wav", RATE), "x")
    soundfile.write(tmp_path / "kept.wav", kept.numpy(), RATE, subtype="FLOAT")
    assert embedded.seconds == pytest.approx(seconds)
    reference = whole.encode_file(tmp_path / "kept.wav")
    assert F.cosine_similarity(embedded.embedding, reference, dim=0) > 0.9999
    assert F.cosine_similarity(whole.encode_file(recordings / "mixed.wav"), reference,
                               dim=0) < 0.9999                  # detection changed something
    # Enrolment stores the speech seconds.
    with_detection.enroll("fox", [recordings / "mixed.wav"])
    (recording,) = with_detection.enrolments.recordings("fox")
    assert recording.speech_seconds == pytest.approx(seconds)
    assert recording.duration == pytest.approx(embedded.duration)


def test_no_speech_is_an_error_and_bad_levels_are_warnings(recordings, tmp_path, caplog):
    encoder = SpeakerEncoder.from_hparams(recordings / "pretrained", savedir=tmp_path)
    with pytest.raises(InputError, match=r"noise.wav: no speech found"):
        encoder.encode_file(recordings / "noise.wav")
    strict = SpeakerEncoder.from_hparams(recordings / "pretrained", savedir=tmp_path)
    strict.speech.min_speech_seconds = 10.0
    with pytest.raises(InputError, match=r"speech.wav: \d\.\d\d s of speech, at least 10 s"):
        strict.encode_file(recordings / "speech.wav")
    with caplog.at_level("WARNING"):
        encoder.encode_file(recordings / "clipped.wav")
        encoder.encode_file(recordings / "quiet.wav")
    messages = [r.getMessage() for r in caplog.records]
    assert any("clipped.wav: clipped" in m for m in messages)
    assert any("quiet.wav: very low level" in m for m in messages)
    assert not any("speech.wav" in m for m in messages)
    assert torch.isfinite(encoder.encode_file(recordings / "speech.wav")).all()
