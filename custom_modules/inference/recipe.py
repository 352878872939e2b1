"""The recipe side of inference: the model a verification or visualisation recipe names,
built on the device the command line asks for. Only the recipes import this (it loads
SpeechBrain's argument parsing through ``custom_modules.config``); the interface does not."""

from custom_modules.config import device_of, load_recipe
from custom_modules.inference.pretrained import load_embedder

MODEL_KEYS = ("pretrained_path", "checkpoint_path")


def run_model_step(argv: list[str], keys: tuple[str, ...], step: str) -> tuple[dict, object]:
    """A recipe that runs one step on a model (verification, visualisation): load the YAML
    (``keys``: the top-level keys the recipe reads, ``MODEL_KEYS`` among them; ``--device``
    is its one run option), build the model it names (``pretrained_path``, with the weights of
    ``checkpoint_path`` when not null) on that device, and call ``hparams[step](embedder)``;
    returns the hparams and the step's result."""
    recipe = load_recipe(argv, keys, ("device",))
    hparams = recipe.hparams
    embedder = load_embedder(hparams["pretrained_path"], hparams["checkpoint_path"],
                             device_of(recipe.run_opts))
    return hparams, hparams[step](embedder)
