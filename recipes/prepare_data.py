"""Run the data preparation steps listed in a YAML file (VoxCeleb, a folder corpus, noise).

    python recipes/prepare_data.py hparams/prepare_voxceleb.yaml --data_folder=/data/vox1,/data/vox2

Every step is a ``!name:`` callable under ``preparation:``; each is idempotent, so running the
script again only redoes what changed. Exits with a one-line error for bad input.
"""

import json
import logging
import sys

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml


def main() -> None:
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:])
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with open(hparams_file, encoding="utf-8") as handle:
        hparams = load_hyperpyyaml(handle, overrides)
    for step in hparams["preparation"]:
        try:
            summary = step()
        except (ValueError, RuntimeError) as error:
            sys.exit(f"error: {error}")
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
