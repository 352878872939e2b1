"""Trial lists: reading with line-numbered errors, writing, and balanced random trials."""

import pytest

from custom_modules.data.trials import Trial, make_trials, read_trials, trial_speakers, write_trials


def test_round_trip_and_speakers(tmp_path):
    trials = [Trial(1, "a/x/1.wav", "a/y/2.wav"), Trial(0, "a/x/1.wav", "b/z/1.wav")]
    write_trials(tmp_path / "t.txt", trials)
    assert read_trials(tmp_path / "t.txt") == trials
    assert trial_speakers(trials) == {"a", "b"}


@pytest.mark.parametrize(("text", "words"), [
    ("", "the trial list is empty"),
    ("1 a/1.wav b/1.wav\n2 a/1.wav b/1.wav\n", "t.txt:2: expected 'label enrol test'"),
    ("1 a/1.wav\n", "t.txt:1: expected"),
])
def test_malformed_lists_name_file_and_line(tmp_path, text, words):
    (tmp_path / "t.txt").write_text(text)
    with pytest.raises(ValueError, match="t.txt") as error:
        read_trials(tmp_path / "t.txt")
    assert words in str(error.value)
    with pytest.raises(ValueError, match="not found"):
        read_trials(tmp_path / "missing.txt")


def test_made_trials_are_balanced_unique_and_reproducible():
    utterances = {f"s{s}": [f"s{s}/u{u}.wav" for u in range(5)] for s in range(6)}
    trials = make_trials(utterances, 100, seed=3)
    assert trials == make_trials(utterances, 100, seed=3)
    assert trials != make_trials(utterances, 100, seed=4)
    assert sum(t.label for t in trials) == 50
    assert len(trials) == 100
    assert len({frozenset((t.enrol, t.test)) for t in trials}) == 100
    for t in trials:
        same = t.enrol.split("/")[0] == t.test.split("/")[0]
        assert same == bool(t.label)
        assert t.enrol != t.test


def test_small_pools_give_fewer_but_balanced_trials():
    trials = make_trials({"a": ["a/1", "a/2"], "b": ["b/1", "b/2"]}, 100)
    assert sorted(t.label for t in trials) == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="need at least two speakers"):
        make_trials({"a": ["a/1", "a/2"]}, 10)


def test_grouped_non_targets_stay_in_their_group():
    utterances = {s: [f"{s}/{i}.wav" for i in range(4)] for s in "abcdef"}
    groups = {"a": "en/m", "b": "en/m", "c": "de/f", "d": "de/f", "e": "fr/m", "f": "it/m"}
    trials = make_trials(utterances, 40, seed=1, groups=groups)
    non_targets = [t for t in trials if t.label == 0]
    assert len(non_targets) == 20
    assert all(groups[t.enrol[0]] == groups[t.test[0]] for t in non_targets)
    assert {t.enrol[0] for t in non_targets} | {t.test[0] for t in non_targets} == set("abcd")
    with pytest.raises(ValueError, match="shares a group"):
        make_trials(utterances, 10, groups={s: s for s in utterances})
