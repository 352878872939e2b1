"""Inference precisions: the same model run in a faster number format or graph.

- ``fp32``: the model as trained (``models.ecapa``), the reference.
- ``fp32-fast``: the same arithmetic in ``inference.fast_graph`` (channels-last, batch norms
  as affine maps, the last one folded into the output layer): equal up to rounding.
- ``bf16``: the fast graph in bfloat16 (pooling statistics in float32); on CPUs with
  AVX512_BF16 or AMX, and on CUDA.
- ``fp16``: the fast graph in float16, on CUDA only.
- ``int8``: the fast graph exported to ONNX and quantised by onnxruntime (int8 weights per
  output channel, activations quantised on the fly, for every matrix product), run by
  onnxruntime on the CPU. (Per-channel weights halve the error of per-tensor ones on the
  demo model: lowest cosine 0.9996 against 0.9986.)
- ``auto``: the fastest precision that this machine supports and that passed its accuracy
  check (``check_precisions``: EER within ``EER_TOLERANCE`` points of fp32 on every list, or
  one trial's worth on a small list, and the lowest cosine to the fp32 embeddings at least
  ``MIN_COSINE``), read from the model folder's ``precisions.json`` (or a precisions
  sidecar); fp32 when there is none.

Only the embedding model changes: features are always computed in float32 by the same
frontend, and embeddings come back as float32.
"""

import copy
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic

from custom_modules.errors import InputError, finite_number
from custom_modules.files import within
from custom_modules.inference.fast_graph import FastECAPA
from custom_modules.models.embedder import Embedder
from custom_modules.sidecars import KIND_FILES

logger = logging.getLogger(__name__)
PRECISIONS = ("fp32", "fp32-fast", "bf16", "fp16", "int8")
(CHECKS,) = KIND_FILES["precisions"]
EER_TOLERANCE = 0.05        # points of EER a precision may move against fp32, per list
MIN_COSINE = 0.995          # lowest cosine to the fp32 embedding a precision may give


def cpu_description() -> tuple[str, set[str]]:
    """This CPU's model name and instruction-set flags (``/proc/cpuinfo``)."""
    name, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and name == "unknown CPU":
                name = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return name, flags


def supported(precision: str, device: str) -> bool:
    """Whether ``precision`` runs (fast) on ``device`` here."""
    if precision not in PRECISIONS:
        raise InputError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)} "
                         f"or auto")
    cuda = device.startswith("cuda")
    if precision == "bf16":   # natively: a GPU before Ampere only emulates it, slowly
        return cuda_bf16(device) if cuda else \
            bool(cpu_description()[1] & {"avx512_bf16", "amx_bf16"})
    if precision == "fp16":
        return cuda
    if precision == "int8":
        return not cuda
    return True


def cuda_bf16(device: str) -> bool:
    """Whether the CUDA ``device`` computes in bfloat16 natively (compute capability 8.0 on)."""
    return torch.cuda.get_device_capability(torch.device(device))[0] >= 8


def with_precision(embedder: Embedder, precision: str, folder: str | os.PathLike | None = None
                   ) -> Embedder:
    """``embedder`` run at ``precision`` (``auto``: see the module docstring; ``folder`` is
    the model folder whose ``precisions.json`` it reads). Its ``precision`` names the one
    used; its fingerprint stays the model's."""
    device = str(embedder.device)
    if precision == "auto":
        precision = auto_precision(folder, device)
    if not supported(precision, device):
        raise InputError(f"precision {precision} is not supported on {device} here "
                         f"(bf16: a CPU with AVX512_BF16 or AMX, or CUDA; fp16: CUDA; "
                         f"int8: the CPU)")
    if precision == "fp32":
        return embedder
    model = embedder.embedding_model
    if precision == "int8":
        # onnxruntime runs on the CPU: a CPU copy, the caller's model stays where it is
        fast = QuantizedModel(FastECAPA(copy.deepcopy(model).cpu()), model.config)
    else:
        dtype = {"fp32-fast": torch.float32, "bf16": torch.bfloat16,
                 "fp16": torch.float16}[precision]
        fast = FastECAPA(model, dtype)
    converted = Embedder(embedder.compute_features, fast, embedder.mean_var_norm_emb,
                         embedder.threshold, embedder.sample_rate, precision,
                         embedder.fingerprint())
    return converted.to(device).eval()


def auto_precision(folder: str | os.PathLike | None, device: str) -> str:
    """The fastest supported precision that passed its check in ``folder/precisions.json``,
    else fp32."""
    path = None if folder is None else within(folder, CHECKS)
    if path is None or not path.is_file():
        return "fp32"
    checks = read_checks(path)
    passed = [(entry["embeddings_per_second"], name)
              for name, entry in checks["precisions"].items()
              if entry["passed"] and supported(name, device)]
    return max(passed)[1] if passed else "fp32"


def read_checks(path: str | os.PathLike) -> dict:
    """A ``precisions.json``; a malformed one is a one-line error naming it."""
    try:
        checks = json.loads(Path(path).read_text(encoding="utf-8"))
        for name, entry in checks["precisions"].items():
            if not {"passed", "embeddings_per_second"} <= set(entry):
                raise KeyError(f"{name} has no passed / embeddings_per_second")
            if not isinstance(entry["passed"], bool) or \
                    not finite_number(entry["embeddings_per_second"]):
                raise TypeError(f"{name}: passed must be true or false and "
                                f"embeddings_per_second a number")
        return checks
    except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError) as error:
        raise InputError(f"{path}: not a readable precision check ({type(error).__name__}: "
                         f"{error})") from None


class _DropPreProcessingHint(logging.Filter):
    """Drops onnxruntime's advice to pre-process a model before quantising it (a warning on
    the root logger at every quantisation), and nothing else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Please consider")


class QuantizedModel(torch.nn.Module):
    """A ``FastECAPA`` exported to ONNX, quantised to int8 by onnxruntime and run by it:
    ``(features (batch, frames, n_mels), frames (batch,) or None) -> (batch, 1, dim)``."""

    def __init__(self, fast: FastECAPA, config: dict):
        super().__init__()
        self.config = config
        self.register_buffer("_anchor", torch.zeros(0))      # so that .device works
        example = torch.randn(2, 200, config["input_size"])
        with tempfile.TemporaryDirectory() as folder:
            plain, quantized = Path(folder, "fast.onnx"), Path(folder, "fast_int8.onnx")
            with torch.no_grad():
                torch.onnx.export(fast, (example, torch.tensor([200, 150])), str(plain),
                                  dynamo=False, opset_version=17,
                                  input_names=["features", "frames"], output_names=["out"],
                                  dynamic_axes={"features": {0: "batch", 1: "time"},
                                                "frames": {0: "batch"}, "out": {0: "batch"}})
            hint = _DropPreProcessingHint()     # onnxruntime's, on the root logger
            logging.getLogger().addFilter(hint)
            try:
                quantize_dynamic(str(plain), str(quantized), weight_type=QuantType.QInt8,
                                 op_types_to_quantize=["MatMul", "Gemm"], per_channel=True)
            finally:
                logging.getLogger().removeFilter(hint)
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            self.session = onnxruntime.InferenceSession(
                str(quantized), options, providers=["CPUExecutionProvider"])

    def forward(self, features: torch.Tensor, frames: torch.Tensor | None = None
                ) -> torch.Tensor:
        if frames is None:
            frames = torch.full((features.shape[0],), features.shape[1])
        (out,) = self.session.run(None, {"features": features.float().cpu().numpy(),
                                         "frames": frames.cpu().numpy().astype(np.int64)})
        return torch.from_numpy(out).to(features.device)
