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
    with_detection.enrol("fox", [recordings / "mixed.wav"])
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


def test_whether_there_is_speech_is_checked_for_every_folder(recordings, tmp_path, caplog):
    """A folder whose back-end was fitted on whole files (the demo's) embeds whole files, but
    noise, music, a hum or half a second of speech in ten seconds of silence are still
    refused; asked to embed without speech detection, they are a warning."""
    from custom_modules.scoring.backend import Backend, Scoring
    from data_prep.synthetic_audio import tone_music

    folder = tmp_path / "whole_files"
    shutil.copytree(recordings / "pretrained", folder)
    Backend(Scoring("cosine"), None, "eer", 0.5, False).save(folder)
    rng = np.random.default_rng(3)
    speech = read_audio(recordings / "speech.wav", RATE).numpy()
    silence_around = np.zeros(10 * RATE, np.float32)
    silence_around[4 * RATE:4 * RATE + RATE // 2] = speech[RATE // 2:RATE]
    hum = 0.3 * np.sin(2 * np.pi * 50 * np.arange(10 * RATE) / RATE)
    for name, wave in {"white": 0.1 * rng.standard_normal(5 * RATE), "hum": hum,
                       "music": tone_music(5.0, RATE, rng), "half": silence_around}.items():
        soundfile.write(tmp_path / f"{name}.wav", wave.astype(np.float32), RATE)
    encoder = SpeakerEncoder.from_hparams(folder, savedir=tmp_path)
    assert encoder.speech is None                    # whole files are embedded
    for name in ("white", "hum", "music", "half"):
        with pytest.raises(InputError, match=rf"{name}.wav: \d\.\d\d s of speech, at least 1 s"):
            encoder.encode_file(tmp_path / f"{name}.wav")
    whole = encoder.encode_file(recordings / "speech.wav")
    alone = SpeakerEncoder.from_hparams(folder, savedir=tmp_path, speech_detection=False)
    assert torch.equal(whole, alone.encode_file(recordings / "speech.wav"))   # the whole file
    with caplog.at_level("WARNING"):
        assert torch.isfinite(alone.encode_file(tmp_path / "hum.wav")).all()
    assert any("hum.wav: 0.00 s of speech" in r.getMessage() and "embedded anyway" in
               r.getMessage() for r in caplog.records)
