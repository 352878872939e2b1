"""AAM-softmax against SpeechBrain's AdditiveAngularMargin on the same weights, the linear
continuation past pi - margin, sub-centres against a brute-force closest sub-centre, and the
loss in float32 under mixed precision."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_MODEL
from speechbrain.lobes.models.ECAPA_TDNN import Classifier
from speechbrain.nnet.losses import AdditiveAngularMargin

from custom_modules import ECAPA_TDNN, MelFrontend
from custom_modules.training.losses import AAMSoftmaxHead


def test_logits_equal_speechbrains_on_the_same_weights():
    torch.manual_seed(0)
    head = AAMSoftmaxHead(16, num_classes=5, margin=0.2, scale=30)
    theirs = Classifier(16, out_neurons=5)
    with torch.no_grad():
        theirs.weight.copy_(head.weight)
    embeddings = torch.randn(12, 1, 16)
    labels = torch.randint(0, 5, (12,))
    with torch.no_grad():
        expected = AdditiveAngularMargin(margin=0.2, scale=30)(
            theirs(embeddings).squeeze(1), F.one_hot(labels, 5).float())
        got = head.logits(embeddings, labels)
    assert (got - expected).abs().max() < 1e-4
    with torch.no_grad():
        loss, _ = head(embeddings, labels)
    assert float(loss) == pytest.approx(float(F.cross_entropy(expected, labels)), abs=1e-5)


def test_past_pi_minus_the_margin_the_logit_continues_linearly():
    margin, scale = 0.3, 10.0
    head = AAMSoftmaxHead(2, num_classes=2, margin=margin, scale=scale)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    # Angles to class 0 of 0.5 rad (cos(theta + m) applies) and pi - 0.1 rad (beyond pi - m).
    angles = torch.tensor([0.5, math.pi - 0.1])
    embeddings = torch.stack([angles.cos(), angles.sin()], dim=1)
    with torch.no_grad():
        logits = head.logits(embeddings, torch.tensor([0, 0]))
    assert float(logits[0, 0]) == pytest.approx(scale * math.cos(0.5 + margin), abs=1e-5)
    beyond = math.cos(math.pi - 0.1) - margin * math.sin(margin)
    assert float(logits[1, 0]) == pytest.approx(scale * beyond, abs=1e-5)
    assert float(logits[1, 1]) == pytest.approx(scale * math.sin(math.pi - 0.1), abs=1e-5)
    theirs = AdditiveAngularMargin(margin=margin, scale=scale)(
        embeddings @ head.weight.detach().T, F.one_hot(torch.tensor([0, 0]), 2).float())
    assert torch.allclose(logits, theirs, atol=1e-4)


def test_subcentres_score_a_class_by_its_closest_subcentre():
    torch.manual_seed(1)
    head = AAMSoftmaxHead(8, num_classes=3, subcenters=4, margin=0.2, scale=30)
    embeddings = torch.randn(10, 8)
    unit = F.normalize(head.weight.detach(), dim=1)
    expected = torch.tensor([[max(float(F.normalize(e, dim=0) @ unit[c * 4 + k]) for k in range(4))
                              for c in range(3)] for e in embeddings])
    with torch.no_grad():
        assert torch.allclose(head.cosine(embeddings), expected, atol=1e-6)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    with torch.no_grad():
        logits = head.logits(embeddings, labels)
    target = expected.gather(1, labels.unsqueeze(1)).squeeze(1)
    assert torch.allclose(logits.gather(1, labels.unsqueeze(1)).squeeze(1),
                          30 * torch.cos(torch.acos(target) + 0.2), atol=1e-4)


def test_a_bf16_autocast_training_step_on_cpu_computes_the_loss_in_float32():
    torch.manual_seed(0)
    frontend = MelFrontend(n_mels=40)
    model = ECAPA_TDNN(**TINY_MODEL).train()
    head = AAMSoftmaxHead(24, num_classes=3)
    optimizer = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=1e-3)
    wavs, labels = torch.randn(6, 16000), torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():                       # the same weights and batch in float32
        reference, _ = head(model(frontend(wavs)), labels)
    before = head.weight.detach().clone()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        embeddings = model(frontend(wavs))
        loss, _ = head(embeddings, labels)
    assert embeddings.dtype == torch.bfloat16 and loss.dtype == torch.float32
    # bf16 rounds the model's activations (8 bits of mantissa), not the loss's arithmetic.
    assert float(loss.detach()) == pytest.approx(float(reference), rel=0.05)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and not torch.equal(head.weight, before)


def test_the_head_takes_cudas_mix_of_a_half_cosine_and_a_float_margin():
    """Under CUDA autocast F.linear gives fp16 cosines while pow and sqrt give fp32: scattering
    the fp32 margin term into the fp16 cosines fails. The head computes in float32 instead."""
    torch.manual_seed(2)
    head = AAMSoftmaxHead(8, num_classes=4, margin=0.2, scale=30)
    embeddings, labels = torch.randn(5, 8), torch.tensor([0, 1, 2, 3, 0])
    with torch.no_grad():
        cosine = head.cosine(embeddings)
        half = cosine.half()
        got = head._with_margin(half, labels)
        expected = head._with_margin(cosine, labels)
        assert got.dtype == torch.float32
        assert (got - expected).abs().max() < 30 * 1e-3      # fp16 rounding of the cosine
        loss, _ = head(embeddings.half(), labels)              # fp16 embeddings, fp32 weights
        assert loss.dtype == torch.float32
