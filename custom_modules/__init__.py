"""ECAPA-TDNN speaker embeddings as a SpeechBrain extension.

Roles, one folder each, imports running downwards only (``docs/ARCHITECTURE.md``):
``errors`` and ``audio`` (the bottom), ``models``, ``data``, ``inference``, ``evaluation``,
``diarization``, ``training``, ``analysis``, ``interop``, ``interface``; ``config`` loads
recipe YAML files.

>>> from custom_modules import ECAPA_TDNN, MelFrontend, SpeakerEncoder
"""

import logging

# SpeechBrain messages a user cannot act on, by logger: on import, that it cannot save figures
# without torchvision (nothing here saves figures through SpeechBrain; ``analysis.plots`` draws
# with matplotlib) and which of its quirks it applied; and the label encoder's "Load called,
# but CategoricalEncoder is not empty", which its own load_or_create always causes.
UNACTIONABLE = {"speechbrain.utils.train_logger": "torchvision is not available",
                "speechbrain.utils.quirks": "quirks",
                "speechbrain.dataio.encoder": "Load called, but CategoricalEncoder is not empty"}


def _actionable(record: logging.LogRecord) -> bool:
    """Whether a record is not one of ``UNACTIONABLE``."""
    return UNACTIONABLE.get(record.name, "\0") not in record.getMessage()


for _name in UNACTIONABLE:
    logging.getLogger(_name).addFilter(_actionable)

from custom_modules.models.ecapa import (  # noqa: E402 (after the filter)
    ECAPA_TDNN,
    count_parameters,
    ecapa_c512,
    ecapa_c1024,
)
from custom_modules.models.frontend import MelFrontend  # noqa: E402

__all__ = ["ECAPA_TDNN", "MelFrontend", "SpeakerEncoder", "count_parameters", "ecapa_c512",
           "ecapa_c1024"]


def __getattr__(name: str):
    """``SpeakerEncoder`` is imported on first use, so that importing a low layer (the model,
    the metrics) does not load the whole interface."""
    if name == "SpeakerEncoder":
        from custom_modules.interface.encoder import SpeakerEncoder
        return SpeakerEncoder
    raise AttributeError(f"module 'custom_modules' has no attribute {name!r}")
