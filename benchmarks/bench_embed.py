"""Embedding throughput: our interface at every inference precision against SpeechBrain's
``EncoderClassifier`` with the same weights, same run, same threads.

    python benchmarks/bench_embed.py [utterances] [device]     # device: cpu (default), cuda:0

Prints the CPU's model and flags. For C=512 and C=1024, 3 s and 10 s utterances, 1 and 2
threads: a SpeechBrain folder with random weights is written, imported into our format, and
SpeechBrain and ours at each precision this CPU supports (``inference.precision``) embed the
same utterances (batches of 8). Each precision's embeddings are compared with SpeechBrain's
first (lowest cosine). Prints embeddings per second and the ratio to SpeechBrain (median of 3
interleaved rounds), then the accuracy checks of the demo model (``precisions.json``, written
by ``recipes/check_precisions.py``; they decide which precisions ``auto`` may take) and the
best passing precision's ratio in every setting; also the arithmetic per utterance, the
machine's fp32 matrix-product peak and the peak memory of embedding one hour of audio. On a
GPU (``cuda:0``) the same comparison runs there, for the precisions CUDA supports (fp16 and
bf16 included), in batches of 32, without the thread settings and the CPU-only parts.
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch
import torch.nn.functional as F
from speechbrain.inference.speaker import EncoderClassifier
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN as SpeechBrainECAPA
from torch.utils.flop_counter import FlopCounterMode

from custom_modules.evaluation.precision_check import FLAGS_SHOWN, check_lines
from custom_modules.inference.precision import (
    PRECISIONS,
    cpu_description,
    read_checks,
    supported,
    with_precision,
)
from custom_modules.inference.pretrained import load_embedder
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
GPU_BATCH = 32
DEMO_CHECKS = Path("exps/demo/pretrained/precisions.json")


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
    batch = BATCH if wavs.device.type == "cpu" else GPU_BATCH
    for embed in embedders.values():
        embed(wavs[:batch])
    for _ in range(rounds):
        for name, embed in embedders.items():
            start = time.perf_counter()
            for i in range(0, len(wavs), batch):
                embed(wavs[i:i + batch])
            if wavs.device.type == "cuda":
                torch.cuda.synchronize()
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


def hour_peak_memory(model_folder: Path, root: Path, precision: str) -> float:
    """Peak resident memory (MB) of a fresh process embedding a one-hour file."""
    path = root / "hour.wav"
    if not path.is_file():
        rng = np.random.default_rng(0)
        soundfile.write(path, np.tile(speech_like(60.0, 16000, rng), 60), 16000)
    # VmHWM (not ru_maxrss, which survives exec and would report this process's peak).
    code = ("import sys; from custom_modules import SpeakerEncoder; "
            "SpeakerEncoder.from_hparams(sys.argv[1], speech_detection=False, "
            "precision=sys.argv[3]).encode_file(sys.argv[2]); "
            "line = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]; "
            "print(int(line.split()[1]) / 1024)")
    done = subprocess.run([sys.executable, "-c", code, str(model_folder), str(path), precision],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    device = sys.argv[2] if len(sys.argv) > 2 else "cpu"
    on_gpu = device.startswith("cuda")
    root = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    name, flags = cpu_description()
    print(f"{name}; flags: {', '.join(sorted(flags & set(FLAGS_SHOWN)))}"
          + (f"; on {torch.cuda.get_device_name(device)}" if on_gpu else ""))
    print(f"batches of {BATCH}, {count} utterances each")
    checks = read_checks(DEMO_CHECKS) if DEMO_CHECKS.is_file() else None
    passing = [p for p in PRECISIONS if on_gpu or checks is None or checks["precisions"].get(
        p, {}).get("passed")]
    best_ratios = []
    for channels in ([512, 512, 512, 512, 1536], [1024, 1024, 1024, 1024, 3072]):
        source = speechbrain_folder(root, channels)
        theirs = EncoderClassifier.from_hparams(source=str(source),
                                                savedir=str(root / f"sb_saved_{channels[0]}"),
                                                run_opts={"device": device})
        target = import_speechbrain(source, root / f"ours_{channels[0]}")
        for threads in (1, 2) if not on_gpu else (torch.get_num_threads(),):
            torch.set_num_threads(threads)
            ours = {p: with_precision(load_embedder(target, device=device), p)
                    for p in PRECISIONS if supported(p, device)}

            def speechbrain_embed(wavs: torch.Tensor, theirs=theirs) -> torch.Tensor:
                with torch.inference_mode():
                    return theirs.encode_batch(wavs)[:, 0]

            def embed_with(embedder):
                def embed(batch: torch.Tensor) -> torch.Tensor:
                    with torch.inference_mode():
                        return embedder(batch)
                return embed

            for seconds in (3.0, 10.0):
                wavs = torch.from_numpy(np.stack([speech_like(seconds, 16000, rng)
                                                  for _ in range(count)])).float().to(device)
                reference = speechbrain_embed(wavs[:BATCH])
                cosines = {p: float(F.cosine_similarity(embed_with(e)(wavs[:BATCH]).float(),
                                                        reference.float()).min())
                           for p, e in ours.items()}
                rates = interleaved_rates({"speechbrain": speechbrain_embed,
                                           **{p: embed_with(e) for p, e in ours.items()}}, wavs)
                sb = rates.pop("speechbrain")
                cells = ", ".join(f"{p} {r:6.2f}/s {r / sb:.2f}x (cos {cosines[p]:.5f})"
                                  for p, r in rates.items())
                print(f"C={channels[0]:<5} {seconds:4.0f} s, {threads} thread(s): SpeechBrain "
                      f"{sb:6.2f}/s; ours {cells}")
                best = max((r, p) for p, r in rates.items() if p in passing)
                best_ratios.append((f"C={channels[0]} {seconds:g} s {threads}t", best[1],
                                    best[0] / sb))
            if threads == 2 and not on_gpu:
                features = theirs.mods.compute_features(wavs[:BATCH])
                sb_flop = model_gflop(theirs.mods.embedding_model, features) / BATCH
                our_flop = model_gflop(load_embedder(target).embedding_model, features) / BATCH
                print(f"C={channels[0]}, 10 s: GFLOP per utterance SpeechBrain {sb_flop:.2f}, "
                      f"ours {our_flop:.2f}; SpeechBrain's model at {sb_flop * sb:.0f} GFLOP/s")
    if checks is None:
        print(f"no accuracy checks ({DEMO_CHECKS} is missing: run recipes/check_precisions.py "
              f"hparams/precisions.yaml --experiment=exps/demo); every precision counted")
    else:
        print("accuracy checks of the demo model:\n" + "\n".join(check_lines(checks)))
    print("best passing precision against SpeechBrain: " + "; ".join(
        f"{setting} {precision} {ratio:.2f}x" for setting, precision, ratio in best_ratios))
    if on_gpu:
        return
    print(f"fp32 matrix-product peak here (2 threads): {gemm_peak():.0f} GFLOP/s")
    for precision in ("fp32", "bf16", "int8"):
        if supported(precision, "cpu"):
            print(f"one hour of audio, C=512 in 60 s windows, {precision}: peak memory "
                  f"{hour_peak_memory(root / 'ours_512', root, precision):.0f} MB")


if __name__ == "__main__":
    main()
