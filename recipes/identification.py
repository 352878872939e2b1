"""Speaker identification on held-out speakers, closed and open set, scored as
``SpeakerEncoder.identify`` scores (the model's back-end and operating points).

    python recipes/identification.py hparams/identify.yaml --experiment=exps/demo

Loads the model named in the YAML on ``--device``, runs
``custom_modules.evaluation.identification.run_identification`` (``report.json``), draws
``identification.png`` and prints the report.
"""

import logging
import sys
from pathlib import Path

from custom_modules.analysis.plots import plot_identification
from custom_modules.errors import one_line_errors
from custom_modules.evaluation.identification import report_lines
from model_step import MODEL_KEYS, run_model_step

KEYS = (*MODEL_KEYS, "precision", "output_folder", "identification")

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with one_line_errors():
        hparams, identification = run_model_step(sys.argv[1:], KEYS, "identification",
                                                 with_state=True)
        plot_identification(identification, Path(hparams["output_folder"],
                                                  "identification.png"))
    print("\n".join(report_lines(identification.report)))
    print(f"results in {hparams['output_folder']}")
