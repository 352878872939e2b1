"""Print the demo's summary (the last step of ``make demo``), also written to
``<output_folder>/summary.txt``.

    python recipes/demo_summary.py hparams/demo_lm.yaml

The real-speech block first (SpeechBrain's VoxCeleb model on real recordings), then what was
generated and trained, EER and minDCF on the standard and hard trial lists for every scoring
variant, the verdict of the primary variant (named in ``hparams/demo_verify.yaml``) against
``demo_targets`` (``model``: what ``SpeakerEncoder`` gives), the identification report, where
the plots and the pretrained folder are, and the lines that use the model. It only reads what
the earlier steps wrote (``real_speech/``, ``corpus_report.json``,
``verification/metrics.json``, ``plots/visualization.json``, ``identification/report.json``,
``diarization/report.json``, the folder's ``backend.json``, and the stage times ``make demo``
wrote to ``stage_times.tsv``), so it can be run again at any time. ``--publish_to=README.md``
(as ``make demo`` runs it) also writes it into that document's summary block. Demo-only, so it
lives here rather than in the library.
"""

import json
import sys
from pathlib import Path

from custom_modules.config import load_recipe
from custom_modules.errors import InputError, one_line_errors
from custom_modules.evaluation.verification import summary_table
from custom_modules.files import read_utf8, write_atomic
from custom_modules.scoring.backend import BACKEND_JSON
from custom_modules.training.schedules import saved_plan

ABOUT_THE_MODEL = (
    "What this model is: a demonstration of the training recipe, trained on synthetic voices",
    "only (Debian's speech synthesis). It is not a model for real recordings: on the real test",
    "sets it gave EER 18.9 % (council) and 22.8 % (Fish Fillets), where SpeechBrain's VoxCeleb",
    "model above gives 1.71 % and 7.90 % (docs/BENCHMARKS.md). For real recordings use that",
    "model (exps/demo/real_speech/pretrained with its back-end sidecar), or train on VoxCeleb",
    "(hparams/ecapa.yaml).",
)
KEYS = ("output_folder", "base_folder", "train_log", "corpus_folder", "pretrained_folder",
        "demo_targets", "demo_der_target", "publish_to")
BLOCK = ("<!-- demo-summary:begin -->", "<!-- demo-summary:end -->")


def demo_summary(output_folder: str, base_folder: str, train_log: str, corpus_folder: str,
                 pretrained_folder: str, targets: dict[str, float], der_target: float) -> str:
    """The summary as text (also written to ``<output_folder>/summary.txt``). The other steps
    of ``make demo`` wrote ``real_speech/``, ``verification/`` and ``plots/`` into the same
    output folder; the first training stage wrote its log and checkpoints into
    ``base_folder``, the second its log into ``train_log``. ``targets``: the EER % per trial
    list, ``der_target``: the DER % of the generated conversations."""
    folder = Path(output_folder)
    corpus = read_json(Path(corpus_folder) / "corpus_report.json")
    metrics = read_json(folder / "verification" / "metrics.json")
    plots = read_json(folder / "plots" / "visualization.json")
    pretrained = Path(pretrained_folder)
    engines = ", ".join(f"{engine} {count}" for engine, count in
                        sorted(corpus["voices_by_engine"].items(), key=lambda kv: -kv[1]))
    lines = [*stage_times(folder / "stage_times.tsv"), *real_speech_lines(folder / "real_speech"),
             "Synthetic voices: the training recipe's demonstration (a model trained here).",
             f"Demo corpus: {corpus['voices']} voices ({engines}), {corpus['utterances']} "
             f"utterances; {corpus['test_voices']} voices held out for the trials."]
    lines += training_lines(Path(base_folder) / "train_log.txt", Path(train_log),
                            saved_plan(str(Path(base_folder) / "save")))
    lines += ["", summary_table(metrics), ""]
    primary = metrics["primary_variant"]
    scoring = primary if primary != "model" else \
        f"SpeakerEncoder's scoring, the model's {backend_variant(pretrained)} back-end"
    for name, target in targets.items():
        if name in metrics["lists"]:
            eer = metrics["lists"][name]["variants"][primary]["eer"]
            verdict = "met" if eer < target else "NOT met"
            lines.append(f"Target EER < {target:g} % on the {name} list: {verdict} "
                         f"({scoring}: {eer:.2f} %).")
    identification = read_json(folder / "identification" / "report.json")
    strictest = list(identification["operating_points"].items())[-1]
    lines.append(f"Identification ({identification['enrolled_speakers']} held-out voices "
                 f"enrolled from {identification['enrol_files']} files, "
                 f"{identification['impostor_speakers']} never enrolled): top-1 "
                 f"{100 * identification['top1']:.1f} %, top-5 "
                 f"{100 * identification['top5']:.1f} %; open set at {strictest[0]}: "
                 f"{100 * strictest[1]['detection']:.1f} % identified, "
                 f"{100 * strictest[1]['false_alarm']:.1f} % false alarms.")
    diarization = read_json(folder / "diarization" / "report.json")
    estimated = diarization["estimated"]
    lines.append(f"Diarization ({diarization['test_recordings']} generated conversations of "
                 f"held-out voices, {diarization['test_seconds'] / 60:.0f} min): DER "
                 f"{estimated['der']:.2f} % (collar {diarization['collar']:g} s, overlap "
                 f"scored; missed {estimated['missed']:.2f}, false alarm "
                 f"{estimated['false_alarm']:.2f}, confusion {estimated['confusion']:.2f}), "
                 f"number of speakers exact on {100 * diarization['speaker_count_exact']:.0f} "
                 f"% of them, real-time factor {diarization['real_time_factor']:.3f}.")
    verdict = "met" if estimated["der"] < der_target else "NOT met"
    lines.append(f"Target DER < {der_target:g} % on the generated conversations: {verdict} "
                 f"({estimated['der']:.2f} %).")
    attention = plots["attention"]
    lines += [f"Held-out speakers' embeddings: silhouette (cosine) "
              f"{plots['silhouette_cosine']:.3f} over {plots['speakers']} speakers; attention "
              f"on inserted silence {attention['ratio']:.2f}x its share of time.",
              "",
              f"Plots: {folder / 'plots'}/ (tsne_held_out.png, attention.png, ...) and "
              f"{folder / 'verification'}/<list>/det.png, "
              f"{folder / 'identification'}/identification.png, "
              f"{folder / 'diarization'}/timeline.png",
              f"Pretrained model: {pretrained}/",
              *ABOUT_THE_MODEL,
              "Use it:",
              "    from custom_modules import SpeakerEncoder",
              f'    enc = SpeakerEncoder.from_hparams(source="{pretrained}")',
              '    embedding = enc.encode_file("a.wav")',
              '    verdict = enc.verify_files("a.wav", "b.wav")  # score, same, llr, ...']
    text = "\n".join(lines)
    (folder / "summary.txt").write_text(text + "\n", encoding="utf-8")
    return text


def real_speech_lines(folder: Path) -> list[str]:
    """The real-speech block (``make real-speech`` wrote ``folder``): SpeechBrain's VoxCeleb
    model with its back-end on the council's test members and pyannote.audio's sample; a
    line saying how to get it when the stage has not run."""
    if not folder.is_dir():
        return ["Real speech: not run (make real-speech).", ""]
    metrics = read_json(folder / "verification" / "council" / "metrics.json")
    standard = metrics["lists"]["standard"]
    model = standard["variants"][metrics["primary_variant"]]
    points = standard["operating_points"]
    accepts = ", ".join(f"{name} {100 * p['false_accept']:.2f} %" for name, p in points.items())
    rejects = " / ".join(f"{100 * p['false_reject']:.2f}" for p in points.values())
    identification = read_json(folder / "identification" / "council" / "report.json")
    strictest = list(identification["operating_points"].items())[-1]
    conversations = read_json(folder / "diarization" / "conversations" / "report.json")
    sample = read_json(folder / "diarization" / "pyannote_sample" / "report.json")
    counted = conversations["speaker_count_exact"]
    sets = read_json(folder / "data" / "sets" / "sets.json")
    return [
        "Real speech: SpeechBrain's spkrec-ecapa-voxceleb (VoxCeleb; every file's SHA-256 "
        f"checked), its back-end fitted on {len(sets['development']['speakers'])} council "
        f"members, reported on {len(sets['test_speakers'])} others.",
        f"  verification ({model['trials']} trials): EER {model['eer']:.2f} %, minDCF(0.01) "
        f"{model['min_dcf_0.01']:.3f}, Cllr {standard['calibrated']['cllr']:.3f}; false "
        f"accepts at {accepts} (false rejects {rejects} %)",
        f"  identification ({identification['enrolled_speakers']} members enrolled from "
        f"{identification['enrol_files']} files, {identification['impostor_speakers']} never "
        f"enrolled): top-1 {100 * identification['top1']:.1f} %; open set at {strictest[0]}: "
        f"{100 * strictest[1]['detection']:.1f} % identified, "
        f"{100 * strictest[1]['false_alarm']:.1f} % false alarms",
        f"  diarization ({conversations['test_recordings']} conversations stitched from the "
        f"test members, {conversations['test_seconds'] / 60:.0f} min, the folder's shipped "
        f"settings): DER {conversations['estimated']['der']:.2f} %, number of speakers exact "
        f"on {100 * counted:.0f} %; pyannote.audio's sample: DER "
        f"{sample['estimated']['der']:.2f} %",
        f"  timeline: {folder / 'diarization' / 'conversations' / 'timeline.png'}",
        f"  model: {folder / 'pretrained'}/ with the back-end sidecar "
        f"{folder / 'sidecars' / 'council_backend'}",
        ""]


def training_lines(first_stage: Path, second_stage: Path, first_plan: dict | None
                   ) -> list[str]:
    """The epochs of both training stages (of how many, when the first stage's time budget
    stopped it earlier: ``first_plan``, its epoch counter's state) and the last epoch's log
    line (none for a stage without its log)."""
    first, second = (log.read_text(encoding="utf-8").strip().splitlines() if log.is_file()
                     else [] for log in (first_stage, second_stage))
    if not first + second:
        return []
    cut = ""
    if first_plan is not None and first_plan["planned"] < first_plan["limit"]:
        cut = f" of {first_plan['limit']} (the {first_plan['max_seconds'] / 60:g}-minute budget)"
    stages = " + ".join(f"{len(epochs)} {kind}epoch{'s' * (len(epochs) != 1)}"
                        f"{cut * (kind == '')}"
                        for epochs, kind in
                        ((first, ""), (second, "large-margin ")) if epochs)
    return [f"Training: {stages}; last: {(first + second)[-1]}"]


def stage_times(path: Path) -> list[str]:
    """The line of each stage's wall-clock minutes that ``make demo`` measured (none when the
    steps were run by hand, without the file)."""
    if not path.is_file():
        return []
    minutes = {name: seconds / 60 for name, seconds in read_stage_times(path).items()}
    stages = ", ".join(f"{name} {value:.1f}" for name, value in minutes.items())
    return [f"make demo took {sum(minutes.values()):.1f} min (wall clock; {stages}).", ""]


def read_stage_times(path: Path) -> dict[str, int]:
    """Each stage's wall-clock seconds from ``make demo``'s ``stage_times.tsv``."""
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    try:
        return {name: int(seconds) for name, seconds in rows}
    except ValueError:
        raise InputError(f"{path}: not a table of stage names and seconds") from None


def backend_variant(pretrained: Path) -> str:
    """The scoring variant of the back-end saved in a pretrained folder."""
    return read_json(pretrained / BACKEND_JSON)["variant"]


def publish(text: str, document: Path) -> None:
    """Put the summary ``text`` between the ``BLOCK`` markers of ``document`` (the README), so
    that what it shows is what the last ``make demo`` printed, never a hand-copied run."""
    page = read_utf8(document)
    begin, end = page.find(BLOCK[0]), page.find(BLOCK[1])
    if begin < 0 or end < begin:
        raise InputError(f"{document}: no {BLOCK[0]} ... {BLOCK[1]} block to write into")
    block = f"{BLOCK[0]}\n```text\n{text}\n```\n"
    write_atomic(document, page[:begin] + block + page[end:])


def read_json(path: Path) -> dict:
    """A file the demo's steps wrote; one-line errors when it is missing or broken."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: not found; has the demo run (make demo)?") from None
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error.msg})") from None


if __name__ == "__main__":
    with one_line_errors():
        hparams = load_recipe(sys.argv[1:], KEYS).hparams
        summary = demo_summary(hparams["output_folder"], hparams["base_folder"],
                               hparams["train_log"], hparams["corpus_folder"],
                               hparams["pretrained_folder"], hparams["demo_targets"],
                               hparams["demo_der_target"])
        if hparams["publish_to"] is not None:
            publish(summary, Path(hparams["publish_to"]))
    print(summary)
