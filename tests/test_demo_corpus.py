"""The generated demo corpus: voices, text, channels, the tree and its trial lists."""

import csv
import random
import re
import shutil
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import read_csv
from scipy.signal import welch

from custom_modules.data.trials import read_trials
from data_prep.demo.channels import apply_channel, random_channel
from data_prep.demo.corpus import _group, _held_out, _job, generate_demo_corpus, make_utterances
from data_prep.demo.install_voices import contrib_non_free_entry, debian_sources
from data_prep.demo.text import clean, read_mo, utterance_text
from data_prep.demo.voices import Voice, _changes_voice, _loads, synthesize, synthesize_festival

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (make installs it as root)")

needs_festival = pytest.mark.skipif(
    shutil.which("festival") is None or not
    Path("/usr/share/festival/voices/english/kal_diphone").is_dir(),
    reason="Festival's kal_diphone voice is not installed (make demo installs it as root)")


def write_mo(path, pairs: list[tuple[str, str]]) -> None:
    """A little-endian GNU .mo file holding ``pairs``."""
    originals = [o.encode() for o, _ in pairs]
    translations = [t.encode() for _, t in pairs]
    start = 28 + 16 * len(pairs)
    blob, o_table, t_table = b"", b"", b""
    for table_strings, is_original in ((originals, True), (translations, False)):
        for text in table_strings:
            entry = struct.pack("<2I", len(text), start + len(blob))
            if is_original:
                o_table += entry
            else:
                t_table += entry
            blob += text + b"\0"
    header = struct.pack("<7I", 0x950412DE, 0, len(pairs), 28, 28 + 8 * len(pairs), 0, 0)
    path.write_bytes(header + o_table + t_table + blob)


def test_sources_are_derived_from_the_machine(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d/debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: trixie trixie-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/k.gpg\n\n"
        "Types: deb-src\nURIs: http://mirror.example/debian\nSuites: trixie\nComponents: main\n")
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64 signed-by=/k2.gpg] http://other.example/debian bookworm main\n"
        "deb http://third.example/x stable contrib\n")
    entries = debian_sources(str(tmp_path / "sources.list.d"), str(tmp_path / "sources.list"))
    assert [e["URIs"] for e in entries] == ["http://mirror.example/debian",
                                             "http://other.example/debian"]
    text = contrib_non_free_entry(entries)
    assert "Suites: trixie trixie-updates\nComponents: contrib non-free\n" \
           "Signed-By: /usr/share/keyrings/k.gpg" in text
    assert "URIs: http://other.example/debian\nSuites: bookworm\n" \
           "Components: contrib non-free\nSigned-By: /k2.gpg" in text
    with pytest.raises(ValueError, match="no Debian"):
        contrib_non_free_entry([])


def test_catalogue_text(tmp_path):
    path = tmp_path / "x.mo"
    write_mo(path, [("", "header"), ("Could not open the file", "Datei konnte nicht geöffnet "
                                                                "werden")])
    assert read_mo(path)[1] == ("Could not open the file", "Datei konnte nicht geöffnet werden")
    assert read_mo(tmp_path / "missing.mo") == []
    assert clean("Datei konnte nicht geöffnet werden") == "Datei konnte nicht geöffnet werden."
    assert clean("_Open the %s file now") is None and clean("<b>Bold text here</b>") is None
    assert clean("Too short.") is None
    text, native = utterance_text("xx_unknown", random.Random(0), min_words=12)
    assert not native and len(text.split()) >= 12 and text.endswith(".")


def test_channel_output_and_telephone_band():
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(32000)
    for seed in range(6):
        out = apply_channel(wave, random_channel(np.random.default_rng(seed)), 16000, rng)
        assert out.shape == wave.shape and np.isfinite(out).all()
        assert 0.29 <= np.abs(out).max() <= 0.91
    phone = random_channel(rng)._replace(telephone=True, rt60=None)
    freqs, power = welch(apply_channel(wave, phone, 16000, rng), 16000)
    assert power[freqs > 4500].sum() < 0.01 * power.sum()


def test_espeak_variants_that_keep_the_default_voice_count_once(tmp_path):
    files = {"klatt3": "name klatt3\nklatt 3\n",
             "adam": "name Adam\nklatt 6\nformant 1 100 100 130 // widths only\n",
             "john": "pitch 82 118\n",
             "m5": "formant 1  90  85 130  40\n",
             "anika": "gender female\npitch 140 260\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    changes = {name: _changes_voice(str(tmp_path / name)) for name in files}
    assert changes == {"klatt3": False, "adam": False, "john": False, "m5": True,
                       "anika": True}
    assert _changes_voice(str(tmp_path / "missing"))        # unknown: kept


@needs_espeak
def test_a_voice_espeak_ng_cannot_load_is_found_unusable():
    # As for mb-cn1, which espeak-ng lists but refuses ("voice does not exist").
    assert _loads("en")
    assert not _loads("mb-no-such-voice")


@needs_festival
def test_festival_says_many_texts_in_one_process_as_text2wave_says_each(tmp_path):
    voice = Voice("festival", "kal_diphone", "en", "male")
    # Two sentences in one text (text2wave appends their waves), quotes, two rates.
    texts = [('the "quick" brown fox. It jumps over the lazy dog; then it sleeps', 1.1),
             ("hello there, how are you", 0.9)]
    made = synthesize_festival(voice, [(text, str(tmp_path / f"batch{i}.wav"), rate)
                                       for i, (text, rate) in enumerate(texts)])
    assert made == {str(tmp_path / f"batch{i}.wav") for i in range(len(texts))}
    for i, (text, rate) in enumerate(texts):
        synthesize(voice, text, str(tmp_path / f"alone{i}.wav"), rate=rate)
        alone = (tmp_path / f"alone{i}.wav").read_bytes()
        assert len(alone) > 10_000 and (tmp_path / f"batch{i}.wav").read_bytes() == alone


@needs_festival
def test_files_festival_did_not_make_together_are_made_alone_and_their_problem_kept(
        tmp_path):
    unknown = Voice("festival", "no_such_voice", "en", "male")
    jobs = [_job(str(tmp_path), "id10001", 0, unknown, u, 1, 12, 7) for u in range(2)]
    assert make_utterances(jobs) == [
        (f"id10001/sess01/0000{u}.wav", 0, f"id10001/sess01/0000{u}.wav: "
         "festival:no_such_voice: synthesis failed: SIOD ERROR: unbound variable : "
         "voice_no_such_voice") for u in (1, 2)]
    kal = Voice("festival", "kal_diphone", "en", "male")
    made = make_utterances([_job(str(tmp_path), "id10002", 1, kal, u, 2, 12, 7)
                            for u in range(3)])
    for relative, samples, problem in made:
        assert problem is None
        assert soundfile.info(str(tmp_path / "wav" / relative)).frames == samples > 16000


def test_a_small_corpus_still_holds_out_a_pair_for_the_hard_list():
    # Groups of one to three voices: 20 % of each rounds to none or one, so no group would
    # have two held-out voices; two of the largest group are held out instead.
    voices = [Voice("espeak", f"v{i}", language, gender)
              for i, (language, gender) in enumerate(
                  [("en", "male")] * 3 + [("de", "female")] * 2 + [("fi", "male")])]
    speakers = {f"id{10001 + i}": v for i, v in enumerate(voices)}
    held_out = _held_out(speakers, 0.2, seed=1)
    assert Counter(_group(speakers[s]) for s in held_out) == {"en/male": 2}


def test_test_voices_give_the_hard_list_pairs_in_every_large_group():
    voices = [Voice("espeak", f"v{i}", language, gender)
              for i, (language, gender) in enumerate(
                  [("en", "male")] * 10 + [("de", "female")] * 4 + [("fi", "male")] * 3
                  + [("ka", "female")])]
    speakers = {f"id{10001 + i}": v for i, v in enumerate(voices)}
    held_out = _held_out(speakers, 0.2, seed=1)
    counts = Counter(_group(speakers[s]) for s in held_out)
    assert counts == {"en/male": 2, "de/female": 2, "fi/male": 1}
    assert held_out == _held_out(speakers, 0.2, seed=1)


@needs_espeak
def test_tiny_corpus(tmp_path):
    folder = tmp_path / "corpus"
    summary = generate_demo_corpus(str(folder), utterances_per_voice=4, sessions_per_voice=2,
                                   max_voices=8, trials=60, min_words=6, num_workers=2, seed=3)
    files = sorted(p.relative_to(folder / "wav").as_posix() for p in folder.rglob("*.wav"))
    assert len(files) == summary["utterances"] == 8 * 4 - summary["failed_utterances"]
    # utterances.csv lists every file with the length its header says.
    listed = {r["ID"]: r for r in read_csv(folder / "utterances.csv")}
    assert sorted(listed) == [f[:-4] for f in files]
    for relative in files[:5]:
        info = soundfile.info(folder / "wav" / relative)
        row = listed[relative[:-4]]
        assert (int(row["stop"]), row["spk_id"]) == (info.frames, relative.split("/")[0])
    assert all(re.fullmatch(r"id\d{5}/sess\d{2}/\d{5}\.wav", f) for f in files)
    info = soundfile.info(folder / "wav" / files[0])
    assert (info.samplerate, info.channels) == (16000, 1) and info.duration > 1.0
    with open(folder / "speakers.csv", newline="", encoding="utf-8") as handle:
        speakers = {row["ID"]: row for row in csv.DictReader(handle)}
    standard = read_trials(folder / "trials_standard.txt")
    assert standard and {t.label for t in standard} == {0, 1}
    named = {e.split("/")[0] for t in standard for e in (t.enrol, t.test)}
    assert all(speakers[s]["split"] == "test" for s in named)
    assert all(e in files for t in standard for e in (t.enrol, t.test))
    hard = read_trials(folder / "trials_hard.txt") if summary["hard_trials"] else []
    assert (folder / "trials_hard.txt").is_file() == bool(hard)
    for trial in hard:
        one, other = (speakers[e.split("/")[0]] for e in (trial.enrol, trial.test))
        assert one["gender"] == other["gender"]
        assert one["language"].split("_")[0] == other["language"].split("_")[0]
    again = generate_demo_corpus(str(folder), utterances_per_voice=4, sessions_per_voice=2,
                                 max_voices=8, trials=60, min_words=6, num_workers=2, seed=3)
    assert again["skipped"]
    smaller = generate_demo_corpus(str(folder), utterances_per_voice=2, sessions_per_voice=2,
                                   max_voices=4, trials=20, min_words=6, num_workers=2, seed=3)
    assert len(list(folder.rglob("*.wav"))) == smaller["utterances"] <= 8   # nothing stale
    with pytest.raises(ValueError, match="at least 4 voices"):
        generate_demo_corpus(str(tmp_path / "small"), max_voices=3)
    (tmp_path / "theirs/wav").mkdir(parents=True)
    with pytest.raises(ValueError, match="was not made by the demo corpus generator"):
        generate_demo_corpus(str(tmp_path / "theirs"), max_voices=4)


@needs_espeak
def test_same_seed_same_corpus(tmp_path):
    made = [generate_demo_corpus(str(tmp_path / name), utterances_per_voice=2,
                                 sessions_per_voice=1, max_voices=4, trials=4, min_words=5,
                                 num_workers=1, seed=7) for name in ("a", "b")]
    assert made[0]["utterances"] == made[1]["utterances"] > 0
    for name in ("speakers.csv", "trials_standard.txt"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    first = sorted((tmp_path / "a/wav").rglob("*.wav"))[0]
    twin = tmp_path / "b/wav" / first.relative_to(tmp_path / "a/wav")
    np.testing.assert_array_equal(soundfile.read(first)[0], soundfile.read(twin)[0])
