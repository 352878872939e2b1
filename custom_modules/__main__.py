"""Command line: ``python -m custom_modules {embed,verify,enrol,identify,speakers,
remove-recording,calibrate,info,diarize,export,sidecars} --help``."""

import argparse
from pathlib import Path

import torch

from custom_modules.diarization.rttm import write_json, write_rttm
from custom_modules.errors import InputError, one_line_errors
from custom_modules.evaluation.precision_check import check_lines
from custom_modules.files import within
from custom_modules.inference.export import check_onnx, export_onnx, export_torchscript
from custom_modules.inference.precision import CHECKS, read_checks
from custom_modules.inference.pretrained import load_embedder
from custom_modules.interface.encoder import SpeakerEncoder
from custom_modules.scoring.backend import describe
from custom_modules.sidecars import compare_sidecars, drop_sidecar, list_sidecars, read_sidecar


def _encoder(args: argparse.Namespace) -> SpeakerEncoder:
    """The model with the options this command takes (the others are not on its parser)."""
    off = getattr(args, "no_speech_detection", False)
    return SpeakerEncoder.from_hparams(args.model, savedir=getattr(args, "store", None),
                                       run_opts={"device": getattr(args, "device", "cpu")},
                                       speech_detection=False if off else None,
                                       precision=getattr(args, "precision", "fp32"),
                                       sidecars=getattr(args, "sidecar", None))


def embed(args: argparse.Namespace) -> None:
    files = list(args.files)
    if args.list:
        files += [line.strip() for line in Path(args.list).read_text().splitlines()
                  if line.strip()]
    if not files:
        raise InputError("no audio files given (name them, or give --list)")
    encoder = _encoder(args)
    torch.save({f: encoder.encode_file(f) for f in files}, args.output)
    print(f"{len(files)} embeddings -> {args.output}")


def _verdict(verdict) -> str:
    calibrated = "" if verdict.llr is None else (
        f", LLR {verdict.llr:+.2f}, P(same) {verdict.probability:.3f} at prior "
        f"{verdict.prior:g}")
    return (f"score {verdict.score:+.4f}{calibrated}: "
            f"{'same speaker' if verdict.same else 'different speakers'} at "
            f"{verdict.operating_point} (threshold {verdict.threshold:+.4f})")


def _shown(name: str) -> str:
    """A name as printed: as it is when every character is printable, else Python's quoted
    form, so that a name with a newline or a terminal escape cannot forge an output line."""
    return name if name.isprintable() else repr(name)


def verify(args: argparse.Namespace) -> None:
    print(_verdict(_encoder(args).verify_files(args.first, args.second, args.operating_point,
                                               args.threshold, args.prior)))


def enrol(args: argparse.Namespace) -> None:
    encoder = _encoder(args)
    ids = encoder.enrol(args.name, args.files)
    count = next(s.recordings for s in encoder.enrolments.speakers() if s.name == args.name)
    print(f"enrolled {args.name!r}: {len(ids)} recordings added (ids {', '.join(map(str, ids))}"
          f"), {count} in all, in {encoder.database}")


def speakers(args: argparse.Namespace) -> None:
    database = _encoder(args).enrolments
    if args.action == "list":
        if args.names:
            raise InputError("speakers list takes no names")
        for speaker in database.speakers():
            print(f"{_shown(speaker.name)}: {speaker.recordings} recordings, "
                  f"{speaker.speech_seconds:.1f} s embedded")
            for recording in database.recordings(speaker.name) if args.recordings else []:
                print(f"    {recording.id:>5}  {_shown(recording.file)}  "
                      f"{recording.duration:.1f} s, "
                      f"{recording.speech_seconds:.1f} s embedded")
    elif args.action == "remove":
        if len(args.names) != 1:
            raise InputError("speakers remove takes one name (one recording: remove-recording "
                             "ID)")
        print(f"removed {args.names[0]!r} and its {database.remove_speaker(args.names[0])} "
              f"recordings")
    elif len(args.names) != 2:
        raise InputError("speakers rename takes the old name and the new one")
    else:
        database.rename(*args.names)
        print(f"renamed {args.names[0]!r} to {args.names[1]!r}")


def remove_recording(args: argparse.Namespace) -> None:
    _encoder(args).enrolments.remove_recording(args.id)
    print(f"removed recording {args.id}")


def identify(args: argparse.Namespace) -> None:
    found = _encoder(args).identify(args.file, args.top_k, args.operating_point,
                                    args.threshold)
    for name, verdict in found.candidates:
        print(f"{verdict.score:+8.4f}  {'accepted' if verdict.same else 'rejected'}  "
              f"{_shown(name)}")
    first = found.candidates[0].verdict
    speaker = "unknown" if found.speaker is None else _shown(found.speaker)
    print(f"speaker: {speaker} (at {first.operating_point}, threshold "
          f"{first.threshold:+.4f})")


def calibrate(args: argparse.Namespace) -> None:
    encoder = _encoder(args)
    encoder.calibrate(args.trials, args.to, args.audio_folder, args.far)
    print(describe(encoder.backend))
    print(f"back-end sidecar: {read_sidecar(args.to).path} (use it with --sidecar {args.to})")


def info(args: argparse.Namespace) -> None:
    encoder = _encoder(args)
    config = encoder.embedder.embedding_model.config
    print(f"{args.model}: ECAPA-TDNN channels {config['channels']}, {config['lin_neurons']}-d "
          f"embeddings, {encoder.embedder.sample_rate} Hz; precision {encoder.embedder.precision}"
          f" (asked: {args.precision})")
    state = encoder.state
    for kind, folder in state._asdict().items():
        if kind != "folder" and folder != state.folder:
            print(f"{kind}: sidecar {folder}")
    checks = within(state.precisions, CHECKS)
    if checks.is_file():
        print("\n".join(check_lines(read_checks(checks))))
    print(describe(encoder.backend))
    for number, earlier in enumerate(encoder.backend.history):
        print(f"  earlier calibration {number}: {earlier.fitted_on} ({earlier.fitted} UTC)")


def sidecars(args: argparse.Namespace) -> None:
    if args.action == "list":
        if len(args.paths) != 1:
            raise InputError("sidecars list takes one store folder")
        model = None if args.model is None else load_embedder(args.model).fingerprint()
        for sidecar in list_sidecars(args.paths[0]):
            fits = "" if model is None else \
                ("  (this model)" if sidecar.model == model else "  (another model)")
            print(f"{_shown(sidecar.name)}/v{sidecar.version}  {sidecar.kind:<11} "
                  f"{sidecar.made}  {_shown(sidecar.made_by)}{fits}")
    elif args.action == "compare":
        if len(args.paths) != 2:
            raise InputError("sidecars compare takes two sidecars")
        print("\n".join(compare_sidecars(*args.paths)) or "the same")
    else:
        if len(args.paths) != 1:
            raise InputError("sidecars drop takes one sidecar (a name, or name/vN)")
        for version in drop_sidecar(args.paths[0]):
            print(f"removed {version}")


def diarize(args: argparse.Namespace) -> None:
    found = _encoder(args).diarize(args.file, args.num_speakers, args.name_speakers,
                                   args.operating_point)
    for segment in found:
        print(f"{segment.start:9.2f} {segment.end:9.2f}  {_shown(segment.speaker)}")
    recording = Path(args.file).stem
    if args.rttm:
        write_rttm(args.rttm, recording, found)
    if args.json:
        write_json(args.json, recording, found)
    print(f"{len({s.speaker for s in found})} speakers, {len(found)} segments"
          if found else f"no speech found in {args.file}")


def export(args: argparse.Namespace) -> None:
    if not args.onnx and not args.torchscript:
        raise InputError("export: give --onnx FILE, --torchscript FILE or both")
    if args.precision == "auto":   # the exact graph: where it runs decides its precision
        args.precision = "fp32"
    embedder = _encoder(args).embedder
    if args.torchscript:
        print(f"TorchScript -> {export_torchscript(embedder, args.torchscript)}")
    if args.onnx:
        path = export_onnx(embedder, args.onnx)
        rate = embedder.sample_rate
        wavs = 0.1 * torch.randn(3, 3 * rate, generator=torch.Generator().manual_seed(1))
        cosine = check_onnx(embedder, path, wavs, torch.tensor([3 * rate, 2 * rate, rate]))
        print(f"ONNX -> {path} (onnxruntime vs PyTorch: lowest cosine {cosine:.6f})")


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m custom_modules",
                                   description="Speaker embeddings with a pretrained folder.")
    commands = main.add_subparsers(dest="command", required=True)

    def command(name: str, function, help_text: str, *options: str
                ) -> argparse.ArgumentParser:
        """A command taking --model and the ``options`` it uses: store, speech, precision,
        device, sidecar."""
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--model", required=True, help="pretrained folder")
        if "store" in options:
            sub.add_argument("--store", help="folder of the enrolment database, "
                                             "enrolments.sqlite (default: one per model in "
                                             "the user's data folder, $ECAPA_SPEAKER_DATA; "
                                             "never the model folder)")
        if "speech" in options:
            sub.add_argument("--no-speech-detection", action="store_true",
                             help="embed whole files (default: their speech only, unless the "
                                  "model's back-end was fitted on whole files); whether there "
                                  "is speech at all is checked either way")
        if "precision" in options:
            sub.add_argument("--precision", default="auto",
                             help="fp32, fp32-fast, bf16, int8 (CPU), fp16 (CUDA) or auto "
                                  "(default: the fastest that passed its accuracy check for "
                                  "this model on this device, else fp32)")
        if "device" in options:
            sub.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1 ...")
        if "sidecar" in options:
            sub.add_argument("--sidecar", action="append",
                             help="state tuned for this model after its export (a back-end, "
                                  "a precision check, diarization settings), used instead of "
                                  "the folder's; repeat for several kinds")
        sub.set_defaults(function=function)
        return sub

    embedding = ("speech", "precision", "device", "sidecar")
    sub = command("embed", embed, "embed audio files into a .pt file {path: embedding}",
                  *embedding)
    sub.add_argument("files", nargs="*")
    sub.add_argument("--list", help="text file with one audio path per line")
    sub.add_argument("--output", default="embeddings.pt")
    sub = command("verify", verify, "score two files and decide if they share a speaker",
                  *embedding)
    sub.add_argument("first")
    sub.add_argument("second")
    sub.add_argument("--operating-point", help="eer, far_1%%, ... (default: the model's)")
    sub.add_argument("--threshold", type=float, help="decide at this score instead")
    sub.add_argument("--prior", type=float, help="probability of same speaker given at this "
                                                 "prior (default: the model's)")
    sub = command("enrol", enrol, "enrol a speaker from one or more recordings", "store",
                  *embedding)
    sub.add_argument("--name", required=True)
    sub.add_argument("files", nargs="+")
    sub = command("identify", identify, "rank the enrolled speakers for a recording", "store",
                  *embedding)
    sub.add_argument("file")
    sub.add_argument("--top-k", type=int, default=5)
    sub.add_argument("--operating-point", help="eer, far_1%%, ... (default: the model's)")
    sub.add_argument("--threshold", type=float, help="accept at this score instead")
    sub = command("calibrate", calibrate, "refit the calibration and operating points on your "
                                          "labelled pairs, as a back-end sidecar (the model "
                                          "folder is not written)", *embedding)
    sub.add_argument("--trials", required=True,
                     help="lines 'label file_a file_b', 1 same speaker, 0 not")
    sub.add_argument("--to", required=True,
                     help="the sidecar to write (a folder; an existing one gets a new version)")
    sub.add_argument("--audio-folder", help="the trial files are relative to it")
    sub.add_argument("--far", type=float, nargs="+",
                     help="target false-accept rates (default: the current ones)")
    sub = command("info", info, "the model, its scoring, calibration and operating points",
                  "precision", "device", "sidecar")
    sub = command("speakers", speakers, "list, remove or rename enrolled speakers", "store")
    sub.add_argument("action", choices=("list", "remove", "rename"))
    sub.add_argument("names", nargs="*", help="remove: NAME; rename: OLD NEW")
    sub.add_argument("--recordings", action="store_true", help="list: each recording too")
    sub = command("remove-recording", remove_recording, "remove one enrolled recording by id",
                  "store")
    sub.add_argument("id", type=int)
    sub = command("diarize", diarize, "who spoke when in a recording (segments, RTTM, JSON)",
                  "store", "precision", "device", "sidecar")
    sub.add_argument("file")
    sub.add_argument("--num-speakers", type=int, help="default: estimated")
    sub.add_argument("--name-speakers", action="store_true",
                     help="name the speakers after the enrolled ones they match")
    sub.add_argument("--operating-point", help="for --name-speakers (default: the model's)")
    sub.add_argument("--rttm", help="write the segments as RTTM")
    sub.add_argument("--json", help="write the segments as JSON")
    sub = command("export", export, "export to ONNX (checked in onnxruntime) / TorchScript; "
                                    "auto: the exact fp32 graph", "precision")
    sub.add_argument("--onnx", help="output .onnx file")
    sub.add_argument("--torchscript", help="output .pt file")
    sub = commands.add_parser("sidecars", help="list, compare or drop sidecars (state tuned "
                                               "for a model after its export)")
    sub.add_argument("action", choices=("list", "compare", "drop"))
    sub.add_argument("paths", nargs="+", help="list: STORE; compare: SIDECAR SIDECAR; drop: "
                                              "SIDECAR (a name, or name/vN)")
    sub.add_argument("--model", help="list: mark the sidecars made for this model folder")
    sub.set_defaults(function=sidecars)
    return main


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    with one_line_errors():
        args.function(args)


if __name__ == "__main__":
    main()
