"""ECAPA-TDNN speaker embeddings as a SpeechBrain extension.

Roles, one folder each, imports running downwards only (``docs/ARCHITECTURE.md``):
``errors`` and ``audio`` (the bottom), ``models``, ``data``, ``inference``, ``evaluation``,
``training``, ``analysis``, ``interop``, ``interface``; ``config`` loads recipe YAML files.

>>> from custom_modules import ECAPA_TDNN, MelFrontend, SpeakerEncoder
"""

from custom_modules.models.ecapa import ECAPA_TDNN, count_parameters, ecapa_c512, ecapa_c1024
from custom_modules.models.frontend import MelFrontend

__all__ = ["ECAPA_TDNN", "MelFrontend", "SpeakerEncoder", "count_parameters", "ecapa_c512",
           "ecapa_c1024"]


def __getattr__(name: str):
    """``SpeakerEncoder`` is imported on first use, so that importing a low layer (the model,
    the metrics) does not load the whole interface."""
    if name == "SpeakerEncoder":
        from custom_modules.interface.encoder import SpeakerEncoder
        return SpeakerEncoder
    raise AttributeError(f"module 'custom_modules' has no attribute {name!r}")
