"""The recipe side of inference: the model a verification or visualisation recipe names,
built on the device the command line asks for. Only the recipes import this (it loads
SpeechBrain's argument parsing through ``custom_modules.config``); the interface does not."""

import logging

from custom_modules.config import device_of, load_recipe
from custom_modules.inference.precision import with_precision
from custom_modules.inference.pretrained import load_embedder

logger = logging.getLogger(__name__)

MODEL_KEYS = ("pretrained_path", "checkpoint_path")


def run_model_step(argv: list[str], keys: tuple[str, ...], step: str) -> tuple[dict, object]:
    """A recipe that runs one step on a model (verification, visualisation): load the YAML
    (``keys``: the top-level keys the recipe reads, ``MODEL_KEYS`` among them; ``--device``
    is its one run option), build the model it names (``pretrained_path``, with the weights of
    ``checkpoint_path`` when not null) on that device, at ``precision`` when the recipe reads
    that key (``inference.precision``), and call ``hparams[step](embedder)``; returns the
    hparams and the step's result."""
    recipe = load_recipe(argv, keys, ("device",))
    hparams = recipe.hparams
    embedder = load_embedder(hparams["pretrained_path"], hparams["checkpoint_path"],
                             device_of(recipe.run_opts))
    if "precision" in keys:
        embedder = with_precision(embedder, hparams["precision"], hparams["pretrained_path"])
        logger.info("precision: %s (asked: %s)", embedder.precision, hparams["precision"])
    return hparams, hparams[step](embedder)
