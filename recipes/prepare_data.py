"""Run the data preparation steps listed in a YAML file (VoxCeleb, a folder corpus, noise).

    python recipes/prepare_data.py hparams/prepare_voxceleb.yaml --data_folder=/data/vox1,/data/vox2

Every step is a ``!name:`` callable under ``preparation:``; each is idempotent, so running the
script again only redoes what changed. Exits with a one-line error for bad input.
"""

import json
import logging
import sys

from custom_modules.config import load_recipe
from custom_modules.errors import one_line_errors

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with one_line_errors():
        for step in load_recipe(sys.argv[1:], ["preparation"]).hparams["preparation"]:
            print(json.dumps(step(), indent=2))
