"""Systems x real test sets: EER, minDCF(0.01), Cllr and the actual false accepts / rejects at
the model folder's operating points, on the test speakers of the real-speech sets.

    python -m benchmarks.real_speech_table [--sets exps/real_speech/sets] \
        [--model exps/spkrec-ecapa-voxceleb/pretrained] \
        [--backend exps/spkrec-ecapa-voxceleb/sidecars/council_backend] \
        [--demo exps/demo/pretrained] [--demo-only]

Systems, each embedding every test piece once:

- ``speechbrain``: SpeechBrain's ``EncoderClassifier`` on the same published weights (files
  taken from the same verified source as the import), plain cosine: the anchor;
- ``ours``: our pretrained folder, each file embedded alone as ``SpeakerEncoder.encode_file``
  does (fp32), plain cosine; its embeddings are compared with the anchor's file by file
  (parity), and so are those of the recipes' padded batches;
- ``ours+backend``: the back-end sidecar fitted on the development speakers
  (``hparams/real_speech_backend.yaml``: score normalisation, calibration, operating points)
  with speech detection on, as ``SpeakerEncoder`` scores; ``ours+backend, no VAD``:
  the same back-end on whole files;
- ``resemblyzer``: Resemblyzer's GE2E encoder as its own package runs it, cosine (a peer;
  ``benchmarks.resemblyzer_peer``);
- ``demo``: the synthetic-voice demo model's folder with its own back-end, when it exists;
- ``mfcc``: mean and standard deviation of 20 MFCCs per file, cosine (a floor).

Every set's standard list is scored, and the pooled set is the union of the sets' standard
lists. Prints a Markdown table (for docs/BENCHMARKS.md) and writes it with the raw numbers
to ``exps/real_speech_table/``.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torchaudio

from benchmarks import resemblyzer_peer
from benchmarks.machine import describe
from custom_modules.audio import read_audio
from custom_modules.data.catalogue import read_utterance_csvs
from custom_modules.data.trials import read_trials, utterance_id
from custom_modules.evaluation.metrics import cllr, eer, min_dcf
from custom_modules.inference.embedding import embed_utterances
from custom_modules.inference.precision import with_precision
from custom_modules.inference.pretrained import load_embedder
from custom_modules.inference.speech import SpeechDetector
from custom_modules.interop.published import PublishedModel, verified_files
from custom_modules.scoring.backend import Scoring, has_backend, load_backend, rates_at
from custom_modules.sidecars import model_state

OUTPUT = Path("exps/real_speech_table")
COSINE = Scoring("cosine")


def test_sets(sets_folder: Path) -> dict[str, tuple[dict, list]]:
    """``name -> (catalogue, standard trials)`` of every test set under ``sets_folder``."""
    summary = json.loads((sets_folder / "sets.json").read_text())
    return {name: (read_utterance_csvs([str(sets_folder / name / "test.csv")]),
                   read_trials(sets_folder / name / "standard_trials.txt"))
            for name in summary["sets"]}


def speechbrain_embeddings(utterances: list, download_folder: Path) -> dict[str, torch.Tensor]:
    from speechbrain.inference.speaker import EncoderClassifier

    with tempfile.TemporaryDirectory() as staging:
        verified_files(PublishedModel.named("spkrec-ecapa-voxceleb"), Path(staging), None,
                       download_folder, use_hub=False)
        classifier = EncoderClassifier.from_hparams(
            source=staging, savedir=str(OUTPUT / "speechbrain_savedir"),
            overrides={"pretrained_path": staging})
        out = {}
        with torch.inference_mode():
            for u in utterances:
                wave = read_audio(u.wav).unsqueeze(0)
                out[u.id] = classifier.encode_batch(wave)[0, 0].clone()
    return out


def mfcc_embeddings(utterances: list) -> dict[str, torch.Tensor]:
    mfcc = torchaudio.transforms.MFCC(16000, n_mfcc=20, melkwargs={"n_fft": 400,
                                                                    "hop_length": 160,
                                                                    "n_mels": 40})
    out = {}
    for u in utterances:
        coefficients = mfcc(read_audio(u.wav))
        out[u.id] = torch.cat([coefficients.mean(dim=1), coefficients.std(dim=1)])
    return out


def trial_scores(vectors: dict[str, torch.Tensor], trials: list, scoring: Scoring
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores and labels of the trials whose both sides were embedded."""
    kept = [t for t in trials if utterance_id(t.enrol) in vectors
            and utterance_id(t.test) in vectors]
    ids = sorted({utterance_id(e) for t in kept for e in (t.enrol, t.test)})
    row = {i: n for n, i in enumerate(ids)}
    matrix = torch.stack([vectors[i].float() for i in ids])
    enrol = torch.tensor([row[utterance_id(t.enrol)] for t in kept])
    test = torch.tensor([row[utterance_id(t.test)] for t in kept])
    space = scoring.space(matrix)
    return scoring.scores(space, space, enrol, test), torch.tensor([t.label for t in kept])


def metrics(scores: torch.Tensor, labels: torch.Tensor, backend=None) -> dict:
    targets, nontargets = scores[labels == 1], scores[labels == 0]
    row = {"trials": len(labels), "eer": 100 * eer(targets, nontargets)[0],
           "min_dcf": min_dcf(targets, nontargets, p_target=0.01)[0]}
    if backend is not None and backend.decisions is not None:
        llr = backend.llr(scores)
        row["cllr"] = cllr(llr[labels == 1], llr[labels == 0])
        for name, point in backend.decisions.operating_points.items():
            actual = rates_at(point.threshold, targets, nontargets)
            row[f"{name} FA/FR"] = (f"{100 * actual.false_accept:.2f} / "
                                    f"{100 * actual.false_reject:.2f}")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=Path, default=Path("exps/real_speech/sets"))
    parser.add_argument("--model", type=Path,
                        default=Path("exps/spkrec-ecapa-voxceleb/pretrained"))
    parser.add_argument("--backend", type=Path,
                        default=Path("exps/spkrec-ecapa-voxceleb/sidecars/council_backend"),
                        help="the model's back-end sidecar")
    parser.add_argument("--demo", type=Path, default=Path("exps/demo/pretrained"))
    parser.add_argument("--downloads", type=Path, default=Path("exps/downloads"))
    parser.add_argument("--demo-only", action="store_true",
                        help="only the demo model's rows (the others take 14 minutes)")
    args = parser.parse_args()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    print(describe())
    sets = test_sets(args.sets)
    pieces = {u.id: u for catalogue, _ in sets.values() for u in catalogue.values()}
    utterances = sorted(pieces.values())
    cache = args.model.parent / "embeddings"   # the verification recipe's cache too
    speech = SpeechDetector()
    if args.demo_only:
        write_table({"demo model + its back-end": demo_system(args.demo, utterances, cache,
                                                              speech)}, sets, "demo")
        return
    embedder = load_embedder(args.model)
    backend = load_backend(model_state(args.model, [args.backend],
                                       embedder.fingerprint()).backend)
    started = time.perf_counter()
    systems: dict[str, tuple[dict, object, object]] = {}
    anchor = speechbrain_embeddings(utterances, args.downloads)
    seconds = {"speechbrain": time.perf_counter() - started}
    systems["speechbrain (EncoderClassifier, cosine)"] = (anchor, COSINE, None)
    started = time.perf_counter()
    with torch.inference_mode():   # each file alone, as SpeakerEncoder.encode_file embeds it
        ours = {u.id: embedder(read_audio(u.wav).unsqueeze(0))[0] for u in utterances}
    seconds["ours"] = time.perf_counter() - started
    batched, _ = embed_utterances(embedder, utterances, cache, skip_bad=True)
    parity = min(torch.nn.functional.cosine_similarity(ours[i], anchor[i], dim=0).item()
                 for i in ours)
    in_batches = min(torch.nn.functional.cosine_similarity(batched[i], anchor[i], dim=0).item()
                     for i in batched)
    systems["ours (cosine)"] = (ours, COSINE, None)
    fast = with_precision(embedder, "fp32-fast", args.model)
    with_vad, _ = embed_utterances(fast, utterances, cache, skip_bad=True, speech=speech)
    systems["ours + back-end (speech detection)"] = (with_vad, backend.scoring, backend)
    systems["ours + back-end, no speech detection"] = (batched, backend.scoring, backend)
    if has_backend(args.demo):
        systems["demo model + its back-end"] = demo_system(args.demo, utterances, cache, speech)
    started = time.perf_counter()
    systems["Resemblyzer (GE2E, cosine)"] = (resemblyzer_peer.embeddings(
        {u.id: u.wav for u in utterances}, Path("exps/peers/resemblyzer"), args.downloads),
        COSINE, None)
    seconds["resemblyzer"] = time.perf_counter() - started
    systems["MFCC mean+std (cosine)"] = (mfcc_embeddings(utterances), COSINE, None)
    table = write_table(systems, sets, "table")
    print(f"parity: lowest cosine ours vs EncoderClassifier over {len(ours)} files "
          f"{parity:.6f} (each file alone), {in_batches:.6f} (in the recipes' padded batches, "
          f"as verification embeds); embedding {len(utterances)} files one by one: "
          f"EncoderClassifier {seconds['speechbrain']:.0f} s, ours {seconds['ours']:.0f} s")
    (OUTPUT / "table.json").write_text(json.dumps({"rows": table, "parity": parity,
                                                   "parity_in_batches": in_batches,
                                                   "seconds": seconds}, indent=2))


def demo_system(folder: Path, utterances: list, cache: Path, speech: SpeechDetector) -> tuple:
    """The demo model's embeddings (speech detection on, as its interface embeds), its
    scoring and its back-end."""
    demo, _ = embed_utterances(load_embedder(folder), utterances, cache, skip_bad=True,
                               speech=speech)
    backend = load_backend(folder)
    return demo, backend.scoring, backend


def write_table(systems: dict, sets: dict, name: str) -> dict:
    """Print the Markdown table of ``systems`` on every set and the pooled one; write it to
    ``OUTPUT/<name>.md``; return its rows."""
    table = {}
    pooled = [t for _, trials in sets.values() for t in trials]
    for system, (vectors, scoring, decisions) in systems.items():
        for name, trials in [*((n, tr) for n, (_, tr) in sets.items()), ("pooled", pooled)]:
            scores, labels = trial_scores(vectors, trials, scoring)
            table[f"{system} | {name}"] = metrics(scores, labels, decisions)
    columns = ["trials", "eer", "min_dcf", "cllr", "eer FA/FR", "far_1% FA/FR",
               "far_0.1% FA/FR"]
    lines = ["| system | set | " + " | ".join(columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for key, row in table.items():
        cells = [f"{row[c]:.2f}" if isinstance(row.get(c), float) and c == "eer"
                 else f"{row[c]:.3f}" if isinstance(row.get(c), float)
                 else str(row.get(c, "")) for c in columns]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    (OUTPUT / f"{name}.md").write_text(text + "\n")
    return table


if __name__ == "__main__":
    main()
