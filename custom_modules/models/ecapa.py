"""ECAPA-TDNN speaker embedding model (Desplanques et al., Interspeech 2020).

Built bottom-up: Res2Net block -> squeeze-excitation block -> SE-Res2Block -> the model, which
stacks a TDNN layer, SE-Res2Blocks with growing dilation, multi-layer feature aggregation, and
channel-dependent attentive statistics pooling into a ``lin_neurons``-dimensional embedding.

Constructor arguments, defaults, ``forward(x, lengths)`` and state-dict keys are those of
``speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN``, so SpeechBrain weights load with
``strict=True`` and give the same embeddings.
"""

from typing import List, Optional, Sequence, Tuple, Type

import torch
import torch.nn as nn

from custom_modules.errors import InputError
from custom_modules.models.layers import (
    ChannelBatchNorm,
    SameConv1d,
    TDNNBlock,
    frame_mask,
    masked_mean,
)
from custom_modules.models.pooling import AttentiveStatisticsPooling


class Res2NetBlock(nn.Module):
    """Hierarchical residual convolutions over ``scale`` channel groups.

    The first group passes through; group ``i`` is convolved after adding the output of group
    ``i - 1``, so later groups see a growing receptive field.

    Example
    -------
    >>> Res2NetBlock(64, 64, scale=4, dilation=3)(torch.randn(2, 64, 40)).shape
    torch.Size([2, 64, 40])
    """

    def __init__(self, in_channels: int, out_channels: int, scale: int = 8,
                 kernel_size: int = 3, dilation: int = 1, dropout: float = 0.0):
        super().__init__()
        if in_channels % scale or out_channels % scale:
            raise InputError(f"Res2NetBlock: channels ({in_channels}, {out_channels}) must be "
                             f"divisible by res2net_scale={scale}")
        self.scale = scale
        self.blocks = nn.ModuleList([
            TDNNBlock(in_channels // scale, out_channels // scale, kernel_size, dilation,
                      dropout=dropout)
            for _ in range(scale - 1)
        ])

    def forward(self, x: torch.Tensor, frames: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x: (batch, in_channels, frames)`` -> ``(batch, out_channels, frames)``."""
        groups = torch.chunk(x, self.scale, dim=1)
        outputs = [groups[0]]
        for i, block in enumerate(self.blocks):
            outputs.append(block(groups[i + 1] if i == 0 else groups[i + 1] + outputs[-1],
                                 frames))
        return torch.cat(outputs, dim=1)


class SEBlock(nn.Module):
    """Squeeze-excitation: rescale each channel by a gate computed from the utterance mean.

    The mean is taken over valid frames only. Returns the gated input and the gates.

    Example
    -------
    >>> gated, gates = SEBlock(64, 16, 64)(torch.randn(2, 64, 40), torch.ones(2, 1, 40))
    >>> gated.shape, gates.shape
    (torch.Size([2, 64, 40]), torch.Size([2, 64]))
    """

    def __init__(self, in_channels: int, se_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = SameConv1d(in_channels, se_channels, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = SameConv1d(se_channels, out_channels, kernel_size=1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor,
                mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x: (batch, channels, frames)``, ``mask: (batch, 1, frames)`` ->
        (gated ``x``, gates ``(batch, channels)``)."""
        gates = self.sigmoid(self.conv2(self.relu(self.conv1(masked_mean(x, mask)))))
        return gates * x, gates.squeeze(2)


class SERes2NetBlock(nn.Module):
    """SE-Res2Block: 1x1 TDNN -> dilated Res2Net -> 1x1 TDNN -> SE, plus a residual path.

    Example
    -------
    >>> block = SERes2NetBlock(64, 64, res2net_scale=4, se_channels=16, kernel_size=3)
    >>> out, gates = block(torch.randn(2, 64, 40), torch.ones(2, 1, 40))
    >>> out.shape
    torch.Size([2, 64, 40])
    """

    def __init__(self, in_channels: int, out_channels: int, res2net_scale: int = 8,
                 se_channels: int = 128, kernel_size: int = 1, dilation: int = 1,
                 activation: Type[nn.Module] = nn.ReLU, groups: int = 1, dropout: float = 0.0):
        super().__init__()
        self.out_channels = out_channels
        self.tdnn1 = TDNNBlock(in_channels, out_channels, 1, 1, activation, groups, dropout)
        self.res2net_block = Res2NetBlock(out_channels, out_channels, res2net_scale,
                                          kernel_size, dilation)
        self.tdnn2 = TDNNBlock(out_channels, out_channels, 1, 1, activation, groups, dropout)
        self.se_block = SEBlock(out_channels, se_channels, out_channels)
        self.shortcut = (SameConv1d(in_channels, out_channels, kernel_size=1)
                         if in_channels != out_channels else None)

    def forward(self, x: torch.Tensor, mask: torch.Tensor,
                frames: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """``x: (batch, in_channels, frames)`` -> (``(batch, out_channels, frames)``,
        SE gates ``(batch, out_channels)``); ``frames``: see ``SameConv1d``."""
        residual = x if self.shortcut is None else self.shortcut(x)
        x, gates = self.se_block(self.tdnn2(self.res2net_block(self.tdnn1(x), frames)), mask)
        return x + residual, gates


class ECAPA_TDNN(nn.Module):
    """ECAPA-TDNN speaker embedding model.

    Arguments (as in SpeechBrain)
    ---------
    input_size : int
        Features per frame (e.g. 80 log-mels).
    device : str
        Device to create the model on.
    lin_neurons : int
        Embedding size.
    activation : type
        Activation class of the TDNN layers.
    channels, kernel_sizes, dilations, groups : sequences of int
        Per layer: the first TDNN layer, the SE-Res2Blocks, then the aggregation layer.
    attention_channels : int
        Bottleneck of the attentive pooling.
    res2net_scale : int
        Channel groups of the Res2Net blocks.
    se_channels : int
        Bottleneck of the squeeze-excitation blocks.
    global_context : bool
        Whether the pooling attention sees utterance-level statistics.
    dropout : float
        Channel dropout of the TDNN layers.

    Example
    -------
    >>> model = ECAPA_TDNN(80, channels=[32, 32, 32, 32, 96], attention_channels=16,
    ...                    se_channels=16).eval()
    >>> model(torch.randn(3, 120, 80), torch.tensor([1.0, 0.8, 0.5])).shape
    torch.Size([3, 1, 192])
    """

    def __init__(self, input_size: int, device: str = "cpu", lin_neurons: int = 192,
                 activation: Type[nn.Module] = nn.ReLU,
                 channels: Sequence[int] = (512, 512, 512, 512, 1536),
                 kernel_sizes: Sequence[int] = (5, 3, 3, 3, 1),
                 dilations: Sequence[int] = (1, 2, 3, 4, 1), attention_channels: int = 128,
                 res2net_scale: int = 8, se_channels: int = 128, global_context: bool = True,
                 groups: Sequence[int] = (1, 1, 1, 1, 1), dropout: float = 0.0):
        super().__init__()
        self.config = {"input_size": input_size, "lin_neurons": lin_neurons,
                       "channels": list(channels), "kernel_sizes": list(kernel_sizes),
                       "dilations": list(dilations), "attention_channels": attention_channels,
                       "res2net_scale": res2net_scale, "se_channels": se_channels,
                       "global_context": global_context, "groups": list(groups),
                       "dropout": dropout}
        if activation is not nn.ReLU:
            self.config["activation"] = f"{activation.__module__}.{activation.__qualname__}"
        layers = {"kernel_sizes": kernel_sizes, "dilations": dilations, "groups": groups}
        for name, values in layers.items():
            if len(values) != len(channels):
                raise InputError(f"ECAPA_TDNN: {name} has {len(values)} entries but channels "
                                 f"has {len(channels)}; give one per layer")
        if len(channels) < 3:
            raise InputError(f"ECAPA_TDNN: channels needs at least 3 layers (TDNN, one "
                             f"SE-Res2Block, aggregation), got {list(channels)}")
        self.input_size = input_size
        self.channels = list(channels)
        self.blocks = nn.ModuleList([TDNNBlock(input_size, channels[0], kernel_sizes[0],
                                               dilations[0], activation, groups[0], dropout)])
        for i in range(1, len(channels) - 1):
            self.blocks.append(SERes2NetBlock(
                channels[i - 1], channels[i], res2net_scale=res2net_scale,
                se_channels=se_channels, kernel_size=kernel_sizes[i], dilation=dilations[i],
                activation=activation, groups=groups[i], dropout=dropout))
        self.mfa = TDNNBlock(sum(channels[1:-1]), channels[-1], kernel_sizes[-1],
                             dilations[-1], activation, groups[-1], dropout)
        self.asp = AttentiveStatisticsPooling(channels[-1], attention_channels, global_context)
        self.asp_bn = ChannelBatchNorm(channels[-1] * 2)
        self.fc = SameConv1d(channels[-1] * 2, lin_neurons, kernel_size=1)
        paddings = [d * (k - 1) // 2 for k, d in zip(kernel_sizes, dilations, strict=True)]
        self.min_frames = 1 + max(paddings)
        self.to(device)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Embed a batch of feature sequences.

        Arguments
        ---------
        x : torch.Tensor
            ``(batch, frames, input_size)`` features, zero-padded at the end.
        lengths : torch.Tensor, optional
            ``(batch,)`` relative lengths in (0, 1] (SpeechBrain's convention: the padding
            is seen by the convolutions, exactly as SpeechBrain computes it), or an integer
            tensor of valid frame counts: then every row is processed as if it were alone
            (each convolution reflects at the row's own end), so an embedding does not
            depend on what it is batched with. ``None`` means no padding.

        Returns
        -------
        torch.Tensor
            ``(batch, 1, lin_neurons)`` embeddings.
        """
        embedding, _, _ = self.forward_with_attention(x, lengths)
        return embedding

    def forward_with_attention(
        self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor, List[torch.Tensor]]:
        """Embed and also return what the model attended to.

        Returns
        -------
        embedding : torch.Tensor
            ``(batch, 1, lin_neurons)``.
        pooling_weights : torch.Tensor
            ``(batch, channels[-1], frames)`` attention of the pooling layer; each channel's
            weights sum to one over the valid frames and are zero on padded frames.
        se_gates : list of torch.Tensor
            One ``(batch, channels[i])`` tensor of squeeze-excitation gates per SE-Res2Block.
        """
        if not torch.jit.is_scripting() and not torch.jit.is_tracing():
            self._check_input(x, lengths)
        x = x.transpose(1, 2)
        mask = frame_mask(lengths, x)
        frames = lengths if lengths is not None and not lengths.is_floating_point() else None
        se_gates: List[torch.Tensor] = []
        block_outputs: List[torch.Tensor] = []
        x = self.blocks[0](x, frames)
        for block in self.blocks[1:]:
            x, gates = block(x, mask, frames)
            se_gates.append(gates)
            block_outputs.append(x)
        x = self.mfa(torch.cat(block_outputs, dim=1))
        stats, pooling_weights = self.asp(x, mask)
        embedding = self.fc(self.asp_bn(stats)).transpose(1, 2)
        return embedding, pooling_weights, se_gates

    def _check_input(self, x: torch.Tensor, lengths: Optional[torch.Tensor]) -> None:
        """Raise a one-line ``ValueError`` for input the model cannot embed."""
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"ECAPA_TDNN: expected features (batch, frames, {self.input_size}), "
                             f"got shape {tuple(x.shape)}")
        if x.shape[1] < self.min_frames:
            raise ValueError(f"ECAPA_TDNN: input has {x.shape[1]} frames but the model needs at "
                             f"least {self.min_frames} (its widest dilated convolution)")
        if lengths is None:
            return
        if lengths.shape != (x.shape[0],):
            raise ValueError(f"ECAPA_TDNN: lengths must have shape ({x.shape[0]},), "
                             f"got {tuple(lengths.shape)}")
        if not lengths.is_floating_point():
            short = lengths < self.min_frames
            if short.any() or (lengths > x.shape[1]).any():
                row = int((short | (lengths > x.shape[1])).nonzero()[0, 0])
                raise ValueError(f"ECAPA_TDNN: batch row {row} has {int(lengths[row])} valid "
                                 f"frames; it needs {self.min_frames} to {x.shape[1]}")
            return
        bad = ~((lengths > 0) & (lengths <= 1 + 1e-6))
        if bad.any():
            row = int(bad.nonzero()[0, 0])
            raise ValueError(f"ECAPA_TDNN: relative length {float(lengths[row])} of batch row "
                             f"{row} is outside (0, 1]; an empty or all-padding utterance has "
                             f"no frames to pool")


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def parameter_summary(model: ECAPA_TDNN) -> str:
    """One line per part of the model with its parameter count, then the total.

    >>> print(parameter_summary(ecapa_c512()).splitlines()[-1])
    total                     6,194,048
    """
    parts = [(f"blocks.{i} ({type(b).__name__})", b) for i, b in enumerate(model.blocks)]
    parts += [("mfa", model.mfa), ("asp", model.asp), ("asp_bn", model.asp_bn), ("fc", model.fc)]
    lines = [f"{name:<25} {count_parameters(part):>9,}" for name, part in parts]
    lines.append(f"{'total':<25} {count_parameters(model):>9,}")
    return "\n".join(lines)


def ecapa_c512(input_size: int = 80, **kwargs) -> ECAPA_TDNN:
    """ECAPA-TDNN with C=512 (about 6.2 M parameters), the paper's smaller model."""
    return ECAPA_TDNN(input_size, channels=[512, 512, 512, 512, 1536], **kwargs)


def ecapa_c1024(input_size: int = 80, **kwargs) -> ECAPA_TDNN:
    """ECAPA-TDNN with C=1024 (about 20.8 M parameters), the paper's best model."""
    return ECAPA_TDNN(input_size, channels=[1024, 1024, 1024, 1024, 3072], **kwargs)

