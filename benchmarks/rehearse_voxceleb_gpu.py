"""GPU rehearsal of the VoxCeleb recipe (``benchmarks/rehearsal.py``): the generated tree at
VoxCeleb's shape, ECAPA C=1024, trained in each mode a GPU machine offers, so that a first run
on one works without debugging.

    python -m benchmarks.rehearse_voxceleb_gpu              # on a CUDA machine: the real modes
    python -m benchmarks.rehearse_voxceleb_gpu --stand-in   # anywhere: the CPU stand-ins

Modes: fp32, fp16 and bf16 (where the GPU has it natively) on one GPU, then DDP over every GPU
with nccl (``torchrun``; SyncBatchNorm, rank-0 validation, broadcasts). Without CUDA, or with
``--stand-in``, each runs through the same code on the CPU at a small shape: fp32, bf16
autocast for fp16 and bf16, and gloo with two processes for nccl (``make test`` runs this).
The data is prepared once, before any launch (``recipes/prepare_data.py``), as a multi-GPU
VoxCeleb run must be. Each mode trains 2 epochs; the report takes the second's figures, whose
loader has started: seconds per step, the share waiting for data, the loader's start-up, the
peak GPU memory; and each run's wall-clock. One JSON report: ``exps/rehearsal_gpu/`` (or
``exps/rehearsal_stand_in/``). A mode that fails is reported and the others still run; the
exit status is then 1. About 8 minutes on one H200 (not yet run on one).
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import torch

from benchmarks.machine import describe
from benchmarks.rehearsal import (
    TINY,
    Shape,
    data_arguments,
    generate,
    report,
    timed,
    train_log,
    training,
)
from custom_modules.inference.precision import cuda_bf16

GPU_SHAPE = Shape(speakers=5994, test_speakers=40, corpus_scale=1.0,
                  channels=[1024, 1024, 1024, 1024, 3072], lin_neurons=192, batch_size=128,
                  num_workers=8, epochs=2, valid_utterances=1000)
STAND_IN_SHAPE = TINY._replace(epochs=2)   # the second epoch's figures are reported


class Mode(NamedTuple):
    """One training run: its name, device, precision and, for DDP, backend and processes."""

    name: str
    device: str
    precision: str
    backend: str | None = None
    processes: int = 1


def modes(stand_in: bool) -> list[Mode]:
    """The GPU modes, or their CPU stand-ins."""
    if stand_in:
        return [Mode("fp32", "cpu", "fp32"), Mode("fp16 and bf16 (bf16 on CPU)", "cpu", "bf16"),
                Mode("nccl (gloo, 2 processes)", "cpu", "fp32", "gloo", 2)]
    halves = [Mode("fp16", "cuda:0", "fp16")]
    if cuda_bf16("cuda:0"):
        halves.append(Mode("bf16", "cuda:0", "bf16"))
    ddp = Mode("nccl", "cuda", "bf16" if cuda_bf16("cuda:0") else "fp16", "nccl",
               torch.cuda.device_count())
    return [Mode("fp32", "cuda:0", "fp32"), *halves, ddp]


def command(mode: Mode, recipe: list[str], output: Path, fit_backend: bool) -> list[str]:
    """The training command of ``mode`` (through ``torchrun`` for DDP)."""
    options = [f"--output_folder={output}", f"--precision={mode.precision}",
               *([] if fit_backend else ["--backend=null"])]
    if mode.backend is None:
        return [sys.executable, "recipes/train_speaker_embeddings.py", *recipe, *options,
                f"--device={mode.device}"]
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    return [torchrun, f"--nproc_per_node={mode.processes}", "--standalone",
            "recipes/train_speaker_embeddings.py", *recipe, *options,
            f"--distributed_backend={mode.backend}"]


def rehearse(stand_in: bool, root: Path) -> dict:
    """Generate, prepare, run every mode, under ``root``; the report's figures."""
    shape = STAND_IN_SHAPE if stand_in else GPU_SHAPE
    name = "rehearsal_stand_in" if stand_in else "rehearsal_gpu"
    output = root / name
    shutil.rmtree(output, ignore_errors=True)      # fresh runs, not resumed ones
    folders = generate(root / f"{name}_data", shape.speakers, shape.test_speakers,
                       shape.corpus_scale)
    recipe = ["hparams/ecapa.yaml", *data_arguments(folders, output / "data"),
              *training(shape)]
    figures: dict = {"machine": describe(), "shape": shape._asdict(),
                     "preparation seconds": timed([sys.executable, "recipes/prepare_data.py",
                                                   *recipe, f"--output_folder={output}"])
                     ["seconds"]}
    for number, mode in enumerate(modes(stand_in)):
        folder = output / mode.name.split()[0]
        try:
            run = timed(command(mode, recipe, folder, fit_backend=number == 0))
        except subprocess.CalledProcessError as error:
            figures[mode.name] = {"failed": f"exit status {error.returncode}"}
            continue
        epoch = train_log(folder)
        figures[mode.name] = {
            "run seconds": run["seconds"], "step seconds": epoch["train step_seconds"],
            "data wait share": epoch["train data_wait"],
            "compute seconds per step": epoch["train step_seconds"]
            * (1 - epoch["train data_wait"]),
            "loader start-up seconds": epoch["train start_up"],
            "peak GPU GB": epoch.get("train gpu_memory_gb"),
            "exported": (folder / "pretrained/embedding_model.ckpt").is_file()}
    report(output, figures)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stand-in", action="store_true",
                        help="the CPU stand-ins at a small shape, even where CUDA is")
    parser.add_argument("--root", type=Path, default=Path("exps"),
                        help="where the tree, the runs and the report go")
    args = parser.parse_args()
    stand_in = args.stand_in or not torch.cuda.is_available()
    if not stand_in:
        print(describe())
    figures = rehearse(stand_in, args.root)
    failed = [name for name, value in figures.items()
              if isinstance(value, dict) and "failed" in value]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
