"""Reading audio: formats, channels, rates, segments, and one-line errors for bad files."""

import numpy as np
import pytest
import soundfile
import torch
from conftest import speech_like

from custom_modules.audio import AudioError, audio_info, read_audio, write_wav


@pytest.fixture
def speech() -> np.ndarray:
    return speech_like(1.0).numpy()


def test_stereo_int16_at_8k_becomes_mono_float_at_16k(tmp_path, speech):
    stereo = np.stack([speech[::2], 0.5 * speech[::2]], axis=1)
    path = tmp_path / "stereo8k.wav"
    soundfile.write(path, stereo, 8000, subtype="PCM_16")
    wave = read_audio(path)
    assert wave.dtype == torch.float32
    assert wave.shape == (16000,)
    assert audio_info(path).channels == 2


def test_flac_and_float_files_and_segments(tmp_path, speech):
    soundfile.write(tmp_path / "a.flac", speech, 16000)
    soundfile.write(tmp_path / "b.wav", speech, 16000, subtype="FLOAT")
    assert torch.allclose(read_audio(tmp_path / "a.flac"), read_audio(tmp_path / "b.wav"),
                          atol=1e-4)
    segment = read_audio(tmp_path / "b.wav", start=4000, stop=8000)
    assert torch.equal(segment, torch.from_numpy(speech[4000:8000]))


@pytest.mark.parametrize(("content", "problem"), [
    (b"", "empty file (0 bytes)"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "unreadable audio"),
    (b"this is not audio at all" * 100, "unreadable audio"),
])
def test_broken_files_are_one_line_errors(tmp_path, content, problem):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError) as error:
        read_audio(path)
    assert str(error.value).startswith(f"{path}: {problem}")
    assert "\n" not in str(error.value)


def test_missing_silent_short_and_nan_files(tmp_path, speech):
    with pytest.raises(AudioError, match="no such file"):
        read_audio(tmp_path / "missing.wav")
    soundfile.write(tmp_path / "silent.wav", np.zeros(16000), 16000)
    with pytest.raises(AudioError, match="silent"):
        read_audio(tmp_path / "silent.wav")
    soundfile.write(tmp_path / "short.wav", speech[:3200], 16000)
    with pytest.raises(AudioError, match=r"too short: 0.20 s, the minimum is 0.50 s"):
        read_audio(tmp_path / "short.wav", min_duration=0.5)
    broken = speech.copy()
    broken[100] = np.nan
    soundfile.write(tmp_path / "nan.wav", broken, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        read_audio(tmp_path / "nan.wav")
    with pytest.raises(AudioError, match="outside the file"):
        read_audio(tmp_path / "short.wav", start=5000)


def test_truncated_file_reads_what_is_there(tmp_path, speech):
    path = tmp_path / "cut.wav"
    soundfile.write(path, speech, 16000, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:44 + 2 * 8000])
    assert read_audio(path).shape == (8000,)


def test_write_wav_is_atomic_and_round_trips(tmp_path, speech):
    path = tmp_path / "deep/dir/out.wav"
    write_wav(path, torch.from_numpy(speech), 16000)
    assert not list(path.parent.glob("*.part"))
    assert torch.allclose(read_audio(path), torch.from_numpy(speech), atol=1e-4)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "PCM_U8"])
@pytest.mark.parametrize("channels", [1, 2])
def test_fast_wav_header_agrees_with_libsndfile(tmp_path, speech, subtype, channels):
    path = tmp_path / "a.wav"
    data = speech if channels == 1 else np.stack([speech, speech], axis=1)
    soundfile.write(path, data, 16000, subtype=subtype)
    reference = soundfile.info(str(path))
    assert audio_info(path) == (16000, reference.frames, channels)


def test_fast_wav_header_skips_extra_chunks_and_counts_truncated_frames(tmp_path, speech):
    path = tmp_path / "listed.wav"
    soundfile.write(path, speech, 16000, subtype="PCM_16")
    raw = path.read_bytes()
    extra = b"LIST" + (5).to_bytes(4, "little") + b"INFOx\x00"  # odd size, padded
    patched = raw[:12] + raw[12:36] + extra + raw[36:]
    path.write_bytes(patched[:4] + (len(patched) - 8).to_bytes(4, "little") + patched[8:])
    assert audio_info(path).frames == len(speech)
    assert read_audio(path).shape == (len(speech),)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(raw[:44 + 2 * 1000 + 1])
    assert audio_info(cut).frames == soundfile.info(str(cut)).frames == 1000
