"""Speaker diarization of a recording set with references: tune on its dev part, score its
test part (three ways), write hypotheses, the report and a timeline figure.

    python recipes/diarize.py hparams/demo_diarize.yaml --experiment=exps/demo

Runs the YAML's ``preparation`` steps (the demo generates its conversations), loads the model
on ``--device`` at ``precision``, runs ``custom_modules.diarization.evaluation.run_diarization``
(the tuned settings become the next version of the diarization sidecar ``sidecar``) and draws
``timeline.png``.
"""

import logging
import sys
from pathlib import Path

from custom_modules.analysis.plots import plot_timeline
from custom_modules.diarization.evaluation import report_lines
from custom_modules.errors import one_line_errors
from model_step import MODEL_KEYS, run_model_step

KEYS = (*MODEL_KEYS, "sidecar", "precision", "output_folder", "diarization")

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with one_line_errors():
        hparams, (report, timeline) = run_model_step(sys.argv[1:], KEYS, "diarization",
                                                     with_state=False, writes="diarization")
        plot_timeline(timeline.reference, timeline.hypothesis,
                      Path(hparams["output_folder"], "timeline.png"), timeline.recording)
    print("\n".join(report_lines(report)))
    print(f"results in {hparams['output_folder']}")
