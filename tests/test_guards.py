"""Behaviours that a mutation of the code once left untested (``benchmarks/mutation_check.py``
applies those mutations in a copy and shows that these tests then fail): AS-norm scoring the
mean-subtracted embeddings, the bounded validation's per-utterance limit, and ``--device``
reaching the model a recipe builds."""

import csv

import torch
import torch.nn.functional as F

import model_step as recipe
from custom_modules.data.catalogue import Utterance
from custom_modules.evaluation.backend_fit import ScoringOptions, fit_scorings
from custom_modules.training.validation import BoundedValidation


def test_as_norm_with_mean_subtraction_scores_centred_embeddings_against_a_centred_cohort():
    torch.manual_seed(0)
    cohort, vectors = torch.randn(40, 8) + 2.0, torch.randn(6, 8) + 2.0   # off-centre
    options = ScoringOptions("classifier", 20000, None, 5, None, True, 1)
    scorings = fit_scorings(None, {"u": Utterance("u", "u.wav")}, options, None, cohort)
    mean = cohort.mean(dim=0)
    assert torch.allclose(scorings["cosine"].mean, mean)
    assert torch.allclose(scorings["as-norm"].mean, mean)
    # By hand: cosine of the centred vectors, each side normalised by the mean and standard
    # deviation of its 5 highest scores against the centred cohort.
    unit = F.normalize(vectors - mean, dim=1)
    against = unit @ F.normalize(cohort - mean, dim=1).T
    top = against.topk(5, dim=1).values
    mu, sigma = top.mean(dim=1), top.std(dim=1)
    enrol, test = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])
    raw = (unit[enrol] * unit[test]).sum(dim=1)
    expected = ((raw - mu[enrol]) / sigma[enrol] + (raw - mu[test]) / sigma[test]) / 2
    scoring = scorings["as-norm"]
    space = scoring.space(vectors)
    assert torch.allclose(scoring.scores(space, space, enrol, test), expected, atol=1e-5)


def test_the_bounded_validation_cuts_each_utterance_to_its_limit(tmp_path):
    with open(tmp_path / "valid.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ID", "duration", "wav", "start", "stop", "spk_id"])
        writer.writerows([["a/1", 5.0, "a1.wav", 0, 80000, "a"],      # 5 s
                          ["a/2", 0.5, "a2.wav", 1600, 9600, "a"],    # 0.5 s from 0.1 s
                          ["b/1", 3.0, "b1.wav", 16000, 64000, "b"]])
    (tmp_path / "trials.txt").write_text("1 a/1.wav a/2.wav\n0 a/1.wav b/1.wav\n")
    bounded = BoundedValidation(str(tmp_path / "valid.csv"), str(tmp_path / "trials.txt"),
                                None, 1.0, 16000)
    spans = {u.id: (u.start, u.stop) for u in bounded.utterances}
    # one second from each start, or less where the utterance ends first
    assert spans == {"a/1": (0, 16000), "a/2": (1600, 9600), "b/1": (16000, 32000)}
    whole = BoundedValidation(str(tmp_path / "valid.csv"), str(tmp_path / "trials.txt"),
                              None, None, 16000)
    assert {u.id: u.stop for u in whole.utterances} == {"a/1": 80000, "a/2": 9600,
                                                        "b/1": 64000}


def test_a_recipe_builds_its_model_on_the_device_asked_for(tmp_path, monkeypatch):
    asked = []

    class Built(str):
        """What the step sees: the device the model was built on."""

        def fingerprint(self) -> str:
            return "0" * 16

    monkeypatch.setattr(recipe, "load_embedder",
                        lambda path, checkpoint, device: asked.append(device) or Built(device))
    (tmp_path / "step.yaml").write_text("pretrained_path: p\ncheckpoint_path: null\n"
                                        "sidecars: []\nstep: !name:builtins.str\n")
    for device in ("meta", "cpu"):
        hparams, result = recipe.run_model_step([str(tmp_path / "step.yaml"),
                                                 f"--device={device}"],
                                                (*recipe.MODEL_KEYS, "step"), "step",
                                                with_state=False)
        assert result == device
    assert asked == ["meta", "cpu"]
