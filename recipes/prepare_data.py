"""Run the data preparation steps of a training YAML alone (VoxCeleb, a folder corpus, noise).

    python recipes/prepare_data.py hparams/ecapa.yaml --data_folder=/data/vox1,/data/vox2

Every step is a ``!name:`` callable under ``preparation:``; each is idempotent, so running the
script again only redoes what changed, and the training recipe with the same YAML and options
then finds the data prepared. Exits with a one-line error for bad input.
"""

import json
import logging
import sys

from custom_modules.config import load_recipe
from custom_modules.errors import one_line_errors

KEYS = ("preparation",)

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with one_line_errors():
        for step in load_recipe(sys.argv[1:], KEYS).hparams["preparation"]:
            print(json.dumps(step(), indent=2, default=str))
