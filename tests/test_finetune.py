"""Fine-tuning through the training recipe: ``init_from`` starts from the pretrained weights
(seen at the first step), shared speakers keep their classifier rows, frozen layers do not
move; the large-margin recipe resumes after kill -9; the fine-tuning recipe of an imported
SpeechBrain model starts from it and resumes after kill -9. Tiny models, seconds of audio."""

import shutil
import sys
from pathlib import Path

import pytest
import torch
from conftest import epochs_logged, speech_like, speechbrain_model_folder, train, write_corpus

from custom_modules.inference.pretrained import load_embedder, read_labels
from custom_modules.interop.speechbrain import import_speechbrain


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Path, Path]:
    """A corpus and a one-epoch experiment trained on it."""
    root = tmp_path_factory.mktemp("finetune")
    corpus = write_corpus(root / "corpus", 10, 6, (2.0, 3.5))
    done = train(corpus, root / "base", "--number_of_epochs=1")
    assert done.returncode == 0, done.stderr[-2000:]
    return corpus, root / "base"


@pytest.mark.slow
def test_init_from_starts_from_the_pretrained_model_with_shared_rows_and_frozen_layers(
        base, tmp_path):
    corpus, experiment = base
    # Another corpus: speakers spk00-spk11 of other voices; the names spk00-spk09 are shared.
    other = write_corpus(tmp_path / "other", 12, 6, (2.0, 3.5), voice_seed=7)
    first = tmp_path / "first_step.pt"
    output = tmp_path / "tuned"
    done = train(other, output, "--number_of_epochs=1", f"--init_from={experiment}/pretrained",
                 "--freeze=[blocks.0, blocks.1]", "--pretrained_lr_scale=0.5",
                 hook=f"save_first_step={first}")
    assert done.returncode == 0, done.stderr[-2000:]
    pretrained = experiment / "pretrained"
    old_model = torch.load(pretrained / "embedding_model.ckpt", weights_only=True)
    old_head = torch.load(pretrained / "aam_head.ckpt", weights_only=True)["weight"]
    # What SpeechBrain's classifier reads: the same speakers' rows, unit length.
    rows = torch.load(pretrained / "classifier.ckpt", weights_only=True)["weight"]
    assert torch.allclose(rows, torch.nn.functional.normalize(old_head, dim=1), atol=1e-6)
    start = torch.load(first, weights_only=True)
    assert start["embedding_model"].keys() == old_model.keys()
    for name, value in old_model.items():
        assert torch.equal(start["embedding_model"][name], value), name
    old_labels = read_labels(pretrained / "label_encoder.txt")
    new_labels = read_labels(output / "save/label_encoder.txt")
    shared = sorted(set(old_labels) & set(new_labels))
    assert len(shared) >= 3                         # training speakers of both corpora
    head = start["classifier"]["weight"]
    for speaker in shared:
        assert torch.equal(head[new_labels[speaker]], old_head[old_labels[speaker]]), speaker
    for speaker in set(new_labels) - set(old_labels):
        assert not any(torch.equal(head[new_labels[speaker]], row) for row in old_head)
    tuned = torch.load(output / "pretrained/embedding_model.ckpt", weights_only=True)
    for name, value in old_model.items():
        frozen = name.startswith(("blocks.0.", "blocks.1."))
        assert torch.equal(tuned[name], value) == frozen or not value.is_floating_point(), name
    readme = (output / "pretrained/README.md").read_text()
    assert f"started from: the pretrained folder `{pretrained}` ({len(shared)} of " in readme
    assert "frozen: blocks.0, blocks.1" in readme
    # What cannot be honoured is refused in one line.
    refused = train(other, tmp_path / "refused", "--freeze=[blocks.0]")
    assert refused.returncode != 0
    assert "apply to a model started from init_from, which is null" in refused.stderr
    assert "Traceback" not in refused.stderr
    negative = train(other, tmp_path / "negative", f"--init_from={experiment}/pretrained",
                     "--anchor_weight=-0.5")
    assert "anchor_weight -0.5: a number from 0 (off)" in negative.stderr
    assert "Traceback" not in negative.stderr
    wrong = train(other, tmp_path / "wrong", f"--init_from={experiment}/pretrained",
                  "--lin_neurons=64")
    assert "its embedding_model has lin_neurons=192, this recipe 64" in wrong.stderr
    assert "Traceback" not in wrong.stderr


@pytest.mark.slow
def test_the_large_margin_recipe_continues_the_base_and_resumes_after_kill_9(base, tmp_path):
    corpus, experiment = base
    output = tmp_path / "lm"
    args = (f"--base_experiment={experiment}", "--number_of_epochs=2", "--crop_seconds=2.5",
            "--ckpt_interval_steps=1")
    # Killed inside its third checkpoint save (intra-epoch, in epoch 1), then run again.
    killed = train(corpus, output, *args, recipe="hparams/ecapa_folder_lm.yaml",
                   hook="kill_at_publish=3")
    assert killed.returncode == -9
    assert len(list((output / "save").glob("CKPT+*"))) == 1
    done = train(corpus, output, *args, recipe="hparams/ecapa_folder_lm.yaml")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Loading a checkpoint from" in done.stderr + done.stdout
    assert epochs_logged(output) == [1, 2]
    log = (output / "train_log.txt").read_text()
    assert "margin: 5.00e-01" in log
    assert not (output / "data").exists()             # the base's preparation is reused
    hyperparams = (output / "hyperparams.yaml").read_text()
    assert "crop_seconds: 2.5" in hyperparams and "margin: 0.5" in hyperparams
    assert f"`{experiment}/pretrained`" in (output / "pretrained/README.md").read_text()


@pytest.mark.slow
def test_two_processes_start_from_the_same_model_and_end_identical(base, tmp_path):
    corpus, experiment = base
    torchrun = Path(sys.executable).with_name("torchrun")
    replicas = tmp_path / "replicas"
    done = train(corpus, tmp_path / "tuned", "--number_of_epochs=1", "--batch_size=4",
                 f"--init_from={experiment}/pretrained", "--freeze=[blocks.0]",
                 launcher=(str(torchrun), "--nproc_per_node=2"),
                 hook=f"save_replica={replicas}")
    assert done.returncode == 0, done.stderr[-2000:]
    first, second = (torch.load(replicas / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    old = torch.load(experiment / "pretrained/embedding_model.ckpt", weights_only=True)
    for name, value in first["parameters"].items():
        assert torch.equal(value, second["parameters"][name]), name
        assert torch.equal(value, old[name]) == name.startswith("blocks.0."), name
    # Batch-norm statistics: the frozen block's never move; the others were broadcast from
    # the first process before each step (gloo has no SyncBatchNorm) and moved since.
    for name, value in first["buffers"].items():
        frozen = name.startswith("blocks.0.")
        assert torch.equal(value, second["buffers"][name]) or not frozen, name
        assert torch.equal(value, old[name]) == frozen, name


@pytest.mark.slow
def test_finetuning_an_imported_speechbrain_folder_starts_from_it_and_resumes_after_kill_9(
        tmp_path):
    """hparams/finetune_folder.yaml from a SpeechBrain folder converted by the import (a tiny
    one): killed inside a checkpoint save and run again, it resumes without the folder it
    started from; its first step had the imported weights, the frozen blocks never move, and
    the export says where it started."""
    (tmp_path / "speechbrain").mkdir()
    imported = import_speechbrain(speechbrain_model_folder(tmp_path / "speechbrain"),
                                  tmp_path / "imported")
    source = tmp_path / "source"
    shutil.copytree(imported, source)
    corpus = write_corpus(tmp_path / "corpus", 10, 6, (2.0, 3.5))
    output, first = tmp_path / "tuned", tmp_path / "first_step.pt"
    tiny = (f"--init_from={source}", "--lin_neurons=24", "--number_of_epochs=2",
            "--embedding_model={attention_channels: 16, se_channels: 16}",
            "--lr=0.01", "--pretrained_lr_scale=1.0")      # steps that move the weights
    args = (*tiny, "--ckpt_interval_steps=1", "--anchor_weight=100")
    killed = train(corpus, output, *args, recipe="hparams/finetune_folder.yaml",
                   hook=f"kill_at_publish=3;save_first_step={first}")
    assert killed.returncode == -9
    shutil.rmtree(source)                # a resumed run reads what the first one recorded
    done = train(corpus, output, *args, recipe="hparams/finetune_folder.yaml")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Loading a checkpoint from" in done.stderr + done.stdout
    assert epochs_logged(output) == [1, 2]
    # The first step's model embeds exactly as the imported folder does.
    at_first = tmp_path / "at_first_step"
    shutil.copytree(imported, at_first)
    torch.save(torch.load(first, weights_only=True)["embedding_model"],
               at_first / "embedding_model.ckpt")
    wave = speech_like(2.5, seed=4).unsqueeze(0)
    with torch.inference_mode():
        assert torch.equal(load_embedder(at_first)(wave), load_embedder(imported)(wave))
    # blocks.0-2 (weights and batch-norm statistics) as imported, the rest trained.
    old = torch.load(imported / "embedding_model.ckpt", weights_only=True)
    tuned = torch.load(output / "pretrained/embedding_model.ckpt", weights_only=True)
    moved = {name: not torch.equal(tuned[name], value) for name, value in old.items()
             if value.is_floating_point()}
    assert not any(m for name, m in moved.items()
                   if name.startswith(("blocks.0.", "blocks.1.", "blocks.2.")))
    assert all(m for name, m in moved.items() if name.startswith("fc."))
    readme = (output / "pretrained/README.md").read_text()
    assert f"started from: the pretrained folder `{source}`" in readme
    assert "frozen: blocks.0, blocks.1, blocks.2" in readme
    # The anchor (L2-SP) came back from the checkpoint, not from the removed source, and held
    # the weights nearer the imported ones than the same run without it.
    checkpoint = max((output / "save").glob("CKPT+*"))
    anchor = torch.load(checkpoint / "starting_point.ckpt", weights_only=True)
    assert all(torch.equal(anchor[name.replace(".", "__")], value) for name, value in old.items()
               if name.replace(".", "__") in anchor)
    assert "anchor_distance" in (output / "train_log.txt").read_text()
    shutil.copytree(imported, source)
    free = train(corpus, tmp_path / "free", *tiny, "--anchor_weight=0",
                 recipe="hparams/finetune_folder.yaml")
    assert free.returncode == 0, free.stderr[-2000:]
    unanchored = torch.load(tmp_path / "free/pretrained/embedding_model.ckpt", weights_only=True)
    assert drift(tuned, old) < drift(unanchored, old) / 2


def drift(weights: dict, start: dict) -> float:
    """Squared distance of the weights in ``weights`` from ``start`` (not the batch norms'
    running statistics, which no anchor holds)."""
    return sum(float((weights[k] - v).pow(2).sum()) for k, v in start.items()
               if v.is_floating_point() and ".running_" not in k)
