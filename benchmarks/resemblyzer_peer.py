"""Resemblyzer, a peer for the real-speech table: its GE2E voice encoder (3-layer LSTM, 256-d,
trained on LibriSpeech, VoxCeleb1+2; Apache-2.0) as its own package runs it.

The wheel ``Resemblyzer==0.1.4`` carries the weights (``resemblyzer/pretrained.pt``); it is
downloaded once, pinned by SHA-256, and installed with its pinned dependencies into a folder
of its own (``exps/peers/resemblyzer``, never into the project's environment). Its code runs
in a child process that puts that folder at the end of its path (the project's numpy and
torch come first), so nothing of it is imported into the benchmark:

    python -m benchmarks.resemblyzer_peer files.txt embeddings.pt

embeds each listed 16 kHz file with ``preprocess_wav`` (volume to -30 dBFS, long silences
trimmed with webrtcvad) and ``VoiceEncoder.embed_utterance`` (1.6 s partials, averaged):
exactly Resemblyzer's own path, the waveform read by our ``read_audio`` like every system's.
"""

import subprocess
import sys
from pathlib import Path

import torch

from custom_modules.interop.registry import PinnedFile, pypi_wheel

WHEEL = "Resemblyzer-0.1.4-py3-none-any.whl"
PIN = PinnedFile(15747704, "8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f")
# Its run-time dependencies that the project does not have, exact versions (numpy, scipy,
# torch and soundfile are the project's own).
DEPENDENCIES = ["librosa==0.11.0", "numba==0.68.1", "llvmlite==0.50.0", "soxr==1.1.0",
                "audioread==3.1.0", "lazy_loader==0.6", "pooch==1.9.0", "msgpack==1.2.4",
                "decorator==5.3.2", "platformdirs==4.14.9", "webrtcvad-wheels==2.0.14.post1"]


def install(folder: Path, downloads: Path) -> Path:
    """The folder Resemblyzer and its dependencies are installed in (done once)."""
    site = folder / "site"
    if (site / "resemblyzer" / "pretrained.pt").is_file():
        return site
    wheel = pypi_wheel("Resemblyzer", "0.1.4", WHEEL, PIN, downloads)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--only-binary=:all:", "--target", str(site), str(wheel), *DEPENDENCIES],
                   check=True)
    return site


def embeddings(paths: dict[str, str], folder: Path, downloads: Path) -> dict[str, torch.Tensor]:
    """``{id: (256,) embedding}`` of ``{id: wav path}``, computed by Resemblyzer in a child
    process."""
    site = install(folder, downloads)
    listing, output = folder / "files.tsv", folder / "embeddings.pt"
    listing.write_text("".join(f"{i}\t{p}\n" for i, p in paths.items()), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "benchmarks.resemblyzer_peer", str(listing),
                    str(output), str(site)], check=True)
    found = torch.load(output, weights_only=True)
    if len(found) < len(paths):
        print(f"Resemblyzer: {len(paths) - len(found)} of {len(paths)} files left no voice "
              f"after its silence trimming (left out)")
    return found


def _embed(listing: Path, output: Path, site: str) -> None:
    sys.path.append(site)
    from resemblyzer import VoiceEncoder, preprocess_wav

    from custom_modules.audio import read_audio

    encoder = VoiceEncoder(device="cpu", verbose=False)
    out = {}
    for line in listing.read_text(encoding="utf-8").splitlines():
        key, path = line.split("\t")
        wave = preprocess_wav(read_audio(path).numpy(), source_sr=16000)
        if len(wave) >= 400:   # its voice detection may leave nothing: left out, counted
            out[key] = torch.from_numpy(encoder.embed_utterance(wave)).float()
    torch.save(out, output)


if __name__ == "__main__":
    _embed(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
