"""Can Fish Fillets' minor roles serve as in-domain development speech for its test voices?

    python -m benchmarks.fillets_minor_roles [--sets exps/real_speech/sets] \
        [--model exps/spkrec-ecapa-voxceleb/pretrained] [--downloads exps/downloads]

The real-speech sets leave the minor roles of the Fish Fillets packages out (a role code does
not name one actor). This measures what they would give as an AS-norm cohort or as the mean
subtracted before scoring, on the test sets' standard lists (whole files, fp32, the same
embeddings as the real-speech table's "no speech detection" rows), and why they cannot be
used: a cohort of them at small top-k wrecks the Fish Fillets target trials, which is what a
cohort holding the test actors' own voices does (the main actors also voice minor roles).
Needs the packages unpacked by ``recipes/prepare_data.py hparams/real_speech.yaml``; about
4 minutes on 2 cores.
"""

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.machine import describe
from benchmarks.real_speech_table import COSINE, test_sets, trial_scores
from custom_modules.data.catalogue import Utterance
from custom_modules.evaluation.backend_fit import model_classifier
from custom_modules.evaluation.metrics import eer
from custom_modules.inference.embedding import embed_utterances
from custom_modules.inference.precision import with_precision
from custom_modules.inference.pretrained import load_embedder
from custom_modules.scoring.backend import Scoring
from data_prep.real_speech.fillets import LINE, SOUND


def minor_role_lines(downloads: Path) -> list[Utterance]:
    """Every line of the unpacked Czech and Dutch packages that is not a main voice's."""
    lines = []
    for path in sorted(downloads.glob(f"fillets-ng-data-*/{SOUND}/*/*/*.ogg")):
        if LINE.fullmatch(path.name) is None:
            name = f"{path.parent.name}/{path.parent.parent.name}/{path.stem}"
            lines.append(Utterance(name, str(path), 0, None, "minor", 0.0))
    return lines


def eers(vectors: dict, sets: dict, scoring: Scoring) -> list[float]:
    """EER % of each set's standard list, then of the pooled lists."""
    scored = [trial_scores(vectors, trials, scoring) for _, trials in sets.values()]
    scored.append((torch.cat([s for s, _ in scored]), torch.cat([lab for _, lab in scored])))
    return [100 * eer(s[lab == 1], s[lab == 0])[0] for s, lab in scored]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=Path, default=Path("exps/real_speech/sets"))
    parser.add_argument("--model", type=Path,
                        default=Path("exps/spkrec-ecapa-voxceleb/pretrained"))
    parser.add_argument("--downloads", type=Path, default=Path("exps/downloads"))
    args = parser.parse_args()
    print(describe())
    sets = test_sets(args.sets)
    embedder = with_precision(load_embedder(args.model), "fp32-fast", args.model)
    cache = args.model.parent / "embeddings"
    pieces = sorted({u for catalogue, _ in sets.values() for u in catalogue.values()})
    test, _ = embed_utterances(embedder, pieces, cache, skip_bad=True)
    minor, skipped = embed_utterances(embedder, minor_role_lines(args.downloads), cache,
                                      skip_bad=True, min_seconds=1.0)
    minor_rows = torch.stack(list(minor.values()))
    classifier = model_classifier(args.model)
    rows = {"cosine": (test, COSINE),
            "AS-norm, classifier rows (the folder's cohort)":
                (test, Scoring("as-norm", cohort=classifier, top_k=300))}
    for top_k in (50, 300):
        rows[f"AS-norm, minor-role lines, top-k {top_k}"] = (
            test, Scoring("as-norm", cohort=minor_rows, top_k=top_k))
    rows["AS-norm, classifier rows + minor-role lines"] = (test, Scoring(
        "as-norm", cohort=torch.cat([F.normalize(classifier, dim=1),
                                     F.normalize(minor_rows, dim=1)]), top_k=300))
    rows["minor-role mean subtracted, cosine"] = (test, Scoring("cosine",
                                                               mean=minor_rows.mean(dim=0)))
    print(f"{len(minor)} minor-role lines embedded ({len(skipped)} under 1 s left out)")
    print("| scoring | " + " | ".join(list(sets) + ["pooled"]) + " |")
    print("|---|" + "---|" * (len(sets) + 1))
    for name, (vectors, scoring) in rows.items():
        print(f"| {name} | " + " | ".join(f"{e:.2f}" for e in eers(vectors, sets, scoring))
              + " |")


if __name__ == "__main__":
    main()
