"""Export a pretrained embedder (frontend included) to ONNX and TorchScript, and check it.

Both take ``wavs: (batch, samples)`` float32 at the model's sample rate and ``samples:
(batch,)`` int64 valid sample counts, and return embeddings ``(batch, dim)``, each row computed
at its own length; batch and time are dynamic. What is traced is ``Embedder`` itself, so the
exports compute exactly what verification and the interface compute. ``check_onnx`` runs the
file in onnxruntime and compares it with PyTorch on the same audio.
"""

import os
from pathlib import Path

import numpy as np
import onnxruntime
import torch
import torch.nn.functional as F

from custom_modules.models.embedder import Embedder


def _example(embedder: Embedder) -> tuple[torch.Tensor, torch.Tensor]:
    rate = embedder.sample_rate
    generator = torch.Generator().manual_seed(0)
    return (0.1 * torch.randn(2, 2 * rate, generator=generator),
            torch.tensor([2 * rate, rate + rate // 3]))


def export_onnx(embedder: Embedder, path: str | os.PathLike, opset: int = 17) -> Path:
    """Write an ONNX file with dynamic batch and time axes."""
    module = embedder.cpu().eval()
    with torch.no_grad():
        torch.onnx.export(module, _example(embedder), str(path), dynamo=False,
                          opset_version=opset, input_names=["wavs", "samples"],
                          output_names=["embeddings"],
                          dynamic_axes={"wavs": {0: "batch", 1: "time"},
                                        "samples": {0: "batch"}, "embeddings": {0: "batch"}})
    return Path(path)


def export_torchscript(embedder: Embedder, path: str | os.PathLike) -> Path:
    """Write a traced TorchScript file (same inputs and outputs as the ONNX export)."""
    module = embedder.cpu().eval()
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
        reference = embedder.cpu().eval()(wavs, samples)
    return float(F.cosine_similarity(torch.from_numpy(onnx_out), reference, dim=1).min())
