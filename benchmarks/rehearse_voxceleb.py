"""CPU rehearsal of the VoxCeleb recipe at VoxCeleb's shape (``benchmarks/rehearsal.py``):
preparation, a few hundred training steps with all augmentation, bounded validation, export,
and verification on a 10,000-trial list, with a small model.

    python -m benchmarks.rehearse_voxceleb [speakers]     # default 5994, VoxCeleb2 dev's

Reports the preparation's time, the crops per second one DataLoader worker makes, the step
time split into data wait and compute, the validation's time and each stage's peak memory;
``exps/rehearsal_cpu/report.json`` keeps them (docs/BENCHMARKS.md quotes them).
"""

import json
import sys
import time
from pathlib import Path

from benchmarks.machine import describe
from benchmarks.rehearsal import (
    crops_per_second,
    data_arguments,
    generate,
    report,
    timed,
    train_log,
    training,
)

OUTPUT = Path("exps/rehearsal_cpu")


def main() -> None:
    speakers = int(sys.argv[1]) if len(sys.argv) > 1 else 5994
    print(describe())
    start = time.perf_counter()
    folders = generate(Path("exps/rehearsal_data"), speakers)
    generated = time.perf_counter() - start
    recipe = ["hparams/ecapa.yaml", f"--output_folder={OUTPUT}", *data_arguments(folders),
              *training(1), "--batch_size=32", "--num_workers=2"]
    prepare = timed([sys.executable, "recipes/prepare_data.py", *recipe])
    crops = crops_per_second(recipe)
    train = timed([sys.executable, "recipes/train_speaker_embeddings.py", *recipe,
                   "--device=cpu"])
    epoch = train_log(OUTPUT)
    verify = timed([sys.executable, "recipes/speaker_verification.py",
                    "hparams/verify_voxceleb.yaml", f"--experiment={OUTPUT}",
                    "--cohort_per_speaker=1", "--device=cpu"])
    metrics = json.loads((OUTPUT / "verification/metrics.json").read_text())
    trials = metrics["lists"]["vox1_O"]["variants"]["as-norm"]["trials"]
    report("rehearsal_cpu", {
        "machine": describe(), "vox2 speakers": speakers,
        "generation seconds": generated, "preparation seconds": prepare["seconds"],
        "preparation peak MB": prepare["peak_mb"],
        "crops per second per worker": crops,
        "training process seconds (steps, validation, export)": train["seconds"],
        "training peak MB": train["peak_mb"],
        "step seconds": epoch["train step_seconds"],
        "data wait share of a step": epoch["train data_wait"],
        "compute seconds per step": epoch["train step_seconds"] * (1 - epoch["train data_wait"]),
        "replaced examples": epoch["train replaced"],
        "validation seconds": epoch["valid seconds"],
        "verification seconds": verify["seconds"], "verification peak MB": verify["peak_mb"],
        "verification trials": trials})


if __name__ == "__main__":
    main()
