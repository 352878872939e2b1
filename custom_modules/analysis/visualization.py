"""What the model learned, in numbers and pictures: a t-SNE map of held-out speakers with its
silhouette score, and the attention of one utterance (pooling weights, SE gates) with a
silence sanity check.

The drawing is in ``custom_modules.analysis.plots``; ``run_visualization`` ties it together for
``recipes/visualize.py``.
"""

import csv
import json
import logging
import os
import random
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score

from custom_modules.analysis.plots import plot_attention, plot_embedding_map
from custom_modules.audio import read_audio
from custom_modules.data.catalogue import Utterance, by_speaker, read_utterance_csvs
from custom_modules.errors import InputError
from custom_modules.inference.embedding import embed_utterances
from custom_modules.models.embedder import Embedder

logger = logging.getLogger(__name__)


def speaker_silhouette(embeddings: np.ndarray, speakers: list[str]) -> float:
    """Silhouette score of the embeddings grouped by speaker, with cosine distance: near 1
    for tight, well separated speakers, near 0 for no structure.

    Example
    -------
    >>> points = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99]])
    >>> round(speaker_silhouette(points, ["a", "a", "b", "b"]), 2)
    0.99
    """
    if not 2 <= len(set(speakers)) < len(speakers):
        raise InputError(f"a silhouette score needs 2 to {len(speakers) - 1} speakers for "
                         f"{len(speakers)} embeddings, got {len(set(speakers))}")
    return float(silhouette_score(embeddings, speakers, metric="cosine"))


def choose_utterances(catalogue: dict[str, Utterance], speakers: int, per_speaker: int,
                      seed: int) -> list[Utterance]:
    """Up to ``speakers`` speakers (those with the most utterances, ties broken at random)
    and up to ``per_speaker`` random utterances of each, reproducibly for a ``seed``."""
    groups = by_speaker(list(catalogue.values()))
    rng = random.Random(seed)
    names = sorted(groups)
    rng.shuffle(names)
    names = sorted(names, key=lambda name: -min(len(groups[name]), per_speaker))[:speakers]
    chosen = []
    for name in sorted(names):
        utterances = sorted(groups[name], key=lambda u: u.id)
        chosen += rng.sample(utterances, min(per_speaker, len(utterances)))
    return chosen


def embedding_map(embeddings: np.ndarray, perplexity: float, seed: int,
                  method: str = "tsne") -> np.ndarray:
    """2-D coordinates of length-normalised embeddings by t-SNE (cosine) or PCA."""
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(unit)
    if len(unit) <= perplexity:
        raise InputError(f"t-SNE perplexity {perplexity} needs more than {perplexity} "
                         f"utterances, got {len(unit)}: lower the perplexity or add speakers")
    return TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="pca",
                random_state=seed).fit_transform(unit)


def check_trained(model: torch.nn.Module) -> None:
    """One-line ``InputError`` when every batch norm still holds its initial statistics
    (mean 0, variance 1): such a model has never seen data and its pictures mean nothing."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
             and m.running_mean is not None]
    if norms and all(bool((m.running_mean == 0).all() and (m.running_var == 1).all())
                     for m in norms):
        raise InputError("the model is untrained (its batch-norm statistics are still at their "
                         "initial values): give a trained pretrained folder or checkpoint")


def attention_maps(embedder: Embedder, waveform: torch.Tensor) -> dict[str, np.ndarray]:
    """Features, pooling weights ``(channels, frames)`` and SE gates ``(blocks, channels)``
    of one waveform ``(samples,)``."""
    model = embedder.embedding_model
    if not hasattr(model, "forward_with_attention"):
        raise InputError(f"{type(model).__name__} does not expose its attention; attention "
                         f"maps need custom_modules.models.ecapa.ECAPA_TDNN")
    device = embedder.device
    with torch.inference_mode():
        features = embedder.compute_features(waveform.to(device).unsqueeze(0))
        _, weights, gates = model.forward_with_attention(features)
    return {"features": features[0].cpu().numpy(), "weights": weights[0].cpu().numpy(),
            "gates": torch.stack([g[0] for g in gates]).cpu().numpy()}


def insert_silence(waveform: torch.Tensor, sample_rate: int, seconds: float
                   ) -> tuple[torch.Tensor, int, int]:
    """``waveform`` with ``seconds`` of digital silence inserted in the middle; also returns
    the first and last sample of the silence."""
    middle = len(waveform) // 2
    gap = round(seconds * sample_rate)
    silence = torch.zeros(gap, dtype=waveform.dtype)
    return torch.cat([waveform[:middle], silence, waveform[middle:]]), middle, middle + gap


def silent_frame_mask(frames: int, start: int, stop: int, hop: int, window: int) -> np.ndarray:
    """Frames (centred windows, ``hop`` apart) whose whole window lies in ``[start, stop)``."""
    centres = np.arange(frames) * hop
    return (centres - window // 2 >= start) & (centres + window // 2 < stop)


def attention_on_silence(weights: np.ndarray, silent: np.ndarray) -> dict[str, float]:
    """Share of the attention mass (averaged over channels) on silent frames, against
    their share of time; ``ratio`` below 1 means the model looks away from silence."""
    mass = float(weights[:, silent].sum(axis=1).mean())
    time_share = float(silent.mean())
    return {"attention_share": mass, "time_share": time_share, "ratio": mass / time_share}


def speaker_legend(path: str, columns: list[str]) -> dict[str, str]:
    """``{ID: "ID col1 col2 ..."}`` from a speaker CSV (e.g. the demo corpus's
    ``speakers.csv``: engine, voice, language, gender); a missing file or column is a
    one-line error.

    >>> import tempfile, pathlib
    >>> csv_path = pathlib.Path(tempfile.mkdtemp()) / "s.csv"
    >>> _ = csv_path.write_text("ID,engine,voice\\nid1,espeak,de+adam\\n")
    >>> speaker_legend(str(csv_path), ["engine", "voice"])
    {'id1': 'id1 espeak de+adam'}
    """
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        return {row["ID"]: " ".join([row["ID"], *(row[c] for c in columns)]) for row in rows}
    except OSError as error:
        raise InputError(f"{path}: cannot read it ({error.strerror})") from None
    except KeyError as error:
        raise InputError(f"{path}: no column {error}") from None


def run_visualization(embedder: Embedder, output_folder: str, test_csvs: list[str],
                      train_csv: str | None, speakers: int, utterances_per_speaker: int,
                      perplexity: float, seed: int, attention_utterance: str | None,
                      silence_seconds: float, cache_folder: str | None,
                      speaker_csv: str | None, legend_columns: list[str]) -> dict:
    """Draw the embedding maps and the attention figure into ``output_folder`` and write
    their numbers to ``visualization.json`` there; returns those numbers. The legend names a
    speaker by its ID and, with ``speaker_csv``, its ``legend_columns`` there. See
    ``hparams/visualize.yaml`` for the arguments."""
    check_trained(embedder.embedding_model)
    folder = Path(output_folder)
    folder.mkdir(parents=True, exist_ok=True)
    catalogue = read_utterance_csvs(test_csvs)
    groups = {"held-out": choose_utterances(catalogue, speakers, utterances_per_speaker, seed)}
    if train_csv is not None:
        groups["training"] = choose_utterances(read_utterance_csvs([train_csv]), speakers,
                                               utterances_per_speaker, seed)
    embedded, problems = embed_utterances(
        embedder, [u for group in groups.values() for u in group], cache_folder, skip_bad=True)
    for problem in problems:
        logger.warning("skipped: %s", problem)
    groups = {name: [u for u in group if u.id in embedded] for name, group in groups.items()}
    held_out = groups["held-out"]
    labels = [u.speaker for u in held_out]
    if len(set(labels)) < 2:
        raise InputError(f"t-SNE needs at least 2 held-out speakers, found {len(set(labels))} "
                         f"in {', '.join(test_csvs)}")
    vectors = torch.stack([embedded[u.id] for u in held_out]).numpy()
    silhouette = speaker_silhouette(vectors, labels)
    results = {"speakers": len(set(labels)), "utterances": len(labels),
               "silhouette_cosine": silhouette, "perplexity": perplexity, "seed": seed,
               "skipped": len(problems)}
    legend = speaker_legend(speaker_csv, legend_columns) if speaker_csv else {}
    shown = [legend.get(label, label) for label in labels]
    for method in ("tsne", "pca"):
        points = embedding_map(vectors, perplexity, seed, method)
        name = "t-SNE" if method == "tsne" else "PCA"
        plot_embedding_map(points, shown, folder / f"{method}_held_out.png",
                           f"{name} of {len(set(labels))} held-out speakers, "
                           f"silhouette (cosine) {silhouette:.3f}")
        _write_points(folder / f"{method}_held_out.csv", held_out, points)
    if train_csv is not None and groups["training"]:
        both = held_out + groups["training"]
        group_names = ["held-out"] * len(held_out) + ["training"] * len(groups["training"])
        points = embedding_map(torch.stack([embedded[u.id] for u in both]).numpy(),
                               perplexity, seed)
        plot_embedding_map(points, group_names, folder / "tsne_training_vs_held_out.png",
                           "t-SNE of training and held-out speakers")
    results["attention"] = _attention_figure(embedder, held_out, catalogue,
                                             attention_utterance, silence_seconds, folder)
    with open(folder / "visualization.json", "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)
    return results


def _attention_figure(embedder: Embedder, held_out: list[Utterance],
                      catalogue: dict[str, Utterance], chosen: str | None,
                      silence_seconds: float, folder: Path) -> dict:
    """The attention figure of one utterance (the first embedded held-out one, or ``chosen``:
    an ID of the test CSVs or a file), then the same with silence inserted."""
    if chosen is None:
        utterance = held_out[0]
    elif chosen in catalogue:
        utterance = catalogue[chosen]
    elif os.path.isfile(chosen):
        utterance = Utterance(Path(chosen).stem, chosen, speaker="unknown speaker")
    else:
        raise InputError(f"attention_utterance {chosen!r}: neither an utterance ID of the test "
                         f"CSVs nor an existing file")
    frontend = embedder.compute_features
    if not hasattr(frontend, "hop_samples"):
        raise InputError(f"{type(frontend).__name__} has no frame hop (hop_samples, "
                         f"win_samples): attention maps need custom_modules' MelFrontend")
    rate, hop = embedder.sample_rate, frontend.hop_samples
    waveform = read_audio(utterance.wav, rate, utterance.start, utterance.stop)
    title = f"{Path(utterance.wav).name} ({utterance.id}), speaker {utterance.speaker}"
    plot_attention(attention_maps(embedder, waveform), rate, hop,
                   folder / "attention.png", title)
    with_gap, start, stop = insert_silence(waveform, rate, silence_seconds)
    maps = attention_maps(embedder, with_gap)
    silent = silent_frame_mask(maps["weights"].shape[1], start, stop, hop, frontend.win_samples)
    check = attention_on_silence(maps["weights"], silent)
    logger.info("attention on %.1f s of inserted silence: %.1f %% of the mass on %.1f %% of the "
                "time (ratio %.2f)", silence_seconds, 100 * check["attention_share"],
                100 * check["time_share"], check["ratio"])
    plot_attention(maps, rate, hop, folder / "attention_with_silence.png",
                   f"{title}, {silence_seconds:g} s silence inserted: attention share "
                   f"{100 * check['attention_share']:.1f} % vs time share "
                   f"{100 * check['time_share']:.1f} %", silent=silent)
    return {"utterance": utterance.id, "wav": utterance.wav, "speaker": utterance.speaker,
            "silence_seconds": silence_seconds, **check}


def _write_points(path: Path, chosen: list[Utterance], points: np.ndarray) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("ID,spk_id,x,y\n")
        for utterance, (x, y) in zip(chosen, points, strict=True):
            handle.write(f"{utterance.id},{utterance.speaker},{x:.6f},{y:.6f}\n")
