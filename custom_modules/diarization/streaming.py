"""Diarization of recordings of any length in bounded memory: the file is decoded, its speech
found and its windows embedded one block at a time (``audio.read_blocks``), so what is kept
is the windows' embeddings (192 floats for each 0.75 s of speech), never the waveform; the
clustering then works on a bounded number of them (``pipeline.MAX_CLUSTERED``).

A speech region that crosses a block boundary is cut there (two regions, each with its own
windows): with blocks of minutes this touches a few windows an hour.
"""

import os

import numpy as np
import torch

from custom_modules.audio import read_blocks
from custom_modules.diarization.pipeline import (
    Analysis,
    DiarizationOptions,
    analyse,
    speech_regions,
)
from custom_modules.inference.speech import SpeechDetector
from custom_modules.models.embedder import Embedder

BLOCK_SECONDS = 300.0   # audio decoded at a time: 19 MB at 16 kHz


def analyse_file(embedder: Embedder, path: str | os.PathLike, detector: SpeechDetector,
                 options: DiarizationOptions, block_seconds: float = BLOCK_SECONDS
                 ) -> Analysis:
    """``pipeline.analyse`` of the speech of the recording at ``path``, block by block;
    regions and windows in seconds from the recording's start."""
    rate = embedder.sample_rate
    regions, windows, vectors, end = [], [], [], 0.0
    for start, block in read_blocks(path, rate, block_seconds):
        part = analyse(embedder, block, speech_regions(block, detector, options, rate),
                       options)
        regions.append(part.regions + start)
        windows.append(part.windows + start)
        vectors.append(part.vectors)
        end = start + len(block) / rate
    return Analysis(end, np.concatenate(regions).reshape(-1, 2),
                    np.concatenate(windows).reshape(-1, 2), torch.cat(vectors))
