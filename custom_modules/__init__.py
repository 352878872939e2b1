"""ECAPA-TDNN speaker embeddings as a SpeechBrain extension."""

from custom_modules.ecapa import ECAPA_TDNN, count_parameters, ecapa_c512, ecapa_c1024
from custom_modules.frontend import MelFrontend
from custom_modules.interface import SpeakerEncoder

__all__ = ["ECAPA_TDNN", "MelFrontend", "SpeakerEncoder", "count_parameters", "ecapa_c512",
           "ecapa_c1024"]
