"""Our ECAPA-TDNN against SpeechBrain's: keys, outputs, masking, attention, errors, gradients."""

import pytest
import torch
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN as SpeechBrainECAPA

from custom_modules import ECAPA_TDNN, count_parameters, ecapa_c512, ecapa_c1024
from custom_modules.models.ecapa import SEBlock, parameter_summary
from custom_modules.models.pooling import AttentiveStatisticsPooling

TINY = {"channels": [32, 32, 32, 32, 96], "attention_channels": 16, "se_channels": 16}

CONFIGS = {
    "c512": {"channels": [512, 512, 512, 512, 1536]},
    "c1024": {"channels": [1024, 1024, 1024, 1024, 3072]},
    "tiny-no-global-context": {**TINY, "global_context": False},
    "tiny-scale4-groups": {**TINY, "res2net_scale": 4, "groups": [1, 2, 2, 2, 1],
                           "lin_neurons": 64},
}


def randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every parameter and batch-norm statistic a non-default value."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            noise = torch.randn(tensor.shape, generator=generator)
            if name.endswith("running_var"):
                tensor.copy_(0.5 + noise.abs())
            else:
                tensor.add_(0.05 * noise)


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return ECAPA_TDNN(40, **TINY).eval()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_speechbrain_on_padded_batch(name):
    config = CONFIGS[name]
    torch.manual_seed(1)
    reference = SpeechBrainECAPA(80, **config)
    randomise(reference)
    ours = ECAPA_TDNN(80, **config)
    assert list(ours.state_dict()) == list(reference.state_dict())
    ours.load_state_dict(reference.state_dict(), strict=True)
    reference.eval()
    ours.eval()
    features = torch.randn(3, 230, 80)
    lengths = torch.tensor([1.0, 0.71, 0.33])
    with torch.no_grad():
        expected = reference(features, lengths)
        got = ours(features, lengths)
        got_unpadded = ours(features)
    assert got.shape == (3, 1, config.get("lin_neurons", 192))
    # Same function; float rounding differs (different but equivalent matrix products).
    scale = expected.abs().max()
    assert (got - expected).abs().max() < 1e-5 * scale
    assert (got_unpadded - reference(features)).abs().max() < 1e-5 * scale


def test_parameter_counts_match_speechbrain():
    assert count_parameters(ecapa_c512()) == count_parameters(SpeechBrainECAPA(80)) == 6_194_048
    big = SpeechBrainECAPA(80, channels=[1024, 1024, 1024, 1024, 3072])
    assert count_parameters(ecapa_c1024()) == count_parameters(big) == 20_767_552
    summary = parameter_summary(ecapa_c512())
    assert summary.splitlines()[-1].split() == ["total", "6,194,048"]
    assert "blocks.1 (SERes2NetBlock)" in summary


def test_attention_outputs_are_the_ones_speechbrain_computes():
    """The SE gates and pooling weights returned are those of the forward pass: SpeechBrain's
    model with the same weights, its gates read at its SE sigmoids and its pooling weights
    computed by hand (masked softmax) from its attention scores."""
    torch.manual_seed(2)
    reference = SpeechBrainECAPA(40, **TINY)
    randomise(reference, seed=3)
    reference.eval()
    ours = ECAPA_TDNN(40, **TINY).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    seen = {}

    def keep(name):
        return lambda module, inputs, output: seen.__setitem__(name, output)

    for i, block in enumerate(reference.blocks[1:]):
        block.se_block.sigmoid.register_forward_hook(keep(i))
    reference.asp.conv.register_forward_hook(keep("scores"))
    features = torch.randn(2, 60, 40)
    lengths = torch.tensor([1.0, 0.5])
    with torch.no_grad():
        expected = reference(features, lengths)
        embedding, weights, gates = ours.forward_with_attention(features, lengths)
        assert torch.equal(embedding, ours(features, lengths))
    assert (embedding - expected).abs().max() < 1e-5 * expected.abs().max()
    assert len(gates) == 3
    for i, got in enumerate(gates):
        assert got.shape == (2, 32)
        assert torch.allclose(got, seen[i].squeeze(2), atol=1e-6), i
    valid = torch.arange(60) < torch.tensor([60, 30]).unsqueeze(1)           # (2, 60)
    scores = seen["scores"].masked_fill(~valid.unsqueeze(1), float("-inf"))
    assert weights.shape == (2, 96, 60)
    assert torch.allclose(weights, torch.softmax(scores, dim=2), atol=1e-6)
    assert weights[1, :, 30:].abs().max() == 0


def test_pooling_and_gates_ignore_padded_frames():
    torch.manual_seed(0)
    pool = AttentiveStatisticsPooling(16, attention_channels=8).eval()
    se = SEBlock(16, 4, 16).eval()
    x = torch.randn(2, 16, 40)
    mask = torch.ones(2, 1, 40)
    mask[1, :, 25:] = 0
    junk = x.clone()
    junk[1, :, 25:] = 1e3 * torch.randn(16, 15)
    with torch.no_grad():
        stats, weights = pool(x, mask)
        stats_junk, weights_junk = pool(junk, mask)
        _, gates = se(x, mask)
        _, gates_junk = se(junk, mask)
        alone, _ = pool(x[1:, :, :25], mask[1:, :, :25])
    assert torch.allclose(stats, stats_junk, atol=1e-6)
    assert torch.allclose(weights, weights_junk, atol=1e-7)
    assert torch.allclose(gates, gates_junk, atol=1e-7)
    assert torch.allclose(stats[1:], alone, atol=1e-6)


@pytest.mark.parametrize("lengths, words", [
    (torch.tensor([1.0, 0.0]), "no frames to pool"),
    (torch.tensor([1.0, 1.5]), "outside (0, 1]"),
    (torch.tensor([1.0, float("nan")]), "outside (0, 1]"),
    (torch.tensor([1.0]), "lengths must have shape (2,)"),
])
def test_bad_lengths_are_clear_errors(tiny, lengths, words):
    with pytest.raises(ValueError, match="ECAPA_TDNN") as error:
        tiny(torch.randn(2, 50, 40), lengths)
    assert words in str(error.value)


def test_bad_inputs_are_clear_errors(tiny):
    with pytest.raises(ValueError, match=r"needs at least 5"):
        tiny(torch.randn(2, 4, 40))
    with pytest.raises(ValueError, match=r"expected features \(batch, frames, 40\)"):
        tiny(torch.randn(2, 50, 80))
    with pytest.raises(ValueError, match=r"expected features"):
        tiny(torch.randn(50, 40))


@pytest.mark.parametrize("kwargs, words", [
    ({"kernel_sizes": [5, 3, 3, 1]}, "kernel_sizes has 4 entries"),
    ({"dilations": [1, 2, 3]}, "dilations has 3 entries"),
    ({"channels": [32, 96], "kernel_sizes": [5, 1], "dilations": [1, 1], "groups": [1, 1]},
     "at least 3 layers"),
    ({"res2net_scale": 5}, "divisible by res2net_scale=5"),
    ({"kernel_sizes": [5, 4, 3, 3, 1]}, "positive odd number"),
])
def test_bad_configurations_are_rejected(kwargs, words):
    with pytest.raises(ValueError) as error:
        ECAPA_TDNN(40, **{**TINY, **kwargs})
    assert words in str(error.value)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = ECAPA_TDNN(40, **TINY).train()
    features = torch.randn(4, 80, 40, requires_grad=True)
    embedding = model(features, torch.tensor([1.0, 0.9, 0.6, 0.3]))
    embedding.pow(2).sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name
    assert torch.isfinite(features.grad).all() and features.grad.abs().sum() > 0


def test_traces_with_dynamic_batch_and_time(tiny):
    lengths = torch.tensor([1.0, 0.5])
    traced = torch.jit.trace(tiny, (torch.randn(2, 60, 40), lengths))
    features = torch.randn(3, 97, 40)
    lengths = torch.tensor([1.0, 0.8, 0.4])
    assert torch.allclose(traced(features, lengths), tiny(features, lengths), atol=1e-6)


def test_device_and_dtype_follow():
    model = ECAPA_TDNN(40, device="cpu", **TINY).double().eval()
    output = model(torch.randn(2, 50, 40, dtype=torch.float64), torch.tensor([1.0, 0.5]))
    assert output.dtype == torch.float64 and torch.isfinite(output).all()


def test_integer_frame_counts_make_rows_independent_of_padding(tiny):
    features = torch.randn(2, 90, 40)
    frames = torch.tensor([90, 47])
    with torch.no_grad():
        together = tiny(features, frames)
        alone = tiny(features[1:, :47])
        junk = features.clone()
        junk[1, 47:] = 100.0
        assert torch.allclose(together[1], alone[0], atol=1e-5)
        assert torch.allclose(tiny(junk, frames)[1], alone[0], atol=1e-5)
    with pytest.raises(ValueError, match="batch row 1 has 3 valid frames; it needs 5 to 90"):
        tiny(features, torch.tensor([90, 3]))
