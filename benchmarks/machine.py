"""What a benchmark ran on, for its first line: CPU model, cores it may use, the vector and
matrix instruction sets that decide its speed (AVX2, AVX-512, bf16, VNNI, AMX), torch and,
when there is one, the GPU. Machines of one kind differ in speed by about a third, so every
figure is quoted with this line."""

import os
import re

import torch

FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")


def describe() -> str:
    """One line about this machine."""
    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            text = handle.read()
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        model = found.group(1).strip() if found else model
        listed = re.search(r"^flags\s*:\s*(.+)$", text, re.MULTILINE)
        flags = set(listed.group(1).split()) if listed else set()
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"{model}, {len(os.sched_getaffinity(0))} cores, "
            f"{' '.join(f for f in FLAGS if f in flags) or 'no AVX2'}; torch {torch.__version__}"
            f", {torch.get_num_threads()} threads{gpu}")
