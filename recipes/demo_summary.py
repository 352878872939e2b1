"""Print the demo's summary (the last step of ``make demo``).

    python recipes/demo_summary.py hparams/demo.yaml --output_folder=exps/demo

Reads what the earlier steps wrote under the output folder; see
``custom_modules.demo_report``.
"""

import sys

from custom_modules.demo_report import demo_summary
from custom_modules.hparams import load_hparams


def main() -> None:
    hparams, _ = load_hparams(sys.argv[1:])
    try:
        print(demo_summary(hparams["output_folder"], hparams["corpus_folder"]))
    except ValueError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
