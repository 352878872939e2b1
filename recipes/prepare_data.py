"""Run the data preparation steps listed in a YAML file (VoxCeleb, a folder corpus, noise).

    python recipes/prepare_data.py hparams/prepare_voxceleb.yaml --data_folder=/data/vox1,/data/vox2

Every step is a ``!name:`` callable under ``preparation:``; each is idempotent, so running the
script again only redoes what changed. Exits with a one-line error for bad input.
"""

import json
import logging
import sys

from custom_modules.hparams import load_hparams


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    hparams, _ = load_hparams(sys.argv[1:])
    for step in hparams["preparation"]:
        try:
            summary = step()
        except (ValueError, RuntimeError) as error:
            sys.exit(f"error: {error}")
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
