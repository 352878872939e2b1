"""Train ECAPA-TDNN speaker embeddings (SpeechBrain Brain, configured by HyperPyYAML).

    python recipes/train_speaker_embeddings.py hparams/ecapa.yaml --data_folder=...
    torchrun --nproc_per_node=2 recipes/train_speaker_embeddings.py hparams/ecapa.yaml ...

Prepares the data (on the main process), trains with checkpoints kept by validation EER and
intra-epoch checkpoints (``--ckpt_interval_minutes``), and exports the best checkpoint to the
pretrained folder. The steps are ``custom_modules.training.recipe.train``.
"""

import sys

from custom_modules.config import load_recipe
from custom_modules.errors import one_line_errors
from custom_modules.training.recipe import KEYS, RUN_OPTIONS, train

if __name__ == "__main__":
    with one_line_errors():
        train(load_recipe(sys.argv[1:], KEYS, RUN_OPTIONS))
