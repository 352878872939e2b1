"""Embedding throughput: our interface (eager PyTorch and onnxruntime) against SpeechBrain's
``EncoderClassifier`` with the same weights, same run, same threads.

    python benchmarks/bench_embed.py [utterances]

For C=512 and C=1024 and for 3 s and 10 s utterances: a SpeechBrain folder with random
weights is written, imported into our format, and both embed the same batch of utterances
(batches of 8). Embeddings are checked first (cosine >= 0.9999 for eager and ONNX). Prints
embeddings per second and the ratio (median of 3 interleaved rounds), the arithmetic per
utterance and the machine's fp32 matrix-product peak (the ceiling for any fp32 implementation);
also the peak memory of embedding one hour of audio.
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import soundfile
import torch
import torch.nn.functional as F
from speechbrain.inference.speaker import EncoderClassifier
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN as SpeechBrainECAPA
from torch.utils.flop_counter import FlopCounterMode

from custom_modules import SpeakerEncoder
from custom_modules.inference.export import export_onnx
from custom_modules.interop.speechbrain import import_speechbrain
from data_prep.synthetic_audio import speech_like

HPARAMS = """pretrained_path: {folder}
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: 80
mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False
embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: 80
    channels: {channels}
modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
"""
BATCH = 8


def speechbrain_folder(root: Path, channels: list[int]) -> Path:
    folder = root / f"sb_{channels[0]}"
    folder.mkdir()
    torch.manual_seed(0)
    torch.save(SpeechBrainECAPA(80, channels=channels).state_dict(),
               folder / "embedding_model.ckpt")
    (folder / "hyperparams.yaml").write_text(HPARAMS.format(folder=folder, channels=channels))
    return folder


def interleaved_rates(embedders: dict, wavs: torch.Tensor, rounds: int = 3) -> dict:
    """Embeddings per second of each embedder over the whole set, in batches of ``BATCH``:
    the median of ``rounds`` rounds, each timing every embedder once in turn (so that drift
    in the machine's speed hits all of them alike), after one warm-up batch each."""
    times = {name: [] for name in embedders}
    for embed in embedders.values():
        embed(wavs[:BATCH])
    for _ in range(rounds):
        for name, embed in embedders.items():
            start = time.perf_counter()
            for i in range(0, len(wavs), BATCH):
                embed(wavs[i:i + BATCH])
            times[name].append(time.perf_counter() - start)
    return {name: len(wavs) / float(np.median(spent)) for name, spent in times.items()}


def gemm_peak() -> float:
    """GFLOP/s of a large fp32 matrix product on this machine and thread count: a ceiling
    for any implementation that does ECAPA's arithmetic in fp32."""
    a, b = torch.randn(2400, 1536), torch.randn(1536, 1536)
    a @ b
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    return 10 * 2 * 2400 * 1536 * 1536 / (time.perf_counter() - start) / 1e9


def model_gflop(model: torch.nn.Module, features: torch.Tensor) -> float:
    """GFLOP of one forward pass (matrix products and convolutions), counted by torch."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(features)
    return counter.get_total_flops() / 1e9


def hour_peak_memory(model_folder: Path, root: Path) -> float:
    """Peak resident memory (MB) of a fresh process embedding a one-hour file."""
    path = root / "hour.wav"
    rng = np.random.default_rng(0)
    soundfile.write(path, np.tile(speech_like(60.0, 16000, rng), 60), 16000)
    # VmHWM (not ru_maxrss, which survives exec and would report this process's peak).
    code = ("import sys; from custom_modules import SpeakerEncoder; "
            "SpeakerEncoder.from_hparams(sys.argv[1]).encode_file(sys.argv[2]); "
            "line = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]; "
            "print(int(line.split()[1]) / 1024)")
    done = subprocess.run([sys.executable, "-c", code, str(model_folder), str(path)],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    root = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    print(f"{torch.get_num_threads()} threads, batches of {BATCH}, {count} utterances each")
    for channels in ([512, 512, 512, 512, 1536], [1024, 1024, 1024, 1024, 3072]):
        source = speechbrain_folder(root, channels)
        theirs = EncoderClassifier.from_hparams(source=str(source),
                                                savedir=str(root / f"sb_saved_{channels[0]}"))
        target = import_speechbrain(source, root / f"ours_{channels[0]}")
        ours = SpeakerEncoder.from_hparams(target)
        onnx_path = export_onnx(ours.embedder, root / f"ours_{channels[0]}.onnx")
        session = onnxruntime.InferenceSession(str(onnx_path),
                                               providers=["CPUExecutionProvider"])

        def onnx_embed(wavs: torch.Tensor, session=session) -> np.ndarray:
            samples = np.full(len(wavs), wavs.shape[1], dtype=np.int64)
            return session.run(None, {"wavs": wavs.numpy(), "samples": samples})[0]

        def speechbrain_embed(wavs: torch.Tensor, theirs=theirs) -> torch.Tensor:
            with torch.inference_mode():
                return theirs.encode_batch(wavs)

        for seconds in (3.0, 10.0):
            wavs = torch.from_numpy(np.stack([speech_like(seconds, 16000, rng)
                                              for _ in range(count)])).float()
            with torch.inference_mode():
                reference = theirs.encode_batch(wavs[:BATCH])[:, 0]
            eager_cos = F.cosine_similarity(ours.encode_batch(wavs[:BATCH])[:, 0], reference)
            onnx_cos = F.cosine_similarity(torch.from_numpy(onnx_embed(wavs[:BATCH])), reference)
            assert eager_cos.min() >= 0.9999 and onnx_cos.min() >= 0.9999, (eager_cos, onnx_cos)
            rates = interleaved_rates({"speechbrain": speechbrain_embed, "eager": ours.encode_batch,
                                       "onnx": onnx_embed}, wavs)
            best = max(rates["eager"], rates["onnx"])
            lowest = float(min(eager_cos.min(), onnx_cos.min()))
            features = theirs.mods.compute_features(wavs[:BATCH])
            sb_flop = model_gflop(theirs.mods.embedding_model, features) / BATCH
            our_flop = model_gflop(ours.embedder.embedding_model, features) / BATCH
            print(f"C={channels[0]:<5} {seconds:4.0f} s: "
                  f"SpeechBrain {rates['speechbrain']:6.2f}/s, "
                  f"ours eager {rates['eager']:6.2f}/s, ours onnxruntime {rates['onnx']:6.2f}/s "
                  f"-> best/SpeechBrain {best / rates['speechbrain']:.2f}x "
                  f"(cosine >= {lowest:.6f}); GFLOP per utterance: SpeechBrain {sb_flop:.2f}, "
                  f"ours {our_flop:.2f}; SpeechBrain's model runs at "
                  f"{sb_flop * rates['speechbrain']:.0f} GFLOP/s")
    print(f"fp32 matrix-product peak here: {gemm_peak():.0f} GFLOP/s")
    print(f"one hour of audio, C=512 in 60 s windows: peak memory "
          f"{hour_peak_memory(root / 'ours_512', root):.0f} MB")


if __name__ == "__main__":
    main()
