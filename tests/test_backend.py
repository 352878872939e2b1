"""The scoring back-end that travels with a model: its scores against a per-pair loop, its
operating points and calibration against hand counts and scikit-learn, the folder round trip,
interface scores equal to the verification recipe's, calibration on the user's pairs, and
open-set identification (the interface's answers equal the identification recipe's rates)."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import experiment_with_backend
from sklearn.linear_model import LogisticRegression

from custom_modules import SpeakerEncoder
from custom_modules.__main__ import main
from custom_modules.data.catalogue import read_utterance_csvs
from custom_modules.data.trials import read_trials, utterance_id
from custom_modules.errors import InputError
from custom_modules.evaluation.identification import identification_rates, split_speakers
from custom_modules.evaluation.metrics import eer
from custom_modules.evaluation.scoring_fit import fit_decisions, fit_lda
from custom_modules.scoring.backend import Backend, Scoring, load_backend


def brute_force(scoring: Scoring, a: torch.Tensor, b: torch.Tensor) -> float:
    """One pair's score computed alone, step by step."""
    def vector(x):
        x = x - scoring.mean if scoring.mean is not None else x
        return scoring.projection(x[None])[0] if scoring.projection is not None else x

    x, y = vector(a), vector(b)
    score = float(F.cosine_similarity(x, y, dim=0))
    if scoring.cohort is None:
        return score
    sides = []
    for v in (x, y):
        against = sorted((float(F.cosine_similarity(v, vector(c), dim=0))
                          for c in scoring.cohort), reverse=True)[:scoring.top_k]
        sides.append((score - np.mean(against)) / np.std(against, ddof=1))
    return float(np.mean(sides))


def test_scores_equal_a_per_pair_loop():
    gen = torch.Generator().manual_seed(0)
    speakers = [s for s in range(6) for _ in range(5)]
    training = torch.randn(6, 8, generator=gen)[speakers] + 0.3 * torch.randn(30, 8,
                                                                              generator=gen)
    mean = training.mean(dim=0)
    projection = fit_lda(training - mean, [str(s) for s in speakers], dim=4)
    first, second = torch.randn(3, 8, generator=gen), torch.randn(4, 8, generator=gen)
    rows_a, rows_b = torch.tensor([0, 0, 1, 2, 2]), torch.tensor([0, 3, 1, 2, 0])
    for scoring in (Scoring("cosine"), Scoring("as-norm", cohort=training, top_k=7),
                    Scoring("lda+as-norm", mean, projection, training, 7),
                    Scoring("lda+s-norm", None, projection, training, None)):
        got = scoring.scores(scoring.space(first), scoring.space(second), rows_a, rows_b)
        scoring.top_k = scoring.top_k or len(training)      # S-norm: the whole cohort
        expected = [brute_force(scoring, first[i], second[j]) for i, j in
                    zip(rows_a, rows_b, strict=True)]
        assert got.tolist() == pytest.approx(expected, abs=1e-5), scoring.variant


def test_operating_points_and_calibration_against_hand_counts_and_sklearn():
    nontargets = torch.arange(100) / 100                      # 0.00 ... 0.99
    targets = 0.5 + torch.arange(100) / 100                   # 0.50 ... 1.49
    scores = torch.cat([targets, nontargets])
    labels = torch.cat([torch.ones(100), torch.zeros(100)])
    decisions = fit_decisions(scores, labels, [0.1, 0.05, 0.001], "hand")
    points = decisions.operating_points
    # 10 non-targets (0.90 ... 0.99) stay above 0.89; any lower threshold lets 11 through.
    assert points["far_10%"].threshold == pytest.approx(0.89)
    assert points["far_10%"].false_accept == pytest.approx(0.10)
    assert points["far_10%"].false_reject == pytest.approx(0.40)     # targets 0.50 ... 0.89
    # Fewer than 10 non-targets above: the stricter of the count (0.94 for 5 %, the highest
    # non-target 0.99 for 0.1 %) and a normal fitted to the non-targets (mean 0.495, sample
    # standard deviation by numpy).
    spread = float(np.std(nontargets.double().numpy(), ddof=1))
    assert points["far_5%"].threshold == pytest.approx(0.495 + 1.6448536 * spread)   # 0.972
    assert points["far_5%"].false_accept == pytest.approx(0.02)      # 0.98, 0.99
    assert points["far_0.1%"].threshold == pytest.approx(0.495 + 3.0902323 * spread)  # 1.391
    assert points["far_0.1%"].false_accept == 0
    assert points["far_0.1%"].false_reject == pytest.approx(0.90)    # targets 0.50 ... 1.39
    assert points["eer"].threshold == pytest.approx(eer(targets, nontargets)[1])
    reference = LogisticRegression(C=1e6, class_weight="balanced", tol=1e-8, max_iter=1000)
    reference.fit(scores.double().numpy().reshape(-1, 1), labels.numpy())
    assert decisions.calibration.scale == pytest.approx(float(reference.coef_[0, 0]), rel=1e-4)
    assert decisions.calibration.offset == pytest.approx(float(reference.intercept_[0]),
                                                         rel=1e-4)
    assert (decisions.targets, decisions.nontargets) == (100, 100)
    with pytest.raises(InputError, match="both target and non-target"):
        fit_decisions(targets, torch.ones(100), [0.01], "only targets")


def test_folder_round_trip_recalibration_and_restore(tmp_path):
    gen = torch.Generator().manual_seed(1)
    cohort, embeddings = torch.randn(20, 6, generator=gen), torch.randn(5, 6, generator=gen)
    labels = torch.tensor([1, 0, 1, 0, 1, 0, 0, 1])
    first = fit_decisions(torch.randn(8, generator=gen), labels, [0.25], "first")
    backend = Backend(Scoring("as-norm", cohort=cohort, top_k=5), first, "eer", 0.2, False)
    backend.save(tmp_path)
    loaded = load_backend(tmp_path)
    space, again = backend.scoring.space(embeddings), loaded.scoring.space(embeddings)
    rows = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 0])
    assert torch.equal(backend.scoring.scores(space, space, *rows),
                       loaded.scoring.scores(again, again, *rows))
    assert loaded.decisions == first and (loaded.prior, loaded.speech_detection) == (0.2, False)
    # P(same) at prior p is the logistic of llr + log(p / (1 - p)).
    score = torch.tensor([0.3])
    expected = 1 / (1 + np.exp(-(float(loaded.llr(score)) + np.log(0.2 / 0.8))))
    assert float(loaded.probability(score)) == pytest.approx(expected, rel=1e-6)
    second = fit_decisions(torch.randn(8, generator=gen), labels, [0.25], "second")
    loaded.recalibrated(second).save(tmp_path)
    recalibrated = load_backend(tmp_path)
    assert recalibrated.decisions == second and recalibrated.history == [first]
    (tmp_path / "backend.json").write_text("{not json")
    with pytest.raises(InputError, match="backend.json: not a readable back-end"):
        load_backend(tmp_path)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return experiment_with_backend(tmp_path_factory.mktemp("backend"))


def test_interface_scores_equal_the_recipe(experiment):
    out = experiment / "verification"
    done = subprocess.run(
        [sys.executable, "recipes/speaker_verification.py", "hparams/verify.yaml",
         f"--experiment={experiment}", "--cohort=utterances", "--lda_dim=4", "--top_k=10",
         "--model_backend=True", "--primary_variant=model"],
        capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    lines = (out / "test/scores.txt").read_text().splitlines()
    header, rows = lines[0].split(), [line.split() for line in lines[1:]]
    assert header == ["enrol", "test", "label", "cosine", "as-norm", "lda+cosine",
                      "lda+as-norm", "model", "llr"]
    column = {name: np.array([float(r[i]) for r in rows]) for i, name in enumerate(header)
              if i >= 3}
    # The exported back-end is the recipe's lda+as-norm fitted on the same utterances.
    assert column["model"] == pytest.approx(column["lda+as-norm"], abs=1e-5)
    calibration = json.loads((experiment / "pretrained/backend.json").read_text())[
        "decisions"]["calibration"]
    assert column["llr"] == pytest.approx(calibration["scale"] * column["model"]
                                          + calibration["offset"], abs=1e-4)
    metrics = json.loads((out / "metrics.json").read_text())
    # Cllr by hand from the calibrated LLRs written beside the labels (Brummer's definition)
    labels = np.array([r[header.index("label")] == "1" for r in rows])
    llr = column["llr"]
    by_hand = (np.log2(1 + np.exp(-llr[labels])).mean()
               + np.log2(1 + np.exp(llr[~labels])).mean()) / 2
    assert metrics["lists"]["test"]["calibrated"]["cllr"] == pytest.approx(by_hand, rel=1e-3)
    # The interface, file by file, gives the recipe's scores and log-likelihood ratios.
    # The back-end was fitted on whole files; the synthetic voices are not speech to the
    # speech gate, so it is switched off (a warning per file instead of an error).
    encoder = SpeakerEncoder.from_hparams(source=experiment / "pretrained",
                                          speech_detection=False)
    assert encoder.speech is None
    files = {u.id: u.wav for u in read_utterance_csvs([str(experiment / "data/enrol.csv"),
                                                      str(experiment / "data/test.csv")]).values()}
    # Equal up to float32 rounding (embeddings agree to 1e-7 whatever the batch), which
    # AS-norm amplifies by 1 / (the cohort scores' deviation): small for a random model.
    tolerance = 1e-4 * np.abs(column["model"]).max()
    for row in rows[:12]:
        verdict = encoder.verify_files(files[utterance_id(row[0])], files[utterance_id(row[1])])
        assert verdict.score == pytest.approx(float(row[header.index("model")]), abs=tolerance)
        assert verdict.llr == pytest.approx(float(row[header.index("llr")]),
                                            abs=tolerance * calibration["scale"])
        assert verdict.same == (verdict.score > encoder.backend.threshold("eer"))
    mismatch = subprocess.run(
        [sys.executable, "recipes/speaker_verification.py", "hparams/verify.yaml",
         f"--experiment={experiment}", "--model_backend=True",
         "--speech_detection=True", f"--output_folder={experiment}/other"],
        capture_output=True, text=True, check=False)
    assert mismatch.stderr.strip().splitlines()[-1].endswith(
        "its back-end was fitted with speech_detection=False; set speech_detection: False to "
        "score as the model does")


def test_calibrate_writes_a_sidecar_and_keeps_the_folder(experiment, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(experiment / "pretrained", folder)
    exported = {p.name: p.read_bytes() for p in folder.iterdir()}
    trials = read_trials(experiment / "data/test_trials.txt")
    files = {u.id: u.wav for u in read_utterance_csvs([str(experiment / "data/enrol.csv"),
                                                      str(experiment / "data/test.csv")]).values()}
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("".join(f"{t.label} {files[utterance_id(t.enrol)]} "
                             f"{files[utterance_id(t.test)]}\n" for t in trials)
                     + "1 missing.wav missing2.wav\n")
    before = load_backend(folder)
    sidecar = tmp_path / "sidecars/mine"
    main(["calibrate", "--model", str(folder), "--trials", str(pairs), "--far", "0.05",
          "--to", str(sidecar)])
    shown = capsys.readouterr().out
    assert f"calibrated on {pairs} ({sum(t.label for t in trials)} target" in shown
    assert "far_5%" in shown and "1 earlier calibrations kept" in shown
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == exported
    after = load_backend(sidecar / "v1")
    assert after.history == [before.decisions] and list(after.decisions.operating_points) == [
        "eer", "far_5%"]
    assert torch.equal(after.scoring.cohort, before.scoring.cohort)
    # The API refits the same way (same pairs, same numbers), as the sidecar's next version.
    again = SpeakerEncoder.from_hparams(source=folder).calibrate(pairs, sidecar)
    assert again.decisions.calibration == pytest.approx(after.decisions.calibration)
    assert load_backend(sidecar / "v2").decisions == again.decisions
    # Chosen, the sidecar decides; without it, the folder as exported.
    chosen = SpeakerEncoder.from_hparams(source=folder, sidecars=[sidecar / "v1"])
    assert chosen.backend.threshold("far_5%") == after.threshold("far_5%")
    assert SpeakerEncoder.from_hparams(source=folder).backend.decisions == before.decisions
    main(["info", "--model", str(folder), "--sidecar", str(sidecar)])
    shown = capsys.readouterr().out
    assert "scoring: lda+as-norm, cohort of" in shown and f"backend: sidecar {sidecar}/v2" \
        in shown


def test_identify_answers_unknown_below_the_operating_point(experiment, tmp_path):
    encoder = SpeakerEncoder.from_hparams(source=experiment / "pretrained", savedir=tmp_path,
                                          speech_detection=False)   # synthetic voices
    test = read_utterance_csvs([str(experiment / "data/test.csv")]).values()
    by_speaker: dict[str, list[str]] = {}
    for u in sorted(test, key=lambda u: u.id):
        by_speaker.setdefault(u.speaker, []).append(u.wav)
    enrolled, strangers = sorted(by_speaker)[:3], sorted(by_speaker)[3:]
    for name in enrolled:
        encoder.enrol(name, by_speaker[name][:2])
    scoring = encoder.backend.scoring
    for name in enrolled + strangers:
        query = by_speaker[name][-1]
        found = encoder.identify(query, top_k=3, operating_point="far_10%")
        # Each candidate's score is the pair score of the query and the speaker's profile
        # (the mean of its recordings' unit embeddings), computed alone.
        embedding = encoder.encode_file(query)
        tolerance = 1e-4 * max(abs(c.verdict.score) for c in found.candidates)  # as above
        for candidate in found.candidates:
            profile = sum(F.normalize(encoder.encode_file(f), dim=0)
                          for f in by_speaker[candidate.name][:2])
            assert candidate.verdict.score == pytest.approx(
                brute_force(scoring, embedding, profile), abs=tolerance)
        best = found.candidates[0]
        threshold = encoder.backend.threshold("far_10%")
        assert found.speaker == (best.name if best.verdict.score > threshold else None)
        assert encoder.identify(query, threshold=best.verdict.score + 1e-3).speaker is None
        assert encoder.identify(query, threshold=best.verdict.score - 1e-3).speaker == best.name


def test_identification_rates_against_a_loop():
    gen = torch.Generator().manual_seed(3)
    scores = torch.randn(40, 7, generator=gen)
    truth = torch.randint(-1, 7, (40,), generator=gen)
    thresholds = {"low": -0.5, "high": 1.0}
    rates, ranks, false_alarm, detection = identification_rates(scores, truth, thresholds)
    genuine = [q for q in range(40) if truth[q] >= 0]
    impostors = [q for q in range(40) if truth[q] < 0]
    order = {q: scores[q].argsort(descending=True).tolist() for q in range(40)}
    for n in range(7):
        assert ranks[n] == pytest.approx(np.mean([int(truth[q]) in order[q][:n + 1]
                                                  for q in genuine]))
    assert (rates["top1"], rates["top5"]) == (pytest.approx(ranks[0]), pytest.approx(ranks[4]))
    for name, threshold in thresholds.items():
        point = rates["operating_points"][name]
        assert point["detection"] == pytest.approx(np.mean(
            [order[q][0] == int(truth[q]) and float(scores[q].max()) > threshold
             for q in genuine]))
        assert point["false_alarm"] == pytest.approx(np.mean(
            [float(scores[q].max()) > threshold for q in impostors]))
    # The curve's points are the rates at every distinct best score.
    for level, fa, dr in zip(scores.max(dim=1).values.sort().values.tolist(), false_alarm[1:],
                             detection[1:], strict=True):
        assert fa == pytest.approx(np.mean([float(scores[q].max()) > level for q in impostors]))
        assert dr == pytest.approx(np.mean(
            [order[q][0] == int(truth[q]) and float(scores[q].max()) > level
             for q in genuine]))


def test_identification_recipe_equals_the_interface(experiment, tmp_path):
    out = tmp_path / "identification"
    done = subprocess.run(
        [sys.executable, "recipes/identification.py", "hparams/identify.yaml",
         f"--experiment={experiment}", f"--output_folder={out}"],
        capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert (out / "identification.png").stat().st_size > 10000
    # The same split, enrolled and queried one file at a time through SpeakerEncoder.
    held_out = read_utterance_csvs([str(experiment / "data/enrol.csv"),
                                    str(experiment / "data/test.csv")])
    split = split_speakers(list(held_out.values()), 0.5, 3, 1234)
    encoder = SpeakerEncoder.from_hparams(source=experiment / "pretrained", savedir=tmp_path,
                                          speech_detection=False)   # synthetic voices
    for name, utterances in split.enrolment.items():
        encoder.enrol(name, [u.wav for u in utterances])
    answers = [(u.speaker, encoder.identify(u.wav, top_k=5, operating_point="far_10%"))
               for u in split.queries]
    genuine = [(s, found) for s, found in answers if s in split.enrolment]
    impostors = [found for s, found in answers if s not in split.enrolment]
    assert report["genuine_queries"] == len(genuine) and report["impostor_queries"] == len(
        impostors)
    assert report["top1"] == pytest.approx(np.mean([f.candidates[0].name == s
                                                    for s, f in genuine]))
    assert report["top5"] == pytest.approx(np.mean([s in [c.name for c in f.candidates]
                                                    for s, f in genuine]))
    point = report["operating_points"]["far_10%"]
    assert point["detection"] == pytest.approx(np.mean([f.speaker == s for s, f in genuine]))
    assert point["false_alarm"] == pytest.approx(np.mean([f.speaker is not None
                                                          for f in impostors]))


def test_backend_embedded_by_the_fast_graph_has_its_own_cache_and_the_same_cohort(experiment,
                                                                                   tmp_path):
    from custom_modules.evaluation.backend_fit import ScoringOptions, fit_model_backend
    from custom_modules.inference.pretrained import load_embedder
    from custom_modules.sidecars import exported_state

    folder, data = experiment / "pretrained", experiment / "data"
    reference = load_backend(folder).scoring.cohort
    copy = tmp_path / "pretrained"
    shutil.copytree(folder, copy)
    fit_model_backend(load_embedder(copy), exported_state(copy), copy, str(data / "train.csv"),
                      None, None,
                      "lda+as-norm", ScoringOptions("utterances", 20000, 3, 10, 4, False, 1234),
                      [0.1], "eer", 0.5, False, str(tmp_path / "embeddings"), 120.0,
                      "fp32-fast")
    assert [p.name.endswith("_fp32-fast.pt") for p in (tmp_path / "embeddings").iterdir()] \
        == [True]
    fast = load_backend(copy).scoring.cohort
    assert fast.shape == reference.shape
    assert torch.allclose(fast, reference, atol=1e-4)


def test_classifier_cohort_embeds_nothing_and_scores_against_its_rows(tmp_path):
    """cohort: classifier takes the folder's classifier rows (SpeechBrain's model: VoxCeleb's
    7,205 speakers) as the AS-norm cohort: nothing is embedded (no embedder is given), and
    the scores are AS-norm against exactly those rows (brute force)."""
    from custom_modules.evaluation.backend_fit import (
        Embedding,
        ScoringOptions,
        fit_scorings,
        model_classifier,
    )

    torch.manual_seed(0)
    rows = torch.randn(40, 8)
    torch.save({"weight": rows}, tmp_path / "classifier.ckpt")
    options = ScoringOptions("classifier", 100, None, 5, None, False, 0)
    scorings = fit_scorings(None, {}, options, Embedding(None, 10.0, None),
                            model_classifier(tmp_path))
    scoring = scorings["as-norm"]
    pairs = torch.randn(2, 8)
    space = scoring.space(pairs)
    got = scoring.scores(space, space, torch.tensor([0]), torch.tensor([1]))
    unit = torch.nn.functional.normalize
    cohort = unit(rows, dim=1)
    raw = float(unit(pairs[0], dim=0) @ unit(pairs[1], dim=0))
    expected = 0.0
    for side in (0, 1):
        top = (cohort @ unit(pairs[side], dim=0)).topk(5).values
        expected += 0.5 * (raw - top.mean()) / top.std()
    assert abs(float(got[0]) - float(expected)) < 1e-4
    (tmp_path / "classifier.ckpt").write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match="classifier.ckpt: not a tensor file"):
        model_classifier(tmp_path)
