"""Diarization: clustering, resegmentation and scoring against hand-made cases, the RTTM
files, the generated conversations, and the recipe's report against pyannote.metrics run on
the files it wrote; then SpeakerEncoder.diarize with the tuned settings."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch
import torch.nn.functional as F
from conftest import tiny_pretrained
from pyannote.core import Annotation, Timeline
from pyannote.core import Segment as Span
from pyannote.metrics.diarization import DiarizationErrorRate
from sklearn.metrics import adjusted_rand_score

from custom_modules import SpeakerEncoder
from custom_modules.diarization import pipeline
from custom_modules.diarization.evaluation import score
from custom_modules.diarization.pipeline import (
    DEFAULT_SETTINGS,
    Analysis,
    DiarizationOptions,
    analyse,
    cluster,
    resegment,
    speech_regions,
)
from custom_modules.diarization.rttm import Segment, read_rttm, write_rttm
from custom_modules.diarization.streaming import analyse_file
from custom_modules.errors import InputError
from custom_modules.inference.pretrained import load_embedder
from data_prep import synthetic_audio
from data_prep.demo.conversations import generate_conversations


def test_spectral_clustering_finds_the_speakers_and_their_number():
    gen = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(4, 32, generator=gen), dim=1)
    truth = torch.randint(0, 4, (120,), generator=gen)
    vectors = F.normalize(centres[truth] + 0.15 * torch.randn(120, 32, generator=gen), dim=1)
    labels = cluster(vectors, 0.2, 10, None)
    assert len(set(labels.tolist())) == 4
    assert adjusted_rand_score(truth.numpy(), labels) == 1.0
    assert len(set(cluster(vectors, 0.2, 10, 2).tolist())) == 2       # the number given


def test_merging_joins_a_voice_split_in_two_and_clusters_again():
    """Four voices, two of them close (cosine 0.8 between their centres): merging at 0.7
    leaves three speakers, clustered again as three (the two close voices one cluster); at
    0.9 nothing is joined; a given number is never merged."""
    gen = torch.Generator().manual_seed(1)
    centres = F.normalize(torch.randn(4, 32, generator=gen), dim=1)
    centres[1] = F.normalize(0.8 * centres[0] + 0.6 * F.normalize(
        centres[1] - (centres[1] @ centres[0]) * centres[0], dim=0), dim=0)
    truth = torch.randint(0, 4, (160,), generator=gen)
    vectors = F.normalize(centres[truth] + 0.1 * torch.randn(160, 32, generator=gen), dim=1)
    assert len(set(cluster(vectors, 0.2, 10, None).tolist())) == 4
    joined = cluster(vectors, 0.2, 10, None, merge=0.7)
    expected = torch.where(truth == 1, 0, truth).numpy()
    assert adjusted_rand_score(expected, joined) == 1.0
    assert adjusted_rand_score(truth.numpy(), cluster(vectors, 0.2, 10, None, 0.9)) == 1.0
    assert len(set(cluster(vectors, 0.2, 10, 4, merge=0.7).tolist())) == 4


def test_resegmentation_puts_the_boundary_between_window_centres():
    """Speaker a fills 0-3 s, b 3-6 s; windows of 1.5 s every 0.75 s: the two windows that
    straddle 3 s are half and half (their vectors the mean of both), so frames switch where
    the covering windows' average similarity does, at 3.0 s."""
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    starts = np.arange(0, 4.6, 0.75)
    windows = np.stack([starts, starts + 1.5], axis=1)
    share_a = np.clip((3.0 - windows[:, 0]) / 1.5, 0, 1)
    vectors = F.normalize(torch.from_numpy(share_a).float()[:, None] * a
                          + torch.from_numpy(1 - share_a).float()[:, None] * b, dim=1)
    analysis = Analysis(6.0, np.array([[0.0, 6.0]]), windows, vectors)
    labels = (share_a < 0.5).astype(np.int64)
    found = resegment(analysis, labels)
    assert [s.speaker for s in found] == ["spk0", "spk1"]
    assert found[0].start == 0.0 and found[-1].end == 6.0
    assert found[0].end == pytest.approx(3.0, abs=0.02)
    named = resegment(analysis, labels, ["ann", "ann"])         # one name: one speaker
    assert named == [Segment(0.0, 6.0, "ann")]


def test_der_with_a_collar_by_hand():
    """Reference a 0-10 s, b 10-20 s; hypothesis switches at 12 s. Without a collar 2 s of
    20 are confused (10 %); a 0.25 s collar (each side of every reference boundary) removes
    0-0.25, 9.75-10.25 and 19.75-20 s: 1.75 s confused of 19 s."""
    reference = [Segment(0, 10, "a"), Segment(10, 20, "b")]
    hypothesis = [Segment(0, 12, "x"), Segment(12, 20, "y")]
    assert score([(reference, hypothesis, 20.0)], 0.0)["der"] == pytest.approx(10.0)
    scored = score([(reference, hypothesis, 20.0)], 0.25)
    assert scored["der"] == pytest.approx(100 * 1.75 / 19)
    assert scored["confusion"] == pytest.approx(scored["der"])
    assert scored["missed"] == scored["false_alarm"] == 0


def test_rttm_round_trip_and_a_malformed_line(tmp_path):
    segments = [Segment(0.5, 2.25, "ann"), Segment(2.0, 4.0, "bob")]
    write_rttm(tmp_path / "x.rttm", "x", segments)
    assert read_rttm(tmp_path / "x.rttm") == {"x": segments}
    (tmp_path / "bad.rttm").write_text("SPEAKER x 1 0.5 abc <NA> <NA> ann <NA> <NA>\n")
    with pytest.raises(InputError, match="bad.rttm:1: not an RTTM SPEAKER line"):
        read_rttm(tmp_path / "bad.rttm")


def write_demo_like_corpus(root, voices: int = 8) -> None:
    """What the demo generator writes, for ``voices`` held-out voices of 2 sessions of 3
    utterances each (speech-like audio, one seeded voice per speaker)."""
    rows = []
    for v in range(voices):
        voice = np.random.default_rng(300 + v)
        for session in (1, 2):
            for u in range(3):
                path = root / "wav" / f"id{v:05d}" / f"sess{session:02d}" / f"{u:05d}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                soundfile.write(path, synthetic_audio.speech_like(4.0, 16000, voice), 16000)
                rows.append([f"id{v:05d}/sess{session:02d}/{u:05d}", 4.0, str(path), 0,
                             64000, f"id{v:05d}"])
    with open(root / "utterances.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["ID", "duration", "wav", "start", "stop", "spk_id"],
                                      *rows])
    with open(root / "speakers.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["ID", "split"],
                                      *[[f"id{v:05d}", "test"] for v in range(voices)]])


def conversations(corpus, out):
    return generate_conversations(str(corpus), str(out), dev_recordings=2,
                                  test_recordings=2, max_speakers=3, min_minutes=0.4,
                                  max_minutes=0.6, dev_voices=0.4, overlap_share=0.2, seed=7)


def test_generated_conversations_follow_their_rules(tmp_path):
    write_demo_like_corpus(tmp_path / "corpus")
    listing = conversations(tmp_path / "corpus", tmp_path / "a")
    again = conversations(tmp_path / "corpus", tmp_path / "b")
    with open(listing, newline="") as handle:
        rows = list(csv.DictReader(handle))
    voices = {}
    for row in rows:
        turns = read_rttm(row["rttm"])[row["ID"]]
        wave, rate = soundfile.read(row["wav"])
        assert rate == 16000 and len(wave) / rate == pytest.approx(float(row["duration"]),
                                                                   abs=0.01)
        assert 2 <= len({t.speaker for t in turns}) == int(row["speakers"]) <= 3
        assert all(0.5 - 1e-3 <= t.end - t.start <= 10 + 1e-3 for t in turns)
        assert all(a.speaker != b.speaker for a, b in zip(turns, turns[1:], strict=False))
        assert turns[-1].end <= len(wave) / rate
        voices.setdefault(row["part"], set()).update(t.speaker for t in turns)
        other = (tmp_path / "b" / row["part"] / f"{row['ID']}.wav").read_bytes()
        assert other == (tmp_path / "a" / row["part"] / f"{row['ID']}.wav").read_bytes()
    assert not voices["dev"] & voices["test"]                 # no test voice tuned on
    assert again.read_text() == listing.read_text().replace(str(tmp_path / "a"),
                                                            str(tmp_path / "b"))


def test_recipe_report_equals_pyannote_on_its_files_and_the_interface(tmp_path):
    write_demo_like_corpus(tmp_path / "corpus")
    listing = conversations(tmp_path / "corpus", tmp_path / "conversations")
    experiment = tmp_path / "exp"
    tiny_pretrained(experiment / "pretrained", seen_data=True)
    done = subprocess.run(
        [sys.executable, "recipes/diarize.py", "hparams/diarize.yaml",
         f"--experiment={experiment}", f"--recordings={listing}"],
        capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((experiment / "diarization/report.json").read_text())
    assert (experiment / "diarization/timeline.png").stat().st_size > 10000
    metric = DiarizationErrorRate(collar=0.5, skip_overlap=False)   # 0.25 s each side
    with open(listing, newline="") as handle:
        tests = [r for r in csv.DictReader(handle) if r["part"] == "test"]
    for row in tests:
        reference, hypothesis = Annotation(), Annotation()
        for n, s in enumerate(read_rttm(row["rttm"])[row["ID"]]):
            reference[Span(s.start, s.end), n] = s.speaker
        written = read_rttm(experiment / "diarization/hypotheses" / f"{row['ID']}.rttm")
        for n, s in enumerate(written.get(row["ID"], [])):
            hypothesis[Span(s.start, s.end), n] = s.speaker
        metric(reference, hypothesis, uem=Timeline([Span(0, float(row["duration"]))]))
    assert report["estimated"]["der"] == pytest.approx(100 * abs(metric), abs=0.05)
    # The tuned settings are a sidecar; the model folder is as it was exported.
    assert not (experiment / "pretrained/diarization.json").exists()
    sidecar = experiment / "sidecars/diarization"
    settings = json.loads((sidecar / "v1/diarization.json").read_text())
    assert (settings["pruning"], settings["merge"]) == (report["pruning"], report["merge"])
    # The interface, with the settings the recipe tuned, gives the recipe's hypothesis.
    encoder = SpeakerEncoder.from_hparams(source=experiment / "pretrained",
                                          savedir=tmp_path, sidecars=[sidecar])
    first = tests[0]
    found = encoder.diarize(first["wav"])
    assert found == read_rttm(experiment / "diarization/hypotheses"
                              / f"{first['ID']}.rttm")[first["ID"]]
    # Named after the enrolled speakers: the same frames, each cluster an enrolled name or
    # unknown_<n>, by the verdict of its centroid against the profiles.
    speaker_files = sorted((tmp_path / "corpus/wav").glob("*/sess01/00000.wav"))
    enrolling = SpeakerEncoder.from_hparams(source=experiment / "pretrained",
                                            savedir=tmp_path, speech_detection=False,
                                            sidecars=[sidecar])
    enrolling.enrol("first", [speaker_files[0]])
    named = enrolling.diarize(first["wav"], name_speakers=True)
    assert (named[0].start, named[-1].end) == (found[0].start, found[-1].end)
    assert all(s.speaker == "first" or s.speaker.startswith("unknown_") for s in named)
    # A folder without tuned settings (an imported model) diarizes with the shipped ones:
    # the same segments as those settings written into the folder give.
    fresh = tiny_pretrained(tmp_path / "fresh")
    untuned = SpeakerEncoder.from_hparams(source=fresh).diarize(first["wav"])
    (fresh / "diarization.json").write_bytes(DEFAULT_SETTINGS.read_bytes())
    assert untuned and untuned == SpeakerEncoder.from_hparams(source=fresh).diarize(first["wav"])
    (fresh / "diarization.json").write_text('{"pruning": "x"}')
    with pytest.raises(InputError, match="diarization.json: not readable diarization"):
        SpeakerEncoder.from_hparams(source=fresh).diarize(first["wav"])


def test_many_windows_are_clustered_through_a_subsample(monkeypatch):
    """Above MAX_CLUSTERED windows, an even subsample is clustered and every window goes to
    the nearest centroid: the speakers are still found exactly (brute-force labels)."""
    gen = torch.Generator().manual_seed(2)
    centres = F.normalize(torch.randn(3, 32, generator=gen), dim=1)
    truth = torch.randint(0, 3, (900,), generator=gen)
    vectors = F.normalize(centres[truth] + 0.15 * torch.randn(900, 32, generator=gen), dim=1)
    monkeypatch.setattr(pipeline, "MAX_CLUSTERED", 200)
    labels = cluster(vectors, 0.2, 10, None)
    assert labels.shape == (900,) and adjusted_rand_score(truth.numpy(), labels) == 1.0
    assert labels[0] == 0 and set(labels.tolist()) == {0, 1, 2}


class LoudFrames:
    """A speech detector without memory (Silero's state carries across a recording): the
    10 ms frames whose peak is above 0.01."""

    def segments(self, wave, threshold=None):
        loud = np.concatenate([[False], wave[:len(wave) // 160 * 160].reshape(-1, 160)
                               .abs().amax(dim=1).numpy() > 0.01, [False]])
        edges = np.flatnonzero(np.diff(loud.astype(int)))
        return [(int(a) * 160, int(b) * 160) for a, b in edges.reshape(-1, 2)]


def test_a_recording_read_in_blocks_gives_the_whole_files_analysis(tmp_path):
    """Blocks that meet in silence: the same regions, windows and embeddings as the whole
    recording read at once."""
    rate = 16000
    speech = [synthetic_audio.speech_like(2.5, rate, np.random.default_rng(s)) for s in range(3)]
    silence = np.zeros(rate)
    wave = np.concatenate([speech[0], silence, speech[1], silence, speech[2]]).astype(np.float32)
    path = tmp_path / "talk.wav"
    soundfile.write(path, wave, rate, subtype="FLOAT")
    embedder = load_embedder(tiny_pretrained(tmp_path / "model"))
    options = DiarizationOptions(0.2, 0.3, 0.2, 1.5, 0.75, 8, 10)
    detector = LoudFrames()
    whole = analyse(embedder, torch.from_numpy(wave),
                    speech_regions(torch.from_numpy(wave), detector, options, rate), options)
    blocks = analyse_file(embedder, path, detector, options, block_seconds=3.25)
    assert blocks.duration == whole.duration and len(whole.regions) == 3
    assert np.allclose(blocks.regions, whole.regions, atol=0.04)
    assert len(blocks.vectors) == len(whole.vectors)
    assert torch.allclose(blocks.vectors, whole.vectors, atol=1e-3)
