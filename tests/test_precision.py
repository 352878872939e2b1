"""Inference precisions: the fast graph equals the model, the other precisions stay close, the
accuracy check records what it measured, and auto chooses from it."""

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import experiment_with_backend, speech_like

from custom_modules import ECAPA_TDNN, MelFrontend, SpeakerEncoder
from custom_modules.data.catalogue import read_utterance_csvs
from custom_modules.data.trials import read_trials
from custom_modules.errors import InputError
from custom_modules.evaluation.precision_check import check_precisions
from custom_modules.inference.embedding import embed_utterances
from custom_modules.inference.fast_graph import FastECAPA
from custom_modules.inference.precision import (
    EER_TOLERANCE,
    MIN_COSINE,
    auto_precision,
    supported,
    with_precision,
)
from custom_modules.inference.pretrained import load_embedder
from custom_modules.models.embedder import Embedder
from custom_modules.sidecars import exported_state


def trained_like(channels: list[int], **kwargs) -> ECAPA_TDNN:
    """A random model whose batch norms hold statistics of speech-like audio."""
    torch.manual_seed(0)
    model = ECAPA_TDNN(40, channels=channels, attention_channels=16, se_channels=16,
                       lin_neurons=24, **kwargs)
    with torch.no_grad():
        model.train()(MelFrontend(n_mels=40)(torch.stack([speech_like(2.0, seed=i)
                                                          for i in range(4)])))
    return model.eval()


@pytest.mark.parametrize("layout", [
    {"channels": [32, 32, 32, 32, 96]},
    {"channels": [32, 48, 48, 48, 144]},                       # shortcut convolutions
    {"channels": [32, 32, 32, 96], "kernel_sizes": [3, 5, 3, 1], "dilations": [1, 3, 2, 1],
     "groups": [1, 1, 1, 1]},
])
def test_fast_graph_equals_the_model_on_padded_batches(layout):
    model = trained_like(**layout)
    features = MelFrontend(n_mels=40)(torch.stack([speech_like(2.0, seed=9 + i)
                                                   for i in range(4)]))
    frames = torch.tensor([features.shape[1], 150, 80, 31])
    fast = FastECAPA(model)
    with torch.no_grad():
        for counts in (None, frames):
            reference = model(features, counts)
            got = fast(features, counts)
            assert got.shape == reference.shape
            assert (got - reference).abs().max() <= 1e-5 * reference.abs().max()
    with pytest.raises(InputError, match="integer frame counts"):
        fast(features, torch.tensor([1.0, 0.5, 0.5, 0.5]))


def test_precisions_stay_close_and_keep_the_fingerprint(tmp_path):
    model = trained_like([32, 32, 32, 32, 96])
    embedder = Embedder(MelFrontend(n_mels=40), model).eval()
    waves = torch.stack([speech_like(2.0, seed=20 + i) for i in range(3)])
    samples = torch.tensor([32000, 24000, 16000])
    with torch.no_grad():
        reference = embedder(waves, samples)
        for precision, lowest in (("fp32-fast", 0.99999), ("bf16", 0.999), ("int8", 0.99)):
            if not supported(precision, "cpu"):
                continue
            converted = with_precision(embedder, precision)
            assert converted.precision == precision
            assert converted.fingerprint() == embedder.fingerprint()
            assert F.cosine_similarity(converted(waves, samples), reference).min() >= lowest
    assert with_precision(embedder, "fp32") is embedder
    with pytest.raises(InputError, match="fp16 is not supported on cpu"):
        with_precision(embedder, "fp16")
    with pytest.raises(InputError, match="precision 'fp8': choose one of"):
        with_precision(embedder, "fp8")


def write_checks(folder, entries: dict) -> None:
    (folder / "precisions.json").write_text(json.dumps({"precisions": entries}))


def test_auto_takes_the_fastest_that_passed_and_runs_here(tmp_path):
    assert auto_precision(tmp_path, "cpu") == "fp32"            # nothing checked
    write_checks(tmp_path, {"fp32": {"passed": True, "embeddings_per_second": 10},
                            "int8": {"passed": True, "embeddings_per_second": 25},
                            "bf16": {"passed": False, "embeddings_per_second": 40},
                            "fp16": {"passed": True, "embeddings_per_second": 90}})
    assert auto_precision(tmp_path, "cpu") == "int8"            # fp16 needs CUDA
    assert auto_precision(tmp_path, "cuda:0") == "fp16"
    (tmp_path / "precisions.json").write_text('{"precisions": {"int8": {}}}')
    with pytest.raises(InputError, match="precisions.json: not a readable precision check"):
        auto_precision(tmp_path, "cpu")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return experiment_with_backend(tmp_path_factory.mktemp("precision"))


def test_check_records_each_precision_and_auto_uses_it(experiment):
    folder = experiment / "pretrained"
    checks = check_precisions(load_embedder(folder), exported_state(folder), folder,
                              {"test": str(experiment / "data/test_trials.txt")},
                              [str(experiment / "data/enrol.csv"),
                               str(experiment / "data/test.csv")], 120.0,
                              ["fp32", "fp32-fast", "bf16", "fp16", "int8"])
    assert json.loads((folder / "precisions.json").read_text()) == checks
    with pytest.raises(InputError, match=r"precisions \['bf16'\]: fp32 first"):
        check_precisions(load_embedder(folder), exported_state(folder), folder, {}, [], 120.0,
                         ["bf16"])
    results = checks["precisions"]
    assert results["fp32"]["eer_change"] == {"test": 0.0}
    assert results["fp32"]["min_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert results["fp32-fast"]["min_cosine"] > 0.99999 and results["fp32-fast"]["passed"]
    assert results["fp16"] == {"supported": False, "passed": False,
                               "embeddings_per_second": 0.0}
    # The tolerance is 0.05 points, or one trial of the list's rarer kind (counted here).
    labels = [t.label for t in read_trials(experiment / "data/test_trials.txt")]
    rarer = min(labels.count(1), labels.count(0))
    assert checks["eer_tolerance"] == {"test": max(EER_TOLERANCE, 100 / rarer)}
    for entry in results.values():
        if entry["supported"]:
            assert entry["passed"] == (entry["min_cosine"] >= MIN_COSINE and all(
                abs(change) <= checks["eer_tolerance"][name]
                for name, change in entry["eer_change"].items()))
    fastest = max((e["embeddings_per_second"], n) for n, e in results.items()
                  if e["passed"] and e["supported"])[1]
    encoder = SpeakerEncoder.from_hparams(source=folder)
    assert encoder.embedder.precision == fastest
    # Each precision keeps its own embedding cache.
    utterance = list(read_utterance_csvs([str(experiment / "data/test.csv")]).values())[:1]
    embed_utterances(encoder.embedder, utterance, experiment / "cache")
    name = f"embeddings_{encoder.embedder.fingerprint()}"
    expected = name if fastest == "fp32" else f"{name}_{fastest}"
    assert [p.stem for p in (experiment / "cache").iterdir()] == [expected]
