"""Convert compressed audio (VoxCeleb2's m4a) to 16 kHz mono 16-bit wav with ffmpeg.

Conversions run in parallel (ffmpeg processes, one per worker thread) with a progress bar.
They are resumable: each file is written under a ``.part`` name and renamed when ffmpeg
succeeds, so a finished wav is always complete and an interrupted run just starts again on
the files that are not there yet.
"""

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from custom_modules.errors import InputError


def _convert(source: str, target: str, sample_rate: int) -> str | None:
    """Convert one file; returns ``None`` or the problem in one line."""
    partial = f"{target}.part"
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", source,
               "-vn", "-ac", "1", "-ar", str(sample_rate), "-c:a", "pcm_s16le", "-f", "wav",
               partial]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        Path(partial).unlink(missing_ok=True)
        message = (result.stderr.strip().splitlines() or ["no message"])[-1]
        return f"ffmpeg could not convert it: {message}"
    os.replace(partial, target)
    return None


def convert_to_wav(jobs: list[tuple[str, str]], num_workers: int,
                   sample_rate: int = 16000) -> list[dict]:
    """Convert each ``(source, target)`` whose target does not exist yet.

    Returns a ``{"file", "reason"}`` record for every source that failed; raises an
    ``InputError`` with install advice when ffmpeg is missing.
    """
    todo = [(s, t) for s, t in jobs if not os.path.isfile(t)]
    if not todo:
        return []
    if shutil.which("ffmpeg") is None:
        raise InputError(f"{len(todo)} files need converting to wav but ffmpeg is not "
                           f"installed: run 'apt-get install ffmpeg' (or convert them yourself)")
    failures = []
    with ThreadPoolExecutor(max_workers=num_workers) as pool:
        results = pool.map(lambda job: _convert(*job, sample_rate), todo)
        for (source, _), problem in tqdm(zip(todo, results, strict=True), total=len(todo),
                                         desc="Converting to wav", unit="file"):
            if problem is not None:
                failures.append({"file": source, "reason": problem})
    return failures
