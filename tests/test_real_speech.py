"""The real-speech builders on small fixtures in each package's layout (council archive,
Fish Fillets NG tree, Amazon Queen resource file), the collection writer, and the sets: trial
rules, and development speakers apart from test speakers."""

import csv
import struct
import zipfile
from pathlib import Path

import pytest
import soundfile
from conftest import speech_like

from custom_modules.data.trials import read_trials
from custom_modules.errors import InputError
from data_prep.real_speech import fillets
from data_prep.real_speech.collection import Recording, read_collection, write_collection
from data_prep.real_speech.council import council_recordings
from data_prep.real_speech.queen import queen_recordings
from data_prep.real_speech.sets import build_sets, pair_trials


def wav(path: Path, seconds: float, seed: int, rate: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, 0.3 * speech_like(seconds, rate, seed).numpy(), rate)
    return path


def test_council_archive_layout_and_sessions(tmp_path):
    archive_path = tmp_path / "diarized.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        for k, member in enumerate(["0123456789ab/lewis/100-3100.wav",
                                    "ba9876543210/lewis/5-2005.wav",
                                    "0123456789ab/sawant/7-3007.wav"]):
            archive.write(wav(tmp_path / f"src{k}.wav", 1.5, k), member)
        archive.writestr("0123456789ab/", "")
    with zipfile.ZipFile(archive_path) as archive:
        recordings = council_recordings(archive, tmp_path / "out")
    assert [(r.speaker, r.session, r.recording) for r in recordings] == [
        ("council-lewis", "0123456789ab", "0123456789ab-100-3100"),
        ("council-lewis", "ba9876543210", "ba9876543210-5-2005"),
        ("council-sawant", "0123456789ab", "0123456789ab-7-3007")]
    assert Path(recordings[1].path).read_bytes() == (tmp_path / "src1.wav").read_bytes()
    with zipfile.ZipFile(archive_path, "a") as archive:
        archive.writestr("notes/readme.txt", "x")
    with zipfile.ZipFile(archive_path) as archive, \
            pytest.raises(InputError, match="unexpected member 'notes/readme.txt'"):
        council_recordings(archive, tmp_path / "out")


def test_fillets_main_voices_only(tmp_path, monkeypatch):
    monkeypatch.setattr(fillets, "MIN_LINES", 2)
    sound = tmp_path / fillets.SOUND
    for level, name in (("city", "vit-m-hlava"), ("city", "vit-v-proc"), ("city", "vit-hs-klid"),
                        ("bar", "bar-m-pivo"), ("bar", "bar-v-dost"), ("bar", "bar-x-jiny")):
        (sound / level / "cs").mkdir(parents=True, exist_ok=True)
        (sound / level / "cs" / f"{name}.ogg").write_bytes(b"")
    recordings = fillets.fillets_recordings(tmp_path, "cs")
    assert sorted((r.speaker, r.session, r.recording) for r in recordings) == [
        ("fillets-cs-big", "bar", "bar-v-dost"), ("fillets-cs-big", "city", "vit-v-proc"),
        ("fillets-cs-small", "bar", "bar-m-pivo"), ("fillets-cs-small", "city", "vit-m-hlava")]
    monkeypatch.setattr(fillets, "MIN_LINES", 3)
    with pytest.raises(InputError, match="expected at least 3 each"):
        fillets.fillets_recordings(tmp_path, "cs")
    with pytest.raises(InputError, match="not a Fish Fillets NG speech package"):
        fillets.fillets_recordings(tmp_path / "elsewhere", "cs")


def queen_resource(path: Path, characters: int, lines: int) -> dict[str, bytes]:
    """A queen.1c with ``characters`` dialogues of ``lines`` P lines each, Joe's lines, a
    cut-scene line and a MAN dialogue; returns the line entries' bytes."""
    entries: dict[str, bytes] = {}
    for c in range(characters):
        key = 10 + c
        entries[f"CHAR{chr(65 + c)}1.DOG"] = b"AmBk" + bytes(20) + struct.pack(">h", key) + b"-"
        for n in range(lines):
            entries[f"{key:02d}{n:04X}P1.SB"] = f"line {c} {n}".encode()
        entries[f"{key:02d}0001J1.SB"] = f"joe {c}".encode()
    entries["MAN1.DOG"] = b"AmBk" + bytes(20) + struct.pack(">h", 60) + b"-"
    for n in range(lines):
        entries[f"60{n:04X}P1.SB"] = b"man"
    entries["C2A__011.SB"] = b"cut"
    entries["JOE00011.SB"] = b"joe object"
    header = b"QTBL" + b"CEM10\0" + b"\0\0" + b"\x01" + struct.pack(">H", len(entries))
    offset, table, data = len(header) + 21 * len(entries), b"", b""
    for name, content in entries.items():
        table += name.encode().ljust(12, b"\0") + b"\x01" + struct.pack(">II", offset + len(data),
                                                                        len(content))
        data += content
    path.write_bytes(header + table + data)
    return entries


def test_queen_resource_attribution(tmp_path):
    entries = queen_resource(tmp_path / "queen.1c", characters=10, lines=3)
    recordings = queen_recordings(tmp_path / "queen.1c", tmp_path / "lines", min_lines=3,
                                  max_lines=3, seed=0)
    by_speaker: dict[str, list[Recording]] = {}
    for r in recordings:
        by_speaker.setdefault(r.speaker, []).append(r)
    assert sorted(by_speaker) == ["queen-chara", "queen-charb", "queen-charc", "queen-chard",
                                  "queen-chare", "queen-charf", "queen-charg", "queen-charh",
                                  "queen-chari", "queen-charj", "queen-joe"]
    assert len(by_speaker["queen-joe"]) == 3            # 11 lines, max_lines 3
    first = sorted(by_speaker["queen-chara"])[0]
    assert (first.session, first.recording) == ("10", "100000P1")
    assert Path(first.path).read_bytes() == entries["100000P1.SB"]
    with pytest.raises(InputError, match="1 characters with 4 lines or more; expected at least 10"):
        queen_recordings(tmp_path / "queen.1c", tmp_path / "lines", 4, 3, 0)
    (tmp_path / "bad.1c").write_bytes(b"RIFF" + bytes(40))
    with pytest.raises(InputError, match="not a Flight of the Amazon Queen resource file"):
        queen_recordings(tmp_path / "bad.1c", tmp_path / "lines", 3, 3, 0)


def test_collection_cuts_long_recordings_and_counts_short_ones(tmp_path):
    recordings = [Recording(str(wav(tmp_path / "a.wav", 5.0, 1, rate=22050)), "spk-a", "s1",
                            "a", "en", "x"),
                  Recording(str(wav(tmp_path / "b.wav", 0.5, 2)), "spk-b", "s1", "b", "en", "x")]
    report = write_collection(tmp_path / "out", recordings, chunk_seconds=2.0,
                              min_seconds=0.8, num_workers=0)
    assert (report["pieces"], report["recordings_skipped"]) == (3, 1)
    pieces = read_collection(tmp_path / "out")
    assert [p.entry for p in pieces] == ["spk-a/a-0.wav", "spk-a/a-1.wav", "spk-a/a-2.wav"]
    info = soundfile.info(tmp_path / "out" / pieces[0].entry)
    assert (info.samplerate, info.channels, info.frames) == (16000, 1, 80000 // 3)


def collection(folder: Path, speakers: dict[str, tuple[str, int]], sessions: int = 2) -> str:
    """A collection table (no audio needed for the sets) of ``speaker -> (language,
    recordings)``."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "utterances.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(("entry", "speaker", "session", "recording", "language", "source",
                         "seconds"))
        for speaker, (language, count) in speakers.items():
            for k in range(count):
                writer.writerow((f"{speaker}/r{k}.wav", speaker, f"s{k % sessions}", f"r{k}",
                                 language, folder.name, 3.0))
    return str(folder)


def test_pair_trials_never_pair_one_recording_and_hard_stays_in_the_group():
    from data_prep.real_speech.collection import Piece

    pieces = [Piece(f"{s}/{r}-{k}.wav", s, sess, r, lang, "x", 2.0)
              for s, lang in (("a", "cs"), ("b", "cs"), ("c", "nl"))
              for sess, r in (("s1", "r1"), ("s2", "r2")) for k in range(2)]
    trials = pair_trials(pieces, 10**6, 0, hard=True, cross_session=False)
    by_entry = {p.entry: p for p in pieces}
    targets = [t for t in trials if t.label]
    assert len(targets) == 3 * 4         # per speaker 2 x 2 pairs across the two recordings
    assert all(by_entry[t.enrol].recording != by_entry[t.test].recording for t in targets)
    nontargets = [t for t in trials if not t.label]
    assert len(nontargets) == 16         # only a-b (cs), 4 x 4
    assert {by_entry[t.enrol].language for t in nontargets} == {"cs"}
    few = pair_trials(pieces, 5, 0, hard=False, cross_session=False)
    assert [sum(t.label == k for t in few) for k in (1, 0)] == [5, 5]


def test_sets_keep_development_and_test_speakers_apart(tmp_path):
    folders = {"dev": collection(tmp_path / "dev", {"d1": ("en", 4), "d2": ("en", 4),
                                                    "d3": ("cs", 4)}),
               "meet": collection(tmp_path / "meet", {"m1": ("en", 4), "m2": ("en", 4)})}
    summary = build_sets(folders, {"dev": "development", "meet": "test"}, str(tmp_path / "sets"),
                         max_trials=1000, max_pieces_per_speaker=3, seed=0)
    dev_speakers = {row["spk_id"] for name in ("cohort.csv", "valid.csv")
                    for row in csv.DictReader(open(tmp_path / "sets/development" / name))}
    valid = read_trials(tmp_path / "sets/development/valid_trials.txt")
    assert dev_speakers == {"d1", "d2", "d3"}
    assert {e.split("/")[0] for t in valid for e in (t.enrol, t.test)} <= dev_speakers
    assert summary["test_speakers"] == ["m1", "m2"]
    listed = {p.name for p in (tmp_path / "sets/meet").iterdir()}
    assert listed == {"enrol.csv", "test.csv", "standard_trials.txt",
                      "cross_session_trials.txt"}    # one language: no separate hard list
    test_rows = list(csv.DictReader(open(tmp_path / "sets/meet/test.csv")))
    assert Path(test_rows[0]["wav"]).parent == (tmp_path / "meet/m1").resolve()
    assert [sum(r["spk_id"] == s for r in test_rows) for s in ("m1", "m2")] == [3, 3]
    collection(tmp_path / "meet", {"d1": ("en", 4), "m2": ("en", 4)})
    with pytest.raises(InputError, match=r"speakers on both sides: \['d1'\]"):
        build_sets(folders, {"dev": "development", "meet": "test"}, str(tmp_path / "sets"),
                   1000, 3, 0)
    with pytest.raises(InputError, match="no development speaker or no test speaker"):
        build_sets(folders, {"dev": "test", "meet": "test"}, str(tmp_path / "sets"), 1000, 3,
                   0)
    with pytest.raises(InputError, match="a share 0.5 of the 3 speakers of dev leaves fewer"):
        build_sets(folders, {"dev": 0.5, "meet": "test"}, str(tmp_path / "sets"), 1000, 3, 0)


def test_a_share_of_a_collection_goes_to_development(tmp_path):
    folders = {"council": collection(tmp_path / "council", {f"c{k}": ("en", 3)
                                                            for k in range(6)})}
    summary = build_sets(folders, {"council": 0.5}, str(tmp_path / "sets"), 1000, 3, 0)
    development = set(summary["development"]["speakers"])
    assert len(development) == 3 and not development & set(summary["test_speakers"])
    assert development | set(summary["test_speakers"]) == {f"c{k}" for k in range(6)}
    tested = {row["spk_id"] for row in csv.DictReader(open(tmp_path / "sets/council/test.csv"))}
    assert tested == set(summary["test_speakers"])


def test_a_malformed_collection_table_is_one_line(tmp_path):
    (tmp_path / "utterances.csv").write_text("entry,speaker\nx.wav,a\n")
    with pytest.raises(InputError, match="columns must be entry,speaker,session"):
        read_collection(tmp_path)


def test_conversations_keep_to_their_side_and_their_group(tmp_path):
    from data_prep.real_speech.conversations import speaker_groups

    folders = {"council": collection(tmp_path / "council", {f"c{k}": ("en", 4)
                                                            for k in range(4)}),
               "game": collection(tmp_path / "game", {"g1": ("cs", 2), "g2": ("cs", 2),
                                                      "g3": ("nl", 2), "g4": ("nl", 2)})}
    summary = build_sets(folders, {"council": 0.5, "game": "test"}, str(tmp_path / "sets"),
                         1000, 4, 0)
    parts = speaker_groups(folders, str(tmp_path / "sets" / "sets.json"))
    assert [sorted(g) for g in parts["dev"]] == [sorted(summary["development"]["speakers"])]
    tested = [sorted(g) for g in parts["test"]]
    council_test = sorted(set(summary["test_speakers"]) - {"g1", "g2", "g3", "g4"})
    assert tested == [council_test, ["g1", "g2"], ["g3", "g4"]]   # one group a language
    sessions = parts["test"][1]["g1"]                              # sessions s0, s1 in order
    assert sessions == [[str(tmp_path / "game/g1/r0.wav")], [str(tmp_path / "game/g1/r1.wav")]]
