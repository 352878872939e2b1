"""Sentences for the synthetic voices to read, available offline in many languages.

The translated message catalogues (``.mo`` files) that Debian packages install give real
sentences in each language (their original strings give English). Where a language has too few,
or the system carries no catalogues (slim container images drop them), the voice reads English
from a small grammar shipped here, which makes hundreds of thousands of distinct sentences.

Example
-------
>>> import random
>>> sentence = grammar_sentence(random.Random(0))
>>> sentence[0].isupper() and sentence.endswith(".")
True
"""

import functools
import glob
import os
import random
import struct
import unicodedata

LOCALE_FOLDER = "/usr/share/locale"
MIN_SENTENCES = 50
PUNCTUATION = set(" ,.;:!?'’«»„“”\"()-।")

SUBJECTS = ["The old fisherman", "My younger sister", "A quiet neighbour", "The new teacher",
            "Our team leader", "The tired driver", "A curious child", "The village baker",
            "His best friend", "The night nurse", "A famous painter", "The school choir",
            "Every farmer here", "The young doctor", "Her grandfather", "The local mayor",
            "A travelling musician", "The museum guide", "My cousin from the coast",
            "The careful engineer", "A small group of students", "The postman"]
VERBS = ["carried", "painted", "repaired", "forgot", "described", "discovered", "ordered",
         "cleaned", "borrowed", "planted", "counted", "opened", "followed", "photographed",
         "measured", "delivered", "wrapped", "sold", "noticed", "remembered", "moved"]
OBJECTS = ["a wooden chair", "the broken window", "three heavy boxes", "an unusual map",
           "the red umbrella", "a basket of apples", "the long letter", "two bright lamps",
           "a strange old key", "the kitchen table", "a pile of newspapers", "the green bicycle",
           "a jar of honey", "the silver watch", "some fresh bread", "the tall ladder",
           "a bag of oranges", "the village clock", "a picture of the harbour"]
PLACES = ["before the storm arrived", "near the railway station", "after a long day at work",
          "on a cold winter morning", "behind the little church", "during the summer festival",
          "at the edge of the forest", "while the rain kept falling", "in the crowded market",
          "just after sunset", "across the quiet river", "on the way to the hospital",
          "late on Sunday evening", "in front of the library", "without saying a word",
          "under the old bridge", "at the end of the street", "when nobody was watching"]


def grammar_sentence(rng: random.Random) -> str:
    """One English sentence from the shipped grammar."""
    return (f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} "
            f"{rng.choice(PLACES)}.")


def read_mo(path: str) -> list[tuple[str, str]]:
    """``(original, translation)`` pairs of a GNU ``.mo`` file (plural forms: the first);
    an unreadable or malformed file gives no pairs."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        order = "<" if data[:4] == b"\xde\x12\x04\x95" else ">"
        count, originals, translations = struct.unpack(order + "3I", data[8:20])
        pairs = []
        for i in range(count):
            o_len, o_at = struct.unpack(order + "2I", data[originals + 8 * i:originals + 8 * i + 8])
            t_len, t_at = struct.unpack(order + "2I",
                                        data[translations + 8 * i:translations + 8 * i + 8])
            pairs.append((data[o_at:o_at + o_len].split(b"\0")[0].decode("utf-8"),
                          data[t_at:t_at + t_len].split(b"\0")[0].decode("utf-8")))
        return pairs
    except (OSError, struct.error, UnicodeDecodeError):
        return []


def clean(text: str) -> str | None:
    """A catalogue string as a sentence to read, or ``None`` when it is markup, a format
    string, a menu accelerator, or shorter than four words."""
    text = " ".join(text.replace("&", "").split())
    if not text or not text[0].isalpha() or not 4 <= len(text.split()) <= 25:
        return None
    if not all(c.isalpha() or c in PUNCTUATION or unicodedata.category(c).startswith("M")
               for c in text):
        return None
    return text if text[-1] in ".!?" else text + "."


@functools.lru_cache(maxsize=None)
def catalogue_sentences(language: str) -> tuple[str, ...]:
    """Distinct usable sentences in ``language`` (``"de"``, ``"pt_BR"``; ``"en"`` reads the
    catalogues' original strings), from every catalogue installed."""
    primary = language.split("_")[0].lower()
    if primary == "en":
        files = glob.glob(os.path.join(LOCALE_FOLDER, "*", "LC_MESSAGES", "*.mo"))
        texts = (original for path in files[:400] for original, _ in read_mo(path))
    else:
        folders = {language, primary} | {os.path.basename(p) for p in
                                         glob.glob(os.path.join(LOCALE_FOLDER, primary + "_*"))}
        files = [f for folder in sorted(folders)
                 for f in glob.glob(os.path.join(LOCALE_FOLDER, folder, "LC_MESSAGES", "*.mo"))]
        texts = (translation for path in files for _, translation in read_mo(path))
    return tuple(sorted({c for c in map(clean, texts) if c}))


def utterance_text(language: str, rng: random.Random, min_words: int = 12) -> tuple[str, bool]:
    """Sentences joined until ``min_words``; also whether the voice's own language was used
    (``False``: English from the grammar)."""
    pool = catalogue_sentences(language)
    native = len(pool) >= MIN_SENTENCES
    words, parts = 0, []
    while words < min_words:
        part = rng.choice(pool) if native else grammar_sentence(rng)
        parts.append(part)
        words += len(part.split())
    return " ".join(parts), native
