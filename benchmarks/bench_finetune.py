"""Fine-tuning measured on data the project generates (after ``make demo``):

1. Large-margin fine-tuning, the demo's second training stage (``hparams/demo_lm.yaml``): EER
   on the demo's standard and hard lists of the first stage's model (``exps/demo/base``) and
   of the final one, both scored by ``hparams/demo_verify.yaml`` (the final one by ``make
   demo`` itself), and the wall-clock the stage cost (``exps/demo/stage_times.tsv``).
2. Fine-tuning as a user would: the demo model, trained on the demo's training voices, is
   fine-tuned (``init_from``) on a folder-per-speaker corpus made of the demo's held-out
   voices, which it has never heard; against training on that corpus from scratch, both with
   ``hparams/ecapa_folder.yaml``, the same epochs and the same wall-clock budget. Both are
   scored on that corpus's own held-out speakers (``hparams/verify.yaml``), and so is the demo
   model as it is (no training on the corpus at all).

    python -m benchmarks.bench_finetune [budget_minutes] [large-margin|new-voices]
                                                  # default: 5 minutes, both parts

Results: ``exps/bench_finetune/results.json``; docs/BENCHMARKS.md quotes them.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.machine import describe
from custom_modules.evaluation.verification import summary_table
from recipes.demo_summary import read_stage_times

DEMO = Path("exps/demo")
OUTPUT = Path("exps/bench_finetune")
# The corpus of held-out voices: 40 % of its speakers held out for its trials, the rest to
# train on (a tenth of those validate).
FOLDER_RECIPE = ["hparams/ecapa_folder.yaml", "--test_speakers=0.4", "--number_of_epochs=12",
                 f"--prepared_folder={OUTPUT / 'folder_data'}"]
FINE_TUNING = [f"--init_from={DEMO / 'pretrained'}", "--pretrained_lr_scale=0.1"]


def run(command: list[str]) -> float:
    """Run a recipe; its wall-clock minutes."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *command], check=True,
                   env={**os.environ, "PYTHONPATH": os.getcwd()})
    return (time.perf_counter() - start) / 60


def metrics(verification: Path) -> dict:
    """The ``metrics.json`` a verification run wrote into its output folder."""
    return json.loads((verification / "metrics.json").read_text(encoding="utf-8"))


def eers(result: dict, variant: str) -> dict[str, float]:
    """EER per trial list for one score variant."""
    return {name: entry["variants"][variant]["eer"] for name, entry in result["lists"].items()}


def held_out_corpus(target: Path) -> int:
    """``target/<voice>/<file>.wav``: hard links to the demo's held-out voices' files; returns
    how many voices."""
    corpus = DEMO / "corpus"
    with open(corpus / "speakers.csv", newline="", encoding="utf-8") as f:
        voices = {row["ID"] for row in csv.DictReader(f) if row["split"] == "test"}
    shutil.rmtree(target, ignore_errors=True)
    with open(corpus / "utterances.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["spk_id"] in voices:
                link = target / row["spk_id"] / f"{row['ID'].replace('/', '_')}.wav"
                link.parent.mkdir(parents=True, exist_ok=True)
                os.link(row["wav"], link)
    return len(voices)


def large_margin() -> dict:
    """The first stage's model against the final one: EER before and after, and the minutes
    ``make demo`` measured for the second stage."""
    first_stage = OUTPUT / "first_stage"
    shutil.rmtree(first_stage, ignore_errors=True)
    run(["recipes/speaker_verification.py", "hparams/demo_verify.yaml", f"--experiment={DEMO}",
         f"--pretrained_path={DEMO / 'base/pretrained'}", f"--output_folder={first_stage}",
         "--model_backend=False", "--primary_variant=lda+as-norm"])
    before, after = metrics(first_stage), metrics(DEMO / "verification")
    times = read_stage_times(DEMO / "stage_times.tsv")
    if "fine-tuning" not in times:
        sys.exit(f"error: {DEMO / 'stage_times.tsv'} has no fine-tuning stage: run `make demo`")
    minutes = times["fine-tuning"] / 60
    print(f"\nfirst stage\n{summary_table(before)}\n\nafter large-margin fine-tuning "
          f"({minutes:.1f} min)\n{summary_table(after)}")
    return {"minutes": minutes, **{f"{when} {variant}": eers(result, variant)
                                   for when, result in (("before", before), ("after", after))
                                   for variant in before["variants"]}}


def new_voices(budget: float) -> dict:
    """Fine-tuning against from scratch on voices the demo model never heard."""
    corpus = OUTPUT / "held_out_voices"
    voices = held_out_corpus(corpus)
    runs = {}
    for name, extra in (("scratch", []), ("fine-tuned", FINE_TUNING)):
        folder = OUTPUT / name
        shutil.rmtree(folder, ignore_errors=True)
        minutes = run(["recipes/train_speaker_embeddings.py", *FOLDER_RECIPE,
                       f"--data_folder={corpus}", f"--output_folder={folder}",
                       f"--max_train_minutes={budget}", *extra])
        epochs = len((folder / "train_log.txt").read_text(encoding="utf-8").splitlines())
        runs[name] = {"minutes": minutes, "epochs": epochs}
    runs["demo model as is"] = {"minutes": 0.0, "epochs": 0}
    for name, run_ in runs.items():
        folder = OUTPUT / name.replace(" ", "_")
        shutil.rmtree(folder / "verification", ignore_errors=True)
        pretrained = DEMO / "pretrained" if name == "demo model as is" else folder / "pretrained"
        run(["recipes/speaker_verification.py", "hparams/verify.yaml",
             f"--experiment={folder}", f"--pretrained_path={pretrained}",
             f"--data_folder={OUTPUT / 'folder_data'}"])
        result = metrics(folder / "verification")
        run_["eer"] = {variant: eers(result, variant)["test"] for variant in result["variants"]}
        print(f"\n{name}: {run_['epochs']} epochs in {run_['minutes']:.1f} min (budget "
              f"{budget:g})\n{summary_table(result)}")
    return {"voices": voices, "budget minutes": budget, **runs}


def main() -> None:
    budget = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    parts = sys.argv[2:] or ["large-margin", "new-voices"]
    if not (DEMO / "pretrained/embedding_model.ckpt").is_file():
        sys.exit(f"error: {DEMO / 'pretrained'} not found: run `make demo` first")
    if not set(parts) <= {"large-margin", "new-voices"}:
        sys.exit(f"error: parts are large-margin and new-voices, not {parts}")
    print(describe())
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results["machine"] = describe()
    if "large-margin" in parts:
        results["large-margin"] = large_margin()
    if "new-voices" in parts:
        results["new voices"] = new_voices(budget)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"results in {path}")


if __name__ == "__main__":
    main()
