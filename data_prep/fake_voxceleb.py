"""Write a VoxCeleb-shaped tree of generated audio, for tests and benchmarks.

``<root>/wav/idNNNNN/<session>/NNNNN.wav`` (16 kHz mono 16-bit), with per-speaker spectral
colouring so that the files are not all alike. Nothing here is speech: use the demo corpus
for anything that is meant to be learned.
"""

from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from custom_modules.audio import write_wav


def write_voxceleb_tree(root: str | Path, speakers: list[str], sessions: int = 2,
                        utterances: int = 3, seconds: tuple[float, float] = (1.5, 3.0),
                        sample_rate: int = 16000, seed: int = 0) -> list[Path]:
    """Write ``len(speakers) * sessions * utterances`` files; returns their paths.

    >>> import tempfile
    >>> paths = write_voxceleb_tree(tempfile.mkdtemp(), ["id10001"], 1, 2, (0.5, 0.5))
    >>> [p.relative_to(p.parents[3]).as_posix() for p in paths]
    ['wav/id10001/sess0/00001.wav', 'wav/id10001/sess0/00002.wav']
    """
    rng = np.random.default_rng(seed)
    paths = []
    for speaker in speakers:
        colour = rng.uniform(0.2, 0.95)
        for session in range(sessions):
            for utterance in range(1, utterances + 1):
                length = int(rng.uniform(*seconds) * sample_rate)
                signal = lfilter([1.0], [1.0, -colour], rng.standard_normal(length))
                envelope = 0.5 + 0.5 * np.sin(np.linspace(0, 6 * np.pi, length)) ** 2
                waveform = 0.3 * signal * envelope / np.abs(signal).max()
                path = Path(root, "wav", speaker, f"sess{session}", f"{utterance:05d}.wav")
                write_wav(path, waveform.astype(np.float32), sample_rate)
                paths.append(path)
    return paths

