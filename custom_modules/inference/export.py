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

from custom_modules.errors import InputError
from custom_modules.models.embedder import Embedder


def _example(embedder: Embedder) -> tuple[torch.Tensor, torch.Tensor]:
    rate = embedder.sample_rate
    generator = torch.Generator().manual_seed(0)
    return (0.1 * torch.randn(2, 2 * rate, generator=generator),
            torch.tensor([2 * rate, rate + rate // 3]))


def exportable(embedder: Embedder) -> Embedder:
    """``embedder`` on the CPU in eval mode, or a one-line error for a precision whose model
    is not a PyTorch graph: int8 runs in onnxruntime, which a trace records as a constant."""
    if getattr(embedder, "precision", "fp32") == "int8":
        raise InputError("export: the int8 model runs in onnxruntime, outside the PyTorch "
                         "graph that ONNX and TorchScript record; export at fp32, fp32-fast or "
                         "bf16 (--precision)")
    return embedder.cpu().eval()


def export_onnx(embedder: Embedder, path: str | os.PathLike, opset: int = 17) -> Path:
    """Write an ONNX file with dynamic batch and time axes."""
    module = exportable(embedder)
    with torch.no_grad():
        torch.onnx.export(module, _example(embedder), str(path), dynamo=False,
                          opset_version=opset, input_names=["wavs", "samples"],
                          output_names=["embeddings"],
                          dynamic_axes={"wavs": {0: "batch", 1: "time"},
                                        "samples": {0: "batch"}, "embeddings": {0: "batch"}})
    return Path(path)


def export_torchscript(embedder: Embedder, path: str | os.PathLike) -> Path:
    """Write a traced TorchScript file (same inputs and outputs as the ONNX export), checked
    on audio it was not traced with: a trace that recorded something as a constant is a
    one-line error, not a file."""
    module = exportable(embedder)
    with torch.no_grad():
        traced = torch.jit.trace(module, _example(embedder), check_trace=False)
        rate = embedder.sample_rate
        wavs = 0.1 * torch.randn(3, 3 * rate, generator=torch.Generator().manual_seed(2))
        samples = torch.tensor([3 * rate, 2 * rate, rate])
        got, expected = traced(wavs, samples), module(wavs, samples)
        lowest = float(F.cosine_similarity(got, expected, dim=1).min()) \
            if got.shape == expected.shape else -1.0
    if lowest < 0.9999:
        raise InputError(f"export: the traced model differs from the model on new audio "
                         f"(lowest cosine {lowest:.4f}); nothing written to {path}")
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
