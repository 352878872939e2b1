"""GPU rehearsal of the VoxCeleb recipe (``benchmarks/rehearsal.py``): the CPU rehearsal's
generated tree on one GPU, trained in fp32, fp16 and bf16, then through ``torchrun
--nproc_per_node=1`` with the nccl backend to the export.

    python -m benchmarks.rehearse_voxceleb_gpu [steps]    # default 300 optimiser steps each

Reports, per run, the step time, the share of it spent waiting for the data loader and the
peak GPU memory (the training log's figures), and that the nccl run exported a folder;
``exps/rehearsal_gpu/report.json`` keeps them. Without CUDA it says so and exits 0.
"""

import shutil
import sys
import time
from pathlib import Path

import torch

from benchmarks.machine import describe
from benchmarks.rehearsal import data_arguments, generate, report, timed, train_log, training

OUTPUT = Path("exps/rehearsal_gpu")


def main() -> None:
    if not torch.cuda.is_available():
        print("no CUDA device here: the GPU rehearsal needs one (the CPU one is "
              "benchmarks/rehearse_voxceleb.py)")
        return
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    print(describe())
    folders = generate(Path("exps/rehearsal_data"), 5994)
    prepared = OUTPUT / "data"
    # About 91 steps an epoch at batch 128: enough epochs to reach the step limit.
    common = [*data_arguments(folders), *training(steps // 91 + 1),
              f"--prepared_folder={prepared}", "--batch_size=128", "--num_workers=8",
              f"--optimizer_step_limit={steps}"]
    figures = {"machine": describe(), "optimiser steps per run": steps}
    for precision in ("fp32", "fp16", "bf16"):
        output = OUTPUT / precision
        shutil.rmtree(output, ignore_errors=True)
        run = timed([sys.executable, "recipes/train_speaker_embeddings.py", "hparams/ecapa.yaml",
                     f"--output_folder={output}", *common, "--device=cuda:0",
                     f"--precision={precision}"])
        epoch = train_log(output)
        figures.update({f"{precision} step seconds": epoch["train step_seconds"],
                        f"{precision} data wait share": epoch["train data_wait"],
                        f"{precision} peak GPU GB": epoch["train gpu_memory_gb"],
                        f"{precision} run seconds": run["seconds"]})
    output = OUTPUT / "nccl"
    shutil.rmtree(output, ignore_errors=True)
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    start = time.perf_counter()
    timed([torchrun, "--nproc_per_node=1", "recipes/train_speaker_embeddings.py",
           "hparams/ecapa.yaml", f"--output_folder={output}", *common,
           "--distributed_backend=nccl"])
    figures["nccl run seconds (to the export)"] = time.perf_counter() - start
    figures["nccl exported"] = (output / "pretrained/embedding_model.ckpt").is_file()
    report("rehearsal_gpu", figures)


if __name__ == "__main__":
    main()
