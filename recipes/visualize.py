"""Pictures of what a trained model learned: embedding maps of held-out speakers and the
attention of one utterance.

    python recipes/visualize.py hparams/visualize.yaml --experiment=exps/demo

Loads the model named in the YAML on ``--device``, runs
``custom_modules.analysis.visualization.run_visualization`` and prints its numbers (silhouette
score, attention on inserted silence).
"""

import logging
import sys

from custom_modules.errors import one_line_errors
from model_step import MODEL_KEYS, run_model_step

KEYS = (*MODEL_KEYS, "output_folder", "visualization")

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with one_line_errors():
        hparams, results = run_model_step(sys.argv[1:], KEYS, "visualization",
                                          with_state=False)
    attention = results["attention"]
    print(f"{results['speakers']} held-out speakers, {results['utterances']} utterances: "
          f"silhouette (cosine) {results['silhouette_cosine']:.3f}")
    print(f"attention on {attention['silence_seconds']:g} s of inserted silence in "
          f"{attention['utterance']}: {100 * attention['attention_share']:.1f} % of the mass on "
          f"{100 * attention['time_share']:.1f} % of the time (ratio {attention['ratio']:.2f}; "
          f"below 1: the model looks away from silence)")
    print(f"plots in {hparams['output_folder']}")
