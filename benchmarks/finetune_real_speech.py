"""Fine-tuning SpeechBrain's VoxCeleb model on real speakers, measured against the model as it
is and against training from scratch in the same time:

    python -m benchmarks.finetune_real_speech [--corpus exps/real_speech/queen] \
        [--test-speakers 8] [--budget 10] [--parts finetuned scratch imported] [--verify-only]

Systems, all on one split of a folder-per-speaker corpus (``--corpus``: by default Flight of
the Amazon Queen's characters, built by ``hparams/real_speech.yaml``; ``--test-speakers`` of
them held out, the others its development side, a quarter of those for validation):

- ``imported``: ``exps/spkrec-ecapa-voxceleb/pretrained`` as it is;
- ``finetuned``: ``hparams/finetune_folder.yaml`` from it on the development speakers (lower
  blocks frozen, bf16 where the CPU has it, L2-SP, ``--budget`` minutes of training);
- ``finetuned_free``: the same without L2-SP (``--anchor_weight=0``);
- ``finetuned_whole``: ``hparams/finetune_folder_gpu.yaml`` (nothing frozen) at the CPU
  recipe's batch, crops and budget: the whole model adapting;
- ``scratch``: ``hparams/ecapa_folder.yaml`` (C=256, the CPU recipe) from random weights on
  the same speakers with the same budget.

Each is scored by the verification recipe, with one back-end procedure for all: cosine, and
AS-norm against the development utterances of the domain scored, calibrated on its
development trials. Domains: the corpus's held-out speakers, and the council's test members
(the other domain: does adapting to one cost the others?). Wall-clock of every step. Results:
``exps/finetune_real_speech/results.json``, and a Markdown table for docs/BENCHMARKS.md.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.machine import describe
from custom_modules.inference.precision import supported

OUTPUT = Path("exps/finetune_real_speech")
DATA = OUTPUT / "data"          # the split every system trains on and is scored on
IMPORTED = Path("exps/spkrec-ecapa-voxceleb/pretrained")
COUNCIL = Path("exps/real_speech/sets")
RECIPE = "recipes/train_speaker_embeddings.py"
VERIFY = "recipes/speaker_verification.py"
# The fine-tuning YAML's precision: auto, for the recipe that says fp32 (a command line can
# only name bf16 or fp32: --precision is SpeechBrain's run option).
AUTO = "bf16" if supported("bf16", "cpu") else "fp32"
# The one back-end procedure: AS-norm against the domain's development utterances, calibrated
# on its development trials, the files' speech only (as SpeakerEncoder embeds them).
SCORING = ["--cohort=utterances", "--primary_variant=as-norm", "--speech_detection=True",
           "--skip_missing=True"]


def timed(command: list[str], log: Path) -> float:
    """Run ``command`` (its output to ``log``); its wall-clock seconds, or exit on failure."""
    started = time.perf_counter()
    with open(log, "w") as sink:
        done = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed: see {log}")
    return time.perf_counter() - started


def train(system: str, corpus: Path, test_speakers: int, budget: float) -> float:
    """Fine-tune or train from scratch; the whole recipe's wall-clock (preparation, training,
    export with its back-end and precision check)."""
    split = [f"--data_folder={corpus}", f"--test_speakers={test_speakers}",
             "--split_ratio=[75, 25]", f"--max_train_minutes={budget}",
             f"--output_folder={OUTPUT / system}", f"--prepared_folder={DATA}"]
    recipe = {"finetuned": ["hparams/finetune_folder.yaml", f"--init_from={IMPORTED}"],
              "finetuned_free": ["hparams/finetune_folder.yaml", f"--init_from={IMPORTED}",
                                 "--anchor_weight=0"],
              "finetuned_whole": ["hparams/finetune_folder_gpu.yaml", f"--init_from={IMPORTED}",
                                  "--batch_size=16", "--crop_seconds=2.0", "--num_workers=2",
                                  "--valid_utterances=400"],
              "scratch": ["hparams/ecapa_folder.yaml", "--number_of_epochs=100",
                          f"--precision={AUTO}"]}[system]
    return timed([sys.executable, RECIPE, recipe[0], *split, *recipe[1:]],
                 OUTPUT / f"{system}.log")


def verify(system: str, model: Path) -> dict:
    """EER, minDCF and Cllr of ``model`` on the corpus's held-out speakers and the council's
    test members, with the seconds each took."""
    data = DATA
    domains = {
        "corpus": ["hparams/verify.yaml", f"--data_folder={data}",
                   f"--calibration_trials={data}/valid_trials.txt",
                   f"--calibration_csv={data}/valid.csv"],
        "council": ["hparams/verify_real_speech.yaml", f"--sets_folder={COUNCIL}",
                    "--model_backend=False", "--sidecars=[]",
                    f"--calibration_trials={COUNCIL}/development/valid_trials.txt",
                    f"--calibration_csv={COUNCIL}/development/valid.csv"]}
    results = {}
    for domain, (yaml, *options) in domains.items():
        folder = OUTPUT / system / "verification" / domain
        seconds = timed([sys.executable, VERIFY, yaml, f"--experiment={OUTPUT / system}",
                         f"--pretrained_path={model}", f"--output_folder={folder}",
                         *options, *SCORING], OUTPUT / f"{system}_{domain}.log")
        metrics = json.loads((folder / "metrics.json").read_text())
        results[domain] = {"seconds": seconds, "lists": {
            name: {"eer_cosine": entry["variants"]["cosine"]["eer"],
                   "eer": entry["variants"]["as-norm"]["eer"],
                   "min_dcf_0.01": entry["variants"]["as-norm"]["min_dcf_0.01"],
                   "trials": entry["variants"]["as-norm"]["trials"],
                   "cllr": (entry["calibrated"] or {}).get("cllr")}
            for name, entry in metrics["lists"].items()}}
    return results


def table(results: dict) -> str:
    """The Markdown table of docs/BENCHMARKS.md."""
    rows = ["| system | training wall-clock | corpus EER % (cosine / AS-norm) | minDCF(0.01) "
            "| Cllr | council EER % (cosine / AS-norm) | minDCF(0.01) |", "|---" * 7 + "|"]
    for system, entry in results.items():
        if "verification" not in entry:
            continue
        corpus = entry["verification"]["corpus"]["lists"]["test"]
        council = entry["verification"]["council"]["lists"]["standard"]
        trained = entry.get("training_seconds")
        rows.append(f"| {system} | {'-' if trained is None else f'{trained / 60:.1f} min'} | "
                    f"{corpus['eer_cosine']:.2f} / {corpus['eer']:.2f} | "
                    f"{corpus['min_dcf_0.01']:.3f} | {corpus['cllr'] or float('nan'):.3f} | "
                    f"{council['eer_cosine']:.2f} / {council['eer']:.2f} | "
                    f"{council['min_dcf_0.01']:.3f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("exps/real_speech/queen"))
    parser.add_argument("--test-speakers", type=int, default=8)
    parser.add_argument("--budget", type=float, default=10.0, help="training minutes")
    systems = ["finetuned", "finetuned_free", "finetuned_whole", "scratch", "imported"]
    parser.add_argument("--parts", nargs="+", default=systems, choices=systems)
    parser.add_argument("--verify-only", action="store_true",
                        help="score the models trained by an earlier run again")
    args = parser.parse_args()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    print(describe())
    saved = OUTPUT / "results.json"
    results = json.loads(saved.read_text()) if saved.is_file() else {}
    for system in args.parts:       # the first that trains prepares the split
        entry = results.setdefault(system, {})
        model = IMPORTED
        if system != "imported":
            if not args.verify_only:
                entry["training_seconds"] = train(system, args.corpus, args.test_speakers,
                                                  args.budget)
                saved.write_text(json.dumps(results, indent=2) + "\n")
            model = OUTPUT / system / "pretrained"
        entry["verification"] = verify(system, model)
        saved.write_text(json.dumps(results, indent=2) + "\n")
        print(f"{system} done")
    print(table(results))


if __name__ == "__main__":
    main()
