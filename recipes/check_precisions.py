"""Check every inference precision of a trained model on its trial lists (accuracy against
fp32 with the model's own scoring, and speed), and write the result as a precisions sidecar
(``custom_modules.sidecars``) that ``precision: auto`` reads when it is chosen:

    python recipes/check_precisions.py hparams/precisions.yaml --experiment=exps/demo

Runs ``custom_modules.evaluation.precision_check.check_precisions`` and prints one line per
precision.
"""

import logging
import sys

from custom_modules.errors import one_line_errors
from custom_modules.evaluation.precision_check import check_lines
from model_step import MODEL_KEYS, run_model_step

KEYS = (*MODEL_KEYS, "sidecar", "check")

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with one_line_errors():
        hparams, checks = run_model_step(sys.argv[1:], KEYS, "check", with_state=True,
                                         writes="precisions")
    print("\n".join(check_lines(checks)))
    print(f"precisions sidecar: {hparams['sidecar']}")
