"""What the recipes that run one step on a trained model share (verification, visualisation,
identification, diarization, back-end export, precision check): the model the YAML names,
built on the device the command line asks for, with the sidecars the YAML chooses, and the
sidecar a tuning step writes. Orchestration, so it sits with the recipes (which run with this
folder on ``sys.path``), not in the library: ``custom_modules.inference`` knows nothing of
recipe YAML or SpeechBrain's argument parsing."""

import logging
import sys
from pathlib import Path

from custom_modules.config import device_of, load_recipe
from custom_modules.inference.precision import with_precision
from custom_modules.inference.pretrained import load_embedder
from custom_modules.sidecars import model_state, new_sidecar

logger = logging.getLogger(__name__)

MODEL_KEYS = ("pretrained_path", "checkpoint_path", "sidecars")


def run_model_step(argv: list[str], keys: tuple[str, ...], step: str, with_state: bool,
                   writes: str | None = None) -> tuple[dict, object]:
    """A recipe that runs one step on a model (verification, visualisation): load the YAML
    (``keys``: the top-level keys the recipe reads, ``MODEL_KEYS`` among them; ``--device``
    is its one run option), build the model it names (``pretrained_path``, with the weights of
    ``checkpoint_path`` when not null) on that device, at ``precision`` when the recipe reads
    that key (``inference.precision``), and call ``hparams[step](embedder)``, with
    ``with_state`` also the model's ``sidecars.ModelState`` (the YAML's ``sidecars``, else the
    folder). A step that tunes state of the kind ``writes`` gets a third argument, the
    folder to write it into, which becomes the next version of the sidecar named by the
    YAML's ``sidecar`` (the model folder is never written). Returns the hparams and the
    step's result."""
    recipe = load_recipe(argv, keys, ("device",))
    hparams = recipe.hparams
    embedder = load_embedder(hparams["pretrained_path"], hparams["checkpoint_path"],
                             device_of(recipe.run_opts))
    state = model_state(hparams["pretrained_path"], hparams["sidecars"], embedder.fingerprint())
    if "precision" in keys:
        embedder = with_precision(embedder, hparams["precision"], state.precisions)
        logger.info("precision: %s (asked: %s)", embedder.precision, hparams["precision"])
    arguments = (embedder, state) if with_state else (embedder,)
    if writes is None:
        return hparams, hparams[step](*arguments)
    command = " ".join([Path(sys.argv[0]).name, *argv])
    with new_sidecar(hparams["sidecar"], writes, embedder.fingerprint(), command) as folder:
        result = hparams[step](*arguments, folder)
    logger.info("%s sidecar written: %s", writes, hparams["sidecar"])
    return hparams, result
