"""Fit a scoring back-end for a model (another domain's development speakers, other options)
and write it as a back-end sidecar (``custom_modules.sidecars``): the model folder keeps the
back-end its export fitted.

    python recipes/export_backend.py hparams/real_speech_backend.yaml   # the imported model

Load the model with it: ``SpeakerEncoder.from_hparams(folder, sidecars=[<sidecar>])``, or
``--sidecar`` on the command line.
"""

import logging
import sys

from custom_modules.errors import one_line_errors
from custom_modules.scoring.backend import describe
from model_step import MODEL_KEYS, run_model_step

KEYS = (*MODEL_KEYS, "sidecar", "backend")

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with one_line_errors():
        hparams, backend = run_model_step(sys.argv[1:], KEYS, "backend", with_state=True,
                                          writes="backend")
    print(describe(backend))
    print(f"back-end sidecar: {hparams['sidecar']}")
