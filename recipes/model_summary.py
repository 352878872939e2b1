"""Print what the model and frontend are: shapes, parameter counts, and speed on this machine.

Run from the repository root: ``python recipes/model_summary.py``. It builds the paper's C=512
and C=1024 ECAPA-TDNN with our log-mel frontend, embeds a batch of 3 s waveforms, and prints
parameter counts per block and the real-time factor (seconds of compute per second of audio).
"""

import time

import torch

from custom_modules import MelFrontend, ecapa_c512, ecapa_c1024
from custom_modules.models.ecapa import parameter_summary


def main() -> None:
    torch.manual_seed(0)
    frontend = MelFrontend()
    wavs = 0.1 * torch.randn(8, 48000)
    lengths = torch.tensor([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    for factory in (ecapa_c512, ecapa_c1024):
        model = factory().eval()
        with torch.inference_mode():
            start = time.perf_counter()
            feats = frontend(wavs, lengths)
            embeddings = model(feats, lengths)
            seconds = time.perf_counter() - start
        audio_seconds = float(lengths.sum()) * wavs.shape[1] / frontend.sample_rate
        print(f"{factory.__name__}: waveforms {tuple(wavs.shape)} -> features "
              f"{tuple(feats.shape)} -> embeddings {tuple(embeddings.shape)}; real-time factor "
              f"{seconds / audio_seconds:.4f} on {torch.get_num_threads()} threads")
        print(parameter_summary(model), end="\n\n")


if __name__ == "__main__":
    main()
