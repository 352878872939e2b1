"""Verify the trials of one or more lists with a trained model, with score normalisation.

    python recipes/speaker_verification.py hparams/verify.yaml --experiment=exps/voxceleb

Loads the model named in the YAML (a pretrained folder, optionally with a training checkpoint's
weights), runs ``custom_modules.verification.run_verification`` and prints a summary table.
"""

import logging
import sys

from custom_modules.hparams import run_with_model
from custom_modules.verification import summary_table


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    hparams, results = run_with_model(sys.argv[1:], "verification")
    print(summary_table(results))
    if results["problems"]:
        print(f"{len(results['problems'])} utterances skipped, e.g. {results['problems'][0]}")
    print(f"results in {hparams['output_folder']}")


if __name__ == "__main__":
    main()
