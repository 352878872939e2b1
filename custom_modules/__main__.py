"""Command line: ``python -m custom_modules {embed,verify,enroll,identify,export} --help``."""

import argparse
from pathlib import Path

import torch

from custom_modules.errors import InputError, one_line_errors
from custom_modules.inference.export import check_onnx, export_onnx, export_torchscript
from custom_modules.interface.encoder import SpeakerEncoder


def _encoder(args: argparse.Namespace) -> SpeakerEncoder:
    return SpeakerEncoder.from_hparams(args.model, savedir=args.store)


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


def verify(args: argparse.Namespace) -> None:
    score, same = _encoder(args).verify_files(args.first, args.second, args.threshold)
    print(f"score {score:.4f}: {'same speaker' if same else 'different speakers'}")


def enroll(args: argparse.Namespace) -> None:
    encoder = _encoder(args)
    encoder.enroll(args.name, args.files)
    print(f"enrolled {args.name!r} from {len(args.files)} recordings in {encoder.store}")


def identify(args: argparse.Namespace) -> None:
    for name, score in _encoder(args).identify(args.file, args.top_k):
        print(f"{score:8.4f}  {name}")


def export(args: argparse.Namespace) -> None:
    if not args.onnx and not args.torchscript:
        raise InputError("export: give --onnx FILE, --torchscript FILE or both")
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

    def command(name: str, function, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--model", required=True, help="pretrained folder")
        sub.add_argument("--store", help="folder of the enrolment store (default: --model)")
        sub.set_defaults(function=function)
        return sub

    sub = command("embed", embed, "embed audio files into a .pt file {path: embedding}")
    sub.add_argument("files", nargs="*")
    sub.add_argument("--list", help="text file with one audio path per line")
    sub.add_argument("--output", default="embeddings.pt")
    sub = command("verify", verify, "score two files and decide if they share a speaker")
    sub.add_argument("first")
    sub.add_argument("second")
    sub.add_argument("--threshold", type=float, help="default: the model's saved threshold")
    sub = command("enroll", enroll, "enrol a speaker from one or more recordings")
    sub.add_argument("--name", required=True)
    sub.add_argument("files", nargs="+")
    sub = command("identify", identify, "rank the enrolled speakers for a recording")
    sub.add_argument("file")
    sub.add_argument("--top-k", type=int, default=5)
    sub = command("export", export, "export to ONNX (checked in onnxruntime) / TorchScript")
    sub.add_argument("--onnx", help="output .onnx file")
    sub.add_argument("--torchscript", help="output .pt file")
    return main


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    with one_line_errors():
        args.function(args)


if __name__ == "__main__":
    main()
