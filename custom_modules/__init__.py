"""ECAPA-TDNN speaker embeddings as a SpeechBrain extension."""

from custom_modules.ecapa import ECAPA_TDNN, count_parameters, ecapa_c512, ecapa_c1024

__all__ = ["ECAPA_TDNN", "count_parameters", "ecapa_c512", "ecapa_c1024"]
