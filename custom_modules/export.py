"""Export a pretrained embedder (frontend included) to ONNX and TorchScript, and check it.

Both take ``wavs: (batch, samples)`` float32 at the model's sample rate and ``samples:
(batch,)`` int64 valid sample counts, and return unit-independent embeddings
``(batch, dim)``; batch and time are dynamic. ``check_onnx`` runs the file in onnxruntime and
compares it with PyTorch on the same audio.
"""

import os
from pathlib import Path

import numpy as np
import onnxruntime
import torch
import torch.nn.functional as F

from custom_modules.pretrained import Embedder


class ExportableEmbedder(torch.nn.Module):
    """``(wavs, samples) -> embeddings``: the embedder at exact lengths, ready to trace."""

    def __init__(self, embedder: Embedder):
        super().__init__()
        self.embedder = embedder

    def forward(self, wavs: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        features = self.embedder.compute_features(wavs, samples)
        frames = self.embedder.compute_features.frame_counts(samples)
        return self.embedder.embedding_model(features, frames).squeeze(1)


def _example(embedder: Embedder) -> tuple[torch.Tensor, torch.Tensor]:
    rate = embedder.sample_rate
    generator = torch.Generator().manual_seed(0)
    return (0.1 * torch.randn(2, 2 * rate, generator=generator),
            torch.tensor([2 * rate, rate + rate // 3]))


def export_onnx(embedder: Embedder, path: str | os.PathLike, opset: int = 17) -> Path:
    """Write an ONNX file with dynamic batch and time axes."""
    module = ExportableEmbedder(embedder.cpu()).eval()
    with torch.no_grad():
        torch.onnx.export(module, _example(embedder), str(path), dynamo=False,
                          opset_version=opset, input_names=["wavs", "samples"],
                          output_names=["embeddings"],
                          dynamic_axes={"wavs": {0: "batch", 1: "time"},
                                        "samples": {0: "batch"}, "embeddings": {0: "batch"}})
    return Path(path)


def export_torchscript(embedder: Embedder, path: str | os.PathLike) -> Path:
    """Write a traced TorchScript file (same inputs and outputs as the ONNX export)."""
    module = ExportableEmbedder(embedder.cpu()).eval()
    with torch.no_grad():
        traced = torch.jit.trace(module, _example(embedder), check_trace=False)
    traced.save(str(path))
    return Path(path)


def check_onnx(embedder: Embedder, path: str | os.PathLike, wavs: torch.Tensor,
               samples: torch.Tensor) -> float:
    """Smallest cosine between onnxruntime's and PyTorch's embeddings of the same batch."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {"wavs": wavs.numpy().astype(np.float32),
                                      "samples": samples.numpy().astype(np.int64)})
    with torch.no_grad():
        reference = ExportableEmbedder(embedder.cpu()).eval()(wavs, samples)
    return float(F.cosine_similarity(torch.from_numpy(onnx_out), reference, dim=1).min())
