"""Our MelFrontend against SpeechBrain's Fbank + InputNormalization, and its own contract."""

import io
import itertools

import onnxruntime
import pytest
import torch
from conftest import padded_batch, speech_like
from speechbrain.lobes.features import Fbank
from speechbrain.processing.features import InputNormalization

from custom_modules.models.frontend import MelFrontend, mel_filterbank


@pytest.fixture(scope="module")
def batch():
    return padded_batch([3.0, 2.2, 1.37])


def test_log_mels_match_speechbrain_fbank(batch):
    wavs, _ = batch
    expected = Fbank(n_mels=80)(wavs)
    got = MelFrontend(mean_norm=False)(wavs)
    assert got.shape == expected.shape == (3, 301, 80)
    assert (got - expected).abs().max() < 1e-3


@pytest.mark.parametrize("std_norm", [False, True])
def test_normalised_features_match_speechbrain_sentence_norm(batch, std_norm):
    wavs, lengths = batch
    reference = InputNormalization(norm_type="sentence", std_norm=std_norm)
    expected = reference(Fbank(n_mels=80)(wavs), lengths)
    got = MelFrontend(std_norm=std_norm)(wavs, lengths)
    assert (got - expected).abs().max() < 1e-3


def test_frame_count_and_shapes():
    frontend = MelFrontend(n_mels=40, hop_length=20.0)
    assert frontend.hop_samples == 320
    assert frontend.win_samples == 400
    assert frontend.num_frames(16000) == 51
    assert frontend(torch.randn(4, 16000)).shape == (4, 51, 40)


def test_constants_are_buffers_that_follow_dtype():
    frontend = MelFrontend()
    assert set(frontend.state_dict()) == {"window", "filters"}
    assert not list(frontend.parameters())
    double = MelFrontend().double()
    output = double(torch.randn(1, 8000, dtype=torch.float64))
    assert output.dtype == torch.float64
    assert double.filters.dtype == torch.float64


def test_no_empty_filters_for_any_accepted_configuration():
    rejected = 0
    grid = itertools.product([20, 40, 64, 80, 128], [256, 400, 512, 1024], [0.0, 20.0],
                             [8000, 16000])
    for n_mels, n_fft, f_min, sample_rate in grid:
        try:
            frontend = MelFrontend(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels,
                                   f_min=f_min, win_length=min(25.0, 1000 * n_fft / sample_rate))
        except ValueError as error:
            assert "empty" in str(error)
            rejected += 1
            continue
        assert (frontend.filters.amax(dim=0) > 0).all(), (n_mels, n_fft, f_min, sample_rate)
    assert rejected > 0
    with pytest.raises(ValueError, match=r"filters \[0, .*empty.*fewer mels"):
        mel_filterbank(8000, 256, 128, 0.0, 4000.0)


def test_mean_normalisation_ignores_padding():
    # 2.0 s and 1.0 s line up with whole frames: 201 and 101 frames of the 201-frame batch.
    short = speech_like(1.0, seed=3)
    wavs = torch.zeros(2, 32000)
    wavs[0] = speech_like(2.0, seed=4)
    wavs[1, :16000] = short
    frontend = MelFrontend()
    alone = frontend(short.unsqueeze(0))
    in_batch = frontend(wavs, torch.tensor([1.0, 101 / 201]))
    assert (in_batch[1, :101] - alone[0]).abs().max() < 1e-4


def test_pre_emphasis_matches_naive_reference():
    wave = speech_like(0.5)
    emphasised = wave.clone()
    emphasised[1:] = wave[1:] - 0.97 * wave[:-1]
    expected = MelFrontend(mean_norm=False)(emphasised.unsqueeze(0))
    got = MelFrontend(mean_norm=False, pre_emphasis=0.97)(wave.unsqueeze(0))
    assert (got - expected).abs().max() < 1e-3


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"n_fft": 256}, "win_length=25.0 ms must give 1 to n_fft=256"),
    ({"hop_length": 0.01}, "gives no samples"),
    ({"f_max": 9000}, "f_max=9000"),
    ({"f_min": 8000}, "f_min=8000"),
    ({"window": "kaiser"}, "window='kaiser'"),
    ({"pre_emphasis": 1.2}, "pre_emphasis=1.2"),
    ({"n_mels": 0}, "n_mels=0"),
    ({"top_db": -5}, "top_db=-5"),
    ({"n_mels": 256}, "empty"),
    ({"mean_norm": False, "std_norm": True}, "std_norm=True needs mean_norm=True"),
])
def test_bad_configurations_are_rejected(kwargs, words):
    with pytest.raises(ValueError, match="MelFrontend|mel filterbank") as error:
        MelFrontend(**kwargs)
    assert words in str(error.value)


def test_bad_inputs_are_clear_errors():
    frontend = MelFrontend()
    with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
        frontend(torch.randn(16000))
    with pytest.raises(ValueError, match="expected float"):
        frontend(torch.ones(1, 16000, dtype=torch.int16))
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\)"):
        frontend(torch.randn(2, 16000), torch.ones(3))
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        frontend(torch.randn(2, 16000), torch.tensor([1.0, 0.0]))


def test_scripted_matches_eager(batch):
    wavs, lengths = batch
    frontend = MelFrontend(pre_emphasis=0.97, std_norm=True)
    scripted = torch.jit.script(frontend)
    assert torch.equal(scripted(wavs, lengths), frontend(wavs, lengths))


def test_onnx_export_runs_in_onnxruntime_with_dynamic_axes(batch):
    frontend = MelFrontend()
    buffer = io.BytesIO()
    torch.onnx.export(frontend, (torch.randn(2, 16000), torch.tensor([1.0, 0.5])), buffer,
                      dynamo=False, opset_version=17, input_names=["wavs", "lengths"],
                      output_names=["feats"],
                      dynamic_axes={"wavs": {0: "batch", 1: "samples"}, "lengths": {0: "batch"}})
    session = onnxruntime.InferenceSession(buffer.getvalue())
    wavs, lengths = batch
    (got,) = session.run(None, {"wavs": wavs.numpy(), "lengths": lengths.numpy()})
    expected = frontend(wavs, lengths)
    assert got.shape == tuple(expected.shape)
    # onnxruntime's float32 STFT is less exact than torch's FFT in bins far below the peak:
    # tight within 60 dB of each utterance's peak, a few tenths of a dB near the 80 dB floor.
    error = (torch.from_numpy(got) - expected).abs()
    log_mels = MelFrontend(mean_norm=False)(wavs)
    loud = log_mels > log_mels.amax(dim=(1, 2), keepdim=True) - 60
    assert error[loud].max() < 0.05
    assert error.max() < 0.5


def test_gradient_reaches_waveform_and_autocast_is_safe():
    wave = speech_like(0.5).unsqueeze(0).requires_grad_(True)
    MelFrontend()(wave).pow(2).sum().backward()
    assert torch.isfinite(wave.grad).all()
    assert wave.grad.abs().sum() > 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = MelFrontend()(speech_like(0.5).unsqueeze(0))
    assert features.dtype == torch.float32
    assert torch.isfinite(features).all()


def test_silence_and_other_sample_rates_give_finite_features():
    silent = MelFrontend()(torch.zeros(2, 16000), torch.tensor([1.0, 0.5]))
    assert torch.isfinite(silent).all()
    assert silent.abs().max() == 0
    narrowband = MelFrontend(sample_rate=8000, n_mels=40, n_fft=256, win_length=25.0)
    features = narrowband(speech_like(1.0, sample_rate=8000).unsqueeze(0))
    assert features.shape == (1, 101, 40)
    assert torch.isfinite(features).all()
