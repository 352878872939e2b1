"""Embedding maps, attention figures and their numbers (custom_modules.analysis.visualization)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import split_options, tiny_pretrained, write_corpus
from matplotlib.image import imread
from sklearn.metrics import silhouette_score

from custom_modules.analysis.visualization import (
    attention_on_silence,
    check_trained,
    insert_silence,
    silent_frame_mask,
    speaker_silhouette,
)
from custom_modules.config import load_recipe
from custom_modules.data.catalogue import read_utterance_csvs
from custom_modules.inference.embedding import embed_utterances
from custom_modules.inference.pretrained import load_embedder
from data_prep.folder_prepare import prepare_folder


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("visualization")
    write_corpus(root / "corpus", 8, 6, (1.5, 2.5))
    prepare_folder(str(root / "corpus"), str(root / "exp/data"), 4, 40,
                   split_options(split_ratio=(50, 50), valid_trials=10), num_workers=1)
    tiny_pretrained(root / "exp/pretrained", seen_data=True)
    tiny_pretrained(root / "untrained")
    return root


def check_png(path, width: int, height: int) -> None:
    """A readable PNG of the expected size whose pixels are not all alike."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(path)
    assert pixels.shape[:2] == (height, width)
    assert pixels[..., :3].std() > 0.05


def test_silhouette_separated_and_random():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 32))
    labels = [f"s{i}" for i in range(6) for _ in range(20)]
    clustered = np.repeat(centres, 20, axis=0) + 0.05 * rng.normal(size=(120, 32))
    assert speaker_silhouette(clustered, labels) > 0.8
    assert abs(speaker_silhouette(rng.normal(size=(120, 32)), labels)) < 0.1
    with pytest.raises(ValueError, match="needs 2 to"):
        speaker_silhouette(clustered, ["one"] * 120)


def test_silence_helpers():
    wave, start, stop = insert_silence(torch.ones(16000), 16000, 1.0)
    assert len(wave) == 32000 and (wave[start:stop] == 0).all() and (wave[:start] == 1).all()
    silent = silent_frame_mask(201, 8000, 24000, 160, 400)
    centres = np.arange(201) * 160
    assert silent.sum() == ((centres >= 8200) & (centres < 23800)).sum()
    uniform = np.full((4, 201), 1 / 201)
    assert attention_on_silence(uniform, silent)["ratio"] == pytest.approx(1.0)
    avoiding = uniform.copy()
    avoiding[:, silent] = 0
    avoiding /= avoiding.sum(axis=1, keepdims=True)
    assert attention_on_silence(avoiding, silent)["ratio"] == 0


def visualize(embedder, experiment, output_folder, **overrides):
    """The step ``hparams/visualize.yaml`` configures, with these values overridden."""
    argv = [f"--{key}={value}" for key, value in overrides.items()]
    hparams = load_recipe(["hparams/visualize.yaml", f"--experiment={experiment}",
                           f"--output_folder={output_folder}", *argv], ["visualization"]).hparams
    return hparams["visualization"](embedder)


def test_run_visualization_writes_plots_and_its_numbers(experiment):
    embedder = load_embedder(experiment / "exp/pretrained")
    data = experiment / "exp/data"
    out = experiment / "exp/plots"
    results = visualize(embedder, experiment / "exp", out, speakers=4,
                        utterances_per_speaker=6, perplexity=5.0)
    assert results["speakers"] == 4 and results["utterances"] == 24
    saved = json.loads((out / "visualization.json").read_text())
    assert saved == json.loads(json.dumps(results))
    # The silhouette is scikit-learn's, of the points the CSV lists, recomputed here from the
    # embeddings of those utterances.
    rows = [line.split(",") for line in (out / "tsne_held_out.csv").read_text().splitlines()[1:]]
    catalogue = read_utterance_csvs([str(data / "enrol.csv"), str(data / "test.csv")])
    embedded, _ = embed_utterances(embedder, [catalogue[r[0]] for r in rows])
    vectors = torch.stack([embedded[r[0]] for r in rows]).numpy()
    expected = silhouette_score(vectors, [r[1] for r in rows], metric="cosine")
    assert saved["silhouette_cosine"] == pytest.approx(float(expected), abs=1e-6)
    # 1 s of silence inserted into the middle of the chosen utterance: its share of frames.
    attention = saved["attention"]
    utterance = catalogue[attention["utterance"]]
    samples = utterance.stop - utterance.start + 16000
    frames = 1 + samples // 160
    silent = silent_frame_mask(frames, (utterance.stop - utterance.start) // 2,
                               (utterance.stop - utterance.start) // 2 + 16000, 160, 400)
    assert attention["time_share"] == pytest.approx(silent.mean())
    assert attention["ratio"] == pytest.approx(attention["attention_share"] / silent.mean())
    for name in ("tsne_held_out", "pca_held_out", "tsne_training_vs_held_out"):
        check_png(out / f"{name}.png", 960, 780)
    for name in ("attention", "attention_with_silence"):
        check_png(out / f"{name}.png", 1100, 1000)
    rows = (out / "tsne_held_out.csv").read_text().splitlines()
    assert rows[0] == "ID,spk_id,x,y" and len(rows) == 25


def test_clear_errors(experiment, tmp_path):
    with pytest.raises(ValueError, match="untrained"):
        check_trained(load_embedder(experiment / "untrained").embedding_model)
    embedder = load_embedder(experiment / "exp/pretrained")
    with pytest.raises(ValueError, match="at least 2 held-out speakers"):
        visualize(embedder, experiment / "exp", tmp_path, speakers=1, perplexity=2.0)
    with pytest.raises(ValueError, match="perplexity 30"):
        visualize(embedder, experiment / "exp", tmp_path, speakers=2, utterances_per_speaker=3,
                  perplexity=30.0)
    with pytest.raises(ValueError, match="nope.wav"):
        visualize(embedder, experiment / "exp", tmp_path, perplexity=3.0,
                  attention_utterance="nope.wav")


def test_script(experiment):
    done = subprocess.run([sys.executable, "recipes/visualize.py", "hparams/visualize.yaml",
                           f"--experiment={experiment / 'exp'}", "--perplexity=5.0"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "silhouette (cosine)" in done.stdout and "inserted silence" in done.stdout
    untrained = subprocess.run([sys.executable, "recipes/visualize.py", "hparams/visualize.yaml",
                                f"--experiment={experiment / 'exp'}",
                                f"--pretrained_path={experiment / 'untrained'}"],
                               capture_output=True, text=True, check=False)
    assert untrained.returncode != 0
    assert untrained.stderr.strip().splitlines()[-1].startswith("error: the model is untrained")
