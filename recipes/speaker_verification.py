"""Verify the trials of one or more lists with a trained model, with score normalisation.

    python recipes/speaker_verification.py hparams/verify.yaml --experiment=exps/voxceleb

Loads the model named in the YAML (a pretrained folder, optionally with a training checkpoint's
weights) on ``--device`` (default: CUDA when there is a GPU), runs
``custom_modules.evaluation.verification.run_verification`` (numbers: ``metrics.json`` and
``scores.txt``), draws the DET curves and score histograms, and prints a summary table.
"""

import logging
import sys

from custom_modules.analysis.plots import verification_figures
from custom_modules.errors import one_line_errors
from custom_modules.evaluation.verification import summary_table
from model_step import MODEL_KEYS, run_model_step

KEYS = (*MODEL_KEYS, "precision", "output_folder", "verification")

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with one_line_errors():
        hparams, verification = run_model_step(sys.argv[1:], KEYS, "verification",
                                               with_state=True)
        verification_figures(verification, hparams["output_folder"])
    print(f"embeddings at {verification.metrics['precision']}")
    print(summary_table(verification.metrics))
    skipped = verification.metrics["skipped_utterances"]
    if skipped:
        print(f"{len(skipped)} utterances skipped, e.g. {skipped[0]}")
    print(f"results in {hparams['output_folder']}")
