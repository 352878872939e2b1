"""ONNX / TorchScript export and the command line, on a tiny pretrained folder."""

import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch
from conftest import tiny_pretrained

from custom_modules.__main__ import main
from custom_modules.errors import InputError
from custom_modules.inference.export import check_onnx, export_onnx, export_torchscript
from custom_modules.inference.pretrained import load_embedder
from custom_modules.interface.encoder import SpeakerEncoder
from data_prep.synthetic_audio import speech_like


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    tiny_pretrained(root / "pretrained", threshold=0.5)
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        soundfile.write(root / f"{name}.wav", speech_like(2.0, 16000, rng), 16000)
    return root


def test_onnx_and_torchscript_match_pytorch_with_dynamic_axes(folder, tmp_path):
    embedder = load_embedder(folder / "pretrained")
    rng = np.random.default_rng(1)
    waves = [speech_like(s, 16000, rng) for s in (3.0, 1.2, 2.5)]
    wavs = torch.zeros(3, 48000)
    for row, wave in enumerate(waves):
        wavs[row, :len(wave)] = torch.from_numpy(wave)
    samples = torch.tensor([len(w) for w in waves])
    assert check_onnx(embedder, export_onnx(embedder, tmp_path / "m.onnx"), wavs,
                      samples) >= 0.9999
    traced = torch.jit.load(str(export_torchscript(embedder, tmp_path / "m.pt")))
    with torch.no_grad():
        # Each row as if alone: what verification computes for that utterance.
        for row, wave in enumerate(waves):
            alone = embedder(torch.from_numpy(wave).float().unsqueeze(0))[0]
            assert torch.allclose(traced(wavs, samples)[row], alone, atol=1e-5)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "custom_modules", *args],
                          capture_output=True, text=True, check=False)


def test_command_line(folder, tmp_path):
    model = str(folder / "pretrained")
    a, b = str(folder / "a.wav"), str(folder / "b.wav")
    m = ["--model", model, "--no-speech-detection"]    # the audio is synthetic, not speech
    # Each command takes the options it uses, and only those.
    embedding = {"--no-speech-detection", "--precision", "--device", "--sidecar"}
    takes = {"embed": embedding, "verify": embedding, "enrol": {"--store", *embedding},
             "identify": {"--store", *embedding}, "calibrate": embedding,
             "info": {"--precision", "--device", "--sidecar"}, "speakers": {"--store"},
             "remove-recording": {"--store"},
             "diarize": {"--store", "--precision", "--device", "--sidecar"},
             "export": {"--precision"}}
    optional = {"--store", "--no-speech-detection", "--precision", "--device", "--sidecar"}
    for command, options in takes.items():
        shown = set(re.findall(r"--[a-z-]+", run(command, "--help").stdout))
        assert shown & optional == options, command
    refused = run("speakers", "list", "--model", model, "--precision", "fp16")
    assert refused.returncode == 2 and "unrecognized arguments: --precision fp16" in \
        refused.stderr
    done = run("embed", *m, a, b, "--output", str(tmp_path / "e.pt"))
    assert done.returncode == 0, done.stderr
    assert set(torch.load(tmp_path / "e.pt", weights_only=True)) == {a, b}
    assert "score" in run("verify", *m, a, b).stdout
    store = str(tmp_path / "store")
    assert run("enrol", *m, "--store", store, "--name", "x", a).returncode == 0
    assert run("identify", *m, "--store", store, b).stdout.split()[2] == "x"
    nothing = run("export", "--model", model)
    assert nothing.stderr.strip() == "error: export: give --onnx FILE, --torchscript FILE or both"
    done = run("export", "--model", model, "--onnx", str(tmp_path / "m.onnx"))
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.split("lowest cosine")[1].strip(" )\n")) >= 0.9999
    failed = run("verify", *m, a, str(tmp_path / "missing.wav"))
    assert failed.returncode != 0
    assert failed.stderr.strip().splitlines()[-1].startswith("error:")
    assert "missing.wav: no such file" in failed.stderr


def test_user_errors_are_one_line_and_bugs_keep_their_traceback(folder, monkeypatch, capsys):
    model = str(folder / "pretrained")
    with pytest.raises(SystemExit) as exit_:
        main(["embed", "--model", model, "--no-speech-detection"])
    assert exit_.value.code == "error: no audio files given (name them, or give --list)"

    def bug(*args, **kwargs):
        raise ValueError("a bug, not the user's input")

    monkeypatch.setattr(SpeakerEncoder, "encode_file", bug)
    with pytest.raises(ValueError, match="a bug"):
        main(["embed", "--model", model, "--no-speech-detection", str(folder / "a.wav")])

    def bad_input(*args, **kwargs):
        raise InputError("x.wav: silent (peak amplitude below 0.0001)")

    monkeypatch.setattr(SpeakerEncoder, "encode_file", bad_input)
    with pytest.raises(SystemExit) as exit_:
        main(["embed", "--model", model, "--no-speech-detection", str(folder / "a.wav")])
    assert exit_.value.code == "error: x.wav: silent (peak amplitude below 0.0001)"


class NumpyInside(torch.nn.Module):
    """A model whose output goes through numpy, as the int8 model's onnxruntime call does: a
    trace records that output as a constant."""

    sample_rate = 16000

    def forward(self, wavs: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(wavs.numpy()[:, :4].copy())


def test_an_export_that_would_be_constant_is_refused(folder, tmp_path):
    with pytest.raises(InputError, match=r"^export: the traced model differs from the model on "
                                         r"new audio \(lowest cosine"):
        export_torchscript(NumpyInside(), tmp_path / "constant.pt")
    assert not (tmp_path / "constant.pt").exists()
    model = str(folder / "pretrained")
    for output in (["--torchscript", str(tmp_path / "q.pt")], ["--onnx", str(tmp_path / "q.onnx")]):
        done = run("export", "--model", model, "--precision", "int8", *output)
        assert done.returncode == 1
        assert done.stderr.startswith("error: export: the int8 model runs in onnxruntime")
        assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "q.pt").exists() and not (tmp_path / "q.onnx").exists()
    # auto exports the exact graph, whatever precisions.json ranks fastest
    (folder / "pretrained/precisions.json").write_text(
        '{"precisions": {"int8": {"passed": true, "embeddings_per_second": 99}}}')
    try:
        done = run("export", "--model", model, "--torchscript", str(tmp_path / "auto.pt"))
    finally:
        (folder / "pretrained/precisions.json").unlink()
    assert done.returncode == 0, done.stderr
    traced = torch.jit.load(str(tmp_path / "auto.pt"))
    wavs = 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        first, second = traced(wavs, torch.tensor([16000, 16000]))
    assert not torch.allclose(first, second)        # not a constant
