"""Fit the scoring back-end of a trained model again, with the options of its training YAML
(``backend:``), and write it into the pretrained folder; the training recipe does this as its
last step. For a model trained before back-ends existed, or to change the options:

    python recipes/export_backend.py hparams/demo_lm.yaml      # the demo's final model

Earlier calibrations of the folder are not kept (this fits a new scoring); ``python -m
custom_modules calibrate`` refits only the calibration, keeping them.
"""

import logging
import sys

from custom_modules.config import device_of, load_recipe
from custom_modules.errors import one_line_errors
from custom_modules.evaluation.backend import describe
from custom_modules.inference.pretrained import load_embedder

KEYS = ("pretrained_folder", "backend")

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with one_line_errors():
        recipe = load_recipe(sys.argv[1:], KEYS, ("device",))
        folder = recipe.hparams["pretrained_folder"]
        embedder = load_embedder(folder, device=device_of(recipe.run_opts))
        print(describe(recipe.hparams["backend"](embedder, folder)))
