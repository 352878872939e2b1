"""CPU rehearsal of the VoxCeleb recipe at VoxCeleb's shape (``benchmarks/rehearsal.py``):
preparation, a few hundred training steps with all augmentation, bounded validation, export,
and verification on a 10,000-trial list, with a small model.

    python -m benchmarks.rehearse_voxceleb [speakers]     # default 5994, VoxCeleb2 dev's
    python -m benchmarks.rehearse_voxceleb --small        # a tiny shape: what make test runs

Reports the preparation's time, the crops per second one DataLoader worker makes, the step
time split into data wait and compute, the validation's time and each stage's peak memory;
``exps/rehearsal_cpu/report.json`` keeps them (``--root`` moves ``exps``; docs/BENCHMARKS.md
quotes them).
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from benchmarks.machine import describe
from benchmarks.rehearsal import (
    TINY,
    Shape,
    crops_per_second,
    data_arguments,
    generate,
    report,
    timed,
    train_log,
    training,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("speakers", type=int, nargs="?", default=5994)
    parser.add_argument("--small", action="store_true", help="a tiny tree and model")
    parser.add_argument("--root", type=Path, default=Path("exps"),
                        help="where the tree, the run and the report go")
    args = parser.parse_args()
    shape = TINY if args.small else Shape(
        speakers=args.speakers, test_speakers=40, corpus_scale=1.0,
        channels=[64, 64, 64, 64, 192], lin_neurons=64, batch_size=32, num_workers=2, epochs=1,
        valid_utterances=400)
    name = "rehearsal_cpu_small" if args.small else "rehearsal_cpu"
    output = args.root / name
    shutil.rmtree(output, ignore_errors=True)      # a fresh run, not a resumed one
    print(describe())
    start = time.perf_counter()
    folders = generate(args.root / f"{name}_data", shape.speakers, shape.test_speakers,
                       shape.corpus_scale)
    generated = time.perf_counter() - start
    recipe = ["hparams/ecapa.yaml", f"--output_folder={output}",
              *data_arguments(folders, output / "data"), *training(shape)]
    prepare = timed([sys.executable, "recipes/prepare_data.py", *recipe])
    crops = crops_per_second(recipe, seconds=2.0 if args.small else 20.0)
    train = timed([sys.executable, "recipes/train_speaker_embeddings.py", *recipe,
                   "--device=cpu"])
    epoch = train_log(output)
    verify = timed([sys.executable, "recipes/speaker_verification.py",
                    "hparams/verify_voxceleb.yaml", f"--experiment={output}",
                    "--cohort_per_speaker=1", "--device=cpu"])
    metrics = json.loads((output / "verification/metrics.json").read_text())
    trials = metrics["lists"]["vox1_O"]["variants"]["as-norm"]["trials"]
    report(output, {
        "machine": describe(), "vox2 speakers": shape.speakers,
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
