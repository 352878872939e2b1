"""Data preparation speed: our VoxCeleb prep against a full-decode reference, same tree.

    python benchmarks/bench_prep.py [number_of_files] [work_folder]

Builds a VoxCeleb-shaped tree (default 20,000 wav files of 2-6 s, 16 kHz) once, warms the page
cache, then times

- ours: ``prepare_voxceleb`` (durations from headers, all cores), whole run including CSVs;
- reference: one process decoding every file fully to get its length, the way SpeechBrain's
  ``voxceleb_prepare.py`` reads each file.

Before timing is compared, every length in our CSVs is checked against the decoded length.
Prints files/s of both and the speed-up.
"""

import csv
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import soundfile

from data_prep.fake_voxceleb import write_voxceleb_tree
from data_prep.splits import SplitOptions
from data_prep.voxceleb_prepare import VoxCelebInputs, prepare_voxceleb

TEST_SPEAKERS = ["id10270", "id10271"]
SPLITS = SplitOptions(mode="utterances", seg_dur=3.0, min_duration=1.0, split_ratio=(98, 2),
                      dev_split="speakers", valid_trials=1000, seed=1234)


def build_tree(root: Path, files: int) -> list[Path]:
    """``files`` wav files under ``root/wav``: 40 distinct recordings copied into place."""
    templates = write_voxceleb_tree(root / "templates", ["id00000"], 4, 10, (2.0, 6.0))
    speakers = [f"id{20000 + i}" for i in range(files // 50 - len(TEST_SPEAKERS))]
    paths = []
    for index in range(files):
        speaker = (speakers + TEST_SPEAKERS)[index // 50]
        path = root / "wav" / speaker / f"video{index // 10 % 5}" / f"{index % 10 + 1:05d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(templates[index % len(templates)], path)
        paths.append(path)
    shutil.rmtree(root / "templates")
    return paths


def reference_lengths(paths: list[Path]) -> dict[str, int]:
    """Decode every file in one process, as SpeechBrain's preparation does."""
    return {str(p): len(soundfile.read(str(p), dtype="float32")[0]) for p in paths}


def main() -> None:
    files = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    work = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.gettempdir(), "bench_prep")
    tree = work / f"voxceleb_{files}"
    if not (tree / "complete").exists():
        shutil.rmtree(tree, ignore_errors=True)
        build_tree(tree, files)
        (tree / "complete").touch()
    paths = sorted((tree / "wav").rglob("*.wav"))
    trials = work / "trials.txt"
    first, second = (f"{s}/video0/00001.wav" for s in TEST_SPEAKERS)
    trials.write_text(f"1 {first} {TEST_SPEAKERS[0]}/video1/00002.wav\n0 {first} {second}\n")
    for path in paths:  # warm the page cache so that both read from memory
        path.read_bytes()

    save = work / "prepared"
    shutil.rmtree(save, ignore_errors=True)
    start = time.perf_counter()
    inputs = VoxCelebInputs([], str(tree), {"test": str(trials)}, train_on_test_folder=True,
                            converted_folder=None, skip_missing_trials=False)
    prepare_voxceleb(inputs, str(save), SPLITS, num_workers=None)
    ours = time.perf_counter() - start
    start = time.perf_counter()
    lengths = reference_lengths(paths)
    reference = time.perf_counter() - start

    checked = 0
    for name in ("train.csv", "dev.csv", "enrol.csv", "test.csv"):
        with open(save / name, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if int(row["stop"]) != lengths[row["wav"]]:
                    sys.exit(f"length mismatch for {row['wav']}: {row['stop']} vs "
                             f"{lengths[row['wav']]}")
                checked += 1
    print(f"{len(paths)} files, {checked} CSV rows checked against decoded lengths, "
          f"{len(os.sched_getaffinity(0))} cores")
    print(f"ours (headers, parallel):        {ours:7.2f} s  {len(paths) / ours:9.0f} files/s")
    print(f"reference (decode, one process): {reference:7.2f} s  "
          f"{len(paths) / reference:9.0f} files/s")
    print(f"speed-up: {reference / ours:.1f}x")


if __name__ == "__main__":
    main()
