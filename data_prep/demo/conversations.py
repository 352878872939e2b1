"""Conversations for diarization, made from the demo corpus's held-out voices
(``data_prep.conversations``: turns, overlaps, the files written).

The held-out voices are split into a development part (for tuning) and a test part (for
reporting), so no test voice is heard while tuning; each voice's sessions are the corpus's
recording sessions (each rendered through its own channel).
"""

import csv
import random
from pathlib import Path

from custom_modules.errors import InputError
from data_prep.conversations import write_conversations


def generate_conversations(corpus_folder: str, output_folder: str, dev_recordings: int,
                           test_recordings: int, max_speakers: int, min_minutes: float,
                           max_minutes: float, dev_voices: float, overlap_share: float,
                           seed: int) -> Path:
    """Write the conversation set (see the module docstring); returns its CSV."""
    corpus = Path(corpus_folder)
    with open(corpus / "speakers.csv", newline="", encoding="utf-8") as handle:
        held_out = sorted(r["ID"] for r in csv.DictReader(handle) if r["split"] == "test")
    sessions: dict[str, dict[str, list[str]]] = {}
    with open(corpus / "utterances.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["spk_id"] in held_out:
                session = row["ID"].split("/")[1]
                sessions.setdefault(row["spk_id"], {}).setdefault(session, []).append(
                    row["wav"])
    voices = held_out[:]
    rng = random.Random(seed)
    rng.shuffle(voices)
    if len(voices) < 4:
        raise InputError(f"{corpus}: {len(voices)} held-out voices; the conversations need "
                         f"at least 4 (2 for tuning, 2 for the report)")
    cut = min(max(2, round(dev_voices * len(voices))), len(voices) - 2)
    parts = {part: [{v: [sessions[v][s] for s in sorted(sessions[v])] for v in sorted(chosen)}]
             for part, chosen in (("dev", voices[:cut]), ("test", voices[cut:]))}
    return write_conversations(parts, {"dev": dev_recordings, "test": test_recordings},
                               output_folder, max_speakers, min_minutes, max_minutes,
                               overlap_share, rng, {"corpus": str(corpus), "seed": seed,
                                                    "dev_voices": dev_voices})
