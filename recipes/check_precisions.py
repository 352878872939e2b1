"""Check every inference precision of a trained model on its trial lists (accuracy against
fp32 with the model's own scoring, and speed), and record it in the model folder for
``precision: auto``:

    python recipes/check_precisions.py hparams/precisions.yaml --experiment=exps/demo

Runs ``custom_modules.evaluation.precision_check.check_precisions`` (``precisions.json``)
and prints one line per precision.
"""

import logging
import sys

from custom_modules.errors import one_line_errors
from custom_modules.evaluation.precision_check import check_lines
from custom_modules.inference.recipe import MODEL_KEYS, run_model_step

KEYS = (*MODEL_KEYS, "check")

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with one_line_errors():
        _, checks = run_model_step(sys.argv[1:], KEYS, "check")
    print("\n".join(check_lines(checks)))
