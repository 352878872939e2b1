"""An inference-only copy of a trained ``ECAPA_TDNN`` laid out for fast CPU arithmetic.

The training model keeps SpeechBrain's channels-first layout ``(batch, channels, frames)``,
which turns every 1x1 convolution into a product with a transposed operand that has to be
copied first. Here the same function runs channels-last ``(batch, frames, channels)``
throughout: every convolution is one contiguous matrix product (a wider kernel reads its
shifted frames side by side), batch norms are per-channel affine maps on the last axis, the
pooling's global context is split as in ``models.pooling`` and the attention softmax runs
over the frame axis. Nothing is approximated: in float32 it gives the model's embeddings up
to rounding (tested on padded batches). ``dtype=torch.bfloat16`` runs the products in
bfloat16 (the statistics of the pooling stay in float32), which CPUs with AVX512_BF16 or AMX
do about twice as fast.

Inputs are what ``Embedder`` passes: features ``(batch, frames, n_mels)`` and optionally
integer valid frame counts ``(batch,)``; each row is computed as if alone (convolutions
reflect at the row's own last frame), as ``ECAPA_TDNN`` does with frame counts.
"""

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from custom_modules.errors import InputError
from custom_modules.models.ecapa import ECAPA_TDNN, SERes2NetBlock
from custom_modules.models.layers import ChannelBatchNorm, SameConv1d, TDNNBlock, reflect_index


def _affine(norm: ChannelBatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch norm in inference as ``x * scale + shift``."""
    bn = norm.norm
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale.detach(), (bn.bias - bn.running_mean * scale).detach()


class FastConv(nn.Module):
    """``SameConv1d`` channels-last: ``(batch, frames, in) -> (batch, frames, out)``, the
    ``kernel_size`` shifted copies of the (reflect-padded) input side by side, times one
    ``(kernel * in, out)`` matrix."""

    def __init__(self, conv: SameConv1d, dtype: torch.dtype):
        super().__init__()
        weight = conv.conv.weight.detach()                       # (out, in, kernel)
        if conv.conv.groups != 1:
            raise InputError("the fast graph takes ungrouped convolutions only")
        self.kernel, self.dilation, self.padding = weight.shape[2], conv.conv.dilation[0], \
            conv.padding
        self.register_buffer("weight", weight.permute(0, 2, 1).reshape(weight.shape[0], -1)
                             .to(dtype).contiguous())           # (out, kernel * in)
        bias = conv.conv.bias
        self.register_buffer("bias", None if bias is None else bias.detach().to(dtype))

    def forward(self, x: torch.Tensor, index: Optional[torch.Tensor]) -> torch.Tensor:
        if self.kernel > 1:
            if index is None:
                padded = F.pad(x.transpose(1, 2), (self.padding, self.padding),
                               mode="reflect").transpose(1, 2)
            else:
                padded = x.gather(1, index.unsqueeze(2).expand(-1, -1, x.shape[2]))
            frames = x.shape[1]
            x = torch.cat([padded[:, k * self.dilation:k * self.dilation + frames]
                           for k in range(self.kernel)], dim=2)
        return F.linear(x, self.weight, self.bias)


class FastTDNN(nn.Module):
    """``TDNNBlock`` in inference: convolution -> ReLU -> batch norm (affine)."""

    def __init__(self, block: TDNNBlock, dtype: torch.dtype):
        super().__init__()
        if not isinstance(block.activation, nn.ReLU):
            raise InputError("the fast graph takes ReLU activations only")
        self.conv = FastConv(block.conv, dtype)
        scale, shift = _affine(block.norm)
        self.register_buffer("scale", scale.to(dtype))
        self.register_buffer("shift", shift.to(dtype))

    def forward(self, x: torch.Tensor, index: Optional[torch.Tensor]) -> torch.Tensor:
        return torch.addcmul(self.shift, torch.relu(self.conv(x, index)), self.scale)


class FastSERes2Block(nn.Module):
    """``SERes2NetBlock`` channels-last."""

    def __init__(self, block: SERes2NetBlock, dtype: torch.dtype):
        super().__init__()
        self.scale = block.res2net_block.scale
        self.tdnn1 = FastTDNN(block.tdnn1, dtype)
        self.res2 = nn.ModuleList(FastTDNN(b, dtype) for b in block.res2net_block.blocks)
        self.tdnn2 = FastTDNN(block.tdnn2, dtype)
        self.se1 = FastConv(block.se_block.conv1, dtype)
        self.se2 = FastConv(block.se_block.conv2, dtype)
        self.shortcut = None if block.shortcut is None else FastConv(block.shortcut, dtype)
        self.padding = block.res2net_block.blocks[0].conv.padding

    def forward(self, x: torch.Tensor, mask: torch.Tensor, counts: torch.Tensor,
                index: Optional[torch.Tensor]) -> torch.Tensor:
        residual = x if self.shortcut is None else self.shortcut(x, None)
        groups = self.tdnn1(x, None).chunk(self.scale, dim=2)
        outputs = [groups[0]]
        for i, block in enumerate(self.res2):
            outputs.append(block(groups[i + 1] if i == 0 else groups[i + 1] + outputs[-1],
                                 index))
        x = self.tdnn2(torch.cat(outputs, dim=2), None)
        mean = (x * mask).sum(dim=1, keepdim=True) / counts
        gates = torch.sigmoid(self.se2(torch.relu(self.se1(mean, None)), None))
        return torch.addcmul(residual, x, gates)


class FastECAPA(nn.Module):
    """The fast inference graph of an ``ECAPA_TDNN`` (its weights copied, in ``dtype``).

    >>> model = ECAPA_TDNN(40, channels=[32, 32, 32, 32, 96], attention_channels=16,
    ...                    se_channels=16, lin_neurons=24).eval()
    >>> x = torch.randn(2, 60, 40)
    >>> bool(torch.allclose(FastECAPA(model)(x), model(x), atol=1e-5))
    True
    """

    def __init__(self, model: ECAPA_TDNN, dtype: torch.dtype = torch.float32):
        super().__init__()
        if not model.asp.global_context:
            raise InputError("the fast graph takes the pooling with global context only")
        self.config, self.dtype = model.config, dtype
        self.first = FastTDNN(model.blocks[0], dtype)
        self.blocks = nn.ModuleList(FastSERes2Block(b, dtype) for b in model.blocks[1:])
        self.mfa = FastTDNN(model.mfa, dtype)
        asp = model.asp
        frame_weight, mean_weight, std_weight = asp.tdnn.conv.conv.weight.detach().squeeze(2) \
            .split(model.channels[-1], dim=1)
        self.register_buffer("frame_weight", frame_weight.to(dtype).contiguous())
        self.register_buffer("context_weight", torch.cat([mean_weight, std_weight], dim=1))
        self.register_buffer("context_bias", asp.tdnn.conv.conv.bias.detach())
        scale, shift = _affine(asp.tdnn.norm)
        self.register_buffer("attention_scale", scale.to(dtype))
        self.register_buffer("attention_shift", shift.to(dtype))
        self.attention = FastConv(asp.conv, dtype)
        scale, shift = _affine(model.asp_bn)
        fc = model.fc.conv
        # asp_bn then fc are both affine: one matrix (exact up to rounding).
        self.register_buffer("out_weight", (fc.weight.detach().squeeze(2) * scale))
        self.register_buffer("out_bias", fc.bias.detach() + fc.weight.detach().squeeze(2)
                             @ shift)
        self.eps = asp.eps
        self.paddings = sorted({b.padding for b in self.blocks} | {self.first.conv.padding})

    def forward(self, features: torch.Tensor, frames: Optional[torch.Tensor] = None
                ) -> torch.Tensor:
        """``features: (batch, frames, n_mels)``, ``frames``: valid counts ``(batch,)`` or
        ``None`` (no padding) -> embeddings ``(batch, 1, lin_neurons)``, float32."""
        if frames is not None and frames.is_floating_point():
            raise InputError("the fast graph takes integer frame counts, not relative lengths")
        batch, total = features.shape[0], features.shape[1]
        counts = torch.full((batch,), total, device=features.device) if frames is None \
            else frames
        mask = (torch.arange(total, device=features.device).unsqueeze(0)
                < counts.unsqueeze(1)).unsqueeze(2)                      # (batch, frames, 1)
        indices = {p: None if frames is None else reflect_index(frames, total, p)
                   for p in self.paddings if p > 0}
        weights = mask.to(self.dtype)
        denominators = counts.to(self.dtype).view(-1, 1, 1)
        x = self.first(features.to(self.dtype), indices.get(self.first.conv.padding))
        outputs = []
        for block in self.blocks:
            x = block(x, weights, denominators, indices.get(block.padding))
            outputs.append(x)
        x = self.mfa(torch.cat(outputs, dim=2), None)
        return self._pool(x, mask, counts)

    def _pool(self, x: torch.Tensor, mask: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Attentive statistics pooling, its statistics in float32 (one pass: the weighted
        means of ``x`` and ``x**2``), then ``asp_bn`` and ``fc`` as one affine map."""
        full = x.float()
        square = full * full
        uniform = mask.squeeze(2).float() / counts.float().unsqueeze(1)       # (batch, frames)
        mean = torch.einsum("bt,btc->bc", uniform, full)
        std = _std(torch.einsum("bt,btc->bc", uniform, square), mean, self.eps)
        context = F.linear(torch.cat([mean, std], dim=1), self.context_weight,
                           self.context_bias).to(self.dtype)
        hidden = torch.relu(F.linear(x, self.frame_weight) + context.unsqueeze(1))
        hidden = torch.tanh(torch.addcmul(self.attention_shift, hidden, self.attention_scale))
        scores = self.attention(hidden, None).float().masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        mean = (weights * full).sum(dim=1)
        std = _std((weights * square).sum(dim=1), mean, self.eps)
        return F.linear(torch.cat([mean, std], dim=1), self.out_weight,
                        self.out_bias).unsqueeze(1)


def _std(mean_square: torch.Tensor, mean: torch.Tensor, eps: float) -> torch.Tensor:
    """Standard deviation from the mean of squares and the mean, the variance floored at
    ``eps`` as in ``models.pooling``."""
    return (mean_square - mean * mean).clamp(min=eps).sqrt()
