"""Verify the trials of one or more lists with a trained model, with score normalisation.

    python recipes/speaker_verification.py hparams/verify.yaml --experiment=exps/voxceleb

Loads the model named in the YAML (a pretrained folder, optionally with a training checkpoint's
weights), runs ``custom_modules.verification.run_verification`` and prints a summary table.
"""

import logging
import sys

from custom_modules.hparams import run_with_model


def summary_table(results: dict) -> str:
    """One line per trial list and score variant: EER and minDCF at 0.01 and 0.05."""
    lines = [f"{'trials':<16}{'scores':<10}{'EER %':>8}{'minDCF 0.01':>13}{'minDCF 0.05':>13}"
             f"{'count':>9}"]
    lists = {name: variants for name, variants in results.items() if name != "problems"}
    for name, variants in lists.items():
        for variant, m in variants.items():
            if "eer" in m:
                lines.append(f"{name:<16}{variant:<10}{m['eer']:>8.2f}{m['min_dcf_0.01']:>13.4f}"
                             f"{m['min_dcf_0.05']:>13.4f}{m['trials']:>9}")
            else:
                lines.append(f"{name:<16}{variant:<10}  actDCF(0.01) {m['act_dcf_0.01']:.4f}  "
                             f"Cllr {m['cllr']:.4f}")
    return "\n".join(lines)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    hparams, results = run_with_model(sys.argv[1:], "verification")
    print(summary_table(results))
    if results["problems"]:
        print(f"{len(results['problems'])} utterances skipped, e.g. {results['problems'][0]}")
    print(f"results in {hparams['output_folder']}")


if __name__ == "__main__":
    main()
