"""Speech detection before embedding, and the quality of what is left.

``SpeechDetector`` keeps the speech of a waveform and drops the rest (silence, music, noise),
with Silero VAD: the ``silero-vad`` package ships its model inside the wheel, so nothing is
downloaded at run time. What it keeps is the segments the detector marks as speech
(probability above ``threshold``, at least 250 ms, padded by 30 ms), joined end to end.

Quality gates, on each recording (``check``): clipping (more than ``CLIPPED_SHARE`` of the
samples at full scale) and a very low level (speech RMS under ``LOW_DBFS``) are warnings
naming the file; too little speech (under ``min_speech_seconds``, default
``MIN_SPEECH_SECONDS``) is the caller's error to raise, with the seconds found.

>>> import torch
>>> detector = SpeechDetector()
>>> speech, seconds = detector(torch.zeros(16000), "silence.wav")
>>> speech.numel(), seconds
(0, 0.0)
"""

import logging
import math
import warnings

import torch

logger = logging.getLogger(__name__)
SAMPLE_RATE = 16000          # the detector's rate (the model's too)
MIN_SPEECH_SECONDS = 1.0     # less speech than this gives an unreliable embedding
CLIPPED_SHARE = 0.001        # share of samples at full scale above which a file is clipped
LOW_DBFS = -45.0             # speech RMS below this is very quiet (dB full scale)


class SpeechDetector:
    """Keep the speech of 16 kHz mono waveforms.

    Arguments
    ---------
    threshold : float
        Speech probability above which a 32 ms frame is speech (Silero's default 0.5).
    min_speech_seconds : float
        What ``enough`` asks for.
    """

    def __init__(self, threshold: float = 0.5,
                 min_speech_seconds: float = MIN_SPEECH_SECONDS):
        from silero_vad import get_speech_timestamps, load_silero_vad

        with warnings.catch_warnings():      # its loader's "torch.jit.load is deprecated"
            warnings.simplefilter("ignore", FutureWarning)
            self.model = load_silero_vad()
        self._timestamps = get_speech_timestamps
        self.threshold = threshold
        self.min_speech_seconds = min_speech_seconds

    def segments(self, wave: torch.Tensor, threshold: float | None = None
                 ) -> list[tuple[int, int]]:
        """``(start, stop)`` sample ranges of speech in ``wave`` ``(samples,)``, at
        ``threshold`` (default: the detector's)."""
        with torch.inference_mode():
            found = self._timestamps(wave.float(), self.model,
                                     threshold=self.threshold if threshold is None
                                     else threshold, sampling_rate=SAMPLE_RATE)
        return [(int(s["start"]), int(s["end"])) for s in found]

    def __call__(self, wave: torch.Tensor, name: str) -> tuple[torch.Tensor, float]:
        """The speech of ``wave`` ``(samples,)`` joined end to end, and its seconds; the
        quality warnings are logged with ``name``."""
        segments = self.segments(wave)
        speech = torch.cat([wave[a:b] for a, b in segments]) if segments else wave[:0]
        check(wave, speech, name)
        return speech, speech.numel() / SAMPLE_RATE

    def enough(self, seconds: float) -> bool:
        return seconds >= self.min_speech_seconds


def speech_detector(enabled: bool) -> SpeechDetector | None:
    """A detector when ``enabled`` (what a back-end fitted on speech only embeds), else
    ``None`` (whole files)."""
    return SpeechDetector() if enabled else None


def check(wave: torch.Tensor, speech: torch.Tensor, name: str) -> list[str]:
    """Warnings about a recording: clipped, or speech at a very low level; logged and
    returned."""
    problems = []
    clipped = float((wave.abs() >= 0.999).float().mean()) if wave.numel() else 0.0
    if clipped > CLIPPED_SHARE:
        problems.append(f"{name}: clipped ({100 * clipped:.2f} % of the samples at full "
                        f"scale): the embedding may suffer")
    if speech.numel():
        level = 10 * math.log10(max(float(speech.pow(2).mean()), 1e-20))
        if level < LOW_DBFS:
            problems.append(f"{name}: very low level (speech at {level:.1f} dBFS, under "
                            f"{LOW_DBFS:.0f}): the embedding may suffer")
    for problem in problems:
        logger.warning(problem)
    return problems
