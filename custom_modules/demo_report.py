"""The summary printed at the end of the demo: what was generated and trained, EER and minDCF
on the standard and hard trial lists with and without AS-norm, where the plots and the
pretrained folder are, and the three lines that use the model.

It only reads what the steps wrote (``corpus_report.json``, ``verification/metrics.json``,
``plots/visualization.json``, the pretrained folder), so it can be run again at any time.

Example
-------
>>> import tempfile
>>> demo_summary(tempfile.mkdtemp())
Traceback (most recent call last):
...
ValueError: ...corpus/corpus_report.json: not found; has the demo run (make demo)?
"""

import json
from pathlib import Path

from custom_modules.verification import summary_table

TARGETS = {"standard": 3.0, "hard": 4.0}   # EER % the demo aims below, per trial list


def demo_summary(experiment: str, corpus_folder: str | None = None) -> str:
    """The demo's summary as text (also written to ``<experiment>/summary.txt``)."""
    folder = Path(experiment)
    corpus = _read_json(Path(corpus_folder) if corpus_folder else folder / "corpus",
                        "corpus_report.json")
    metrics = _read_json(folder / "verification", "metrics.json")
    plots = _read_json(folder / "plots", "visualization.json")
    pretrained = folder / "pretrained"
    engines = ", ".join(f"{engine} {count}" for engine, count in
                        sorted(corpus["voices_by_engine"].items(), key=lambda kv: -kv[1]))
    lines = [f"Demo corpus: {corpus['voices']} voices ({engines}), {corpus['utterances']} "
             f"utterances; {corpus['test_voices']} voices held out for the trials."]
    log = folder / "train_log.txt"
    epochs = log.read_text(encoding="utf-8").strip().splitlines() if log.is_file() else []
    if epochs:
        lines.append(f"Training: {len(epochs)} epochs; last: {epochs[-1]}")
    lines += ["", summary_table(metrics), ""]
    for name, target in TARGETS.items():
        if name in metrics:
            # The verdict is the last (fullest) scoring variant's, not the best of them.
            variant, final = [(v, m) for v, m in metrics[name].items() if "eer" in m][-1]
            verdict = "met" if final["eer"] < target else "NOT met"
            lines.append(f"Target EER < {target:g} % on the {name} list: {verdict} "
                         f"({variant} {final['eer']:.2f} %).")
    attention = plots["attention"]
    lines += [f"Held-out speakers' embeddings: silhouette (cosine) "
              f"{plots['silhouette_cosine']:.3f} over {plots['speakers']} speakers; attention "
              f"on inserted silence {attention['ratio']:.2f}x its share of time.",
              "",
              f"Plots: {folder / 'plots'}/ (tsne_held_out.png, attention.png, ...) and "
              f"{folder / 'verification'}/<list>/det.png",
              f"Pretrained model: {pretrained}/",
              "Use it:",
              "    from custom_modules import SpeakerEncoder",
              f'    enc = SpeakerEncoder.from_hparams(source="{pretrained}")',
              '    embedding = enc.encode_file("a.wav")']
    text = "\n".join(lines)
    (folder / "summary.txt").write_text(text + "\n", encoding="utf-8")
    return text


def _read_json(folder: Path, name: str) -> dict:
    path = folder / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: not found; has the demo run (make demo)?") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error.msg})") from None
