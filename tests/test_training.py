"""Training: loss goes down on a learnable toy set, interrupted runs resume, two CPU processes
agree, and the exported folder loads. Tiny model (C=32), seconds of audio."""

import itertools
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
import speechbrain as sb
import torch
from conftest import TINY_MODEL, epochs_logged, speech_like, train, write_corpus
from speechbrain.augment.augmenter import Augmenter
from speechbrain.augment.time_domain import SpeedPerturb
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.epoch_loop import EpochCounter

from custom_modules import ECAPA_TDNN, MelFrontend
from custom_modules.errors import InputError
from custom_modules.inference import precision
from custom_modules.inference.pretrained import load_embedder
from custom_modules.models.embedder import Embedder
from custom_modules.training.brain import SpeakerBrain
from custom_modules.training.checkpointing import AtomicCheckpointer, save_epoch
from custom_modules.training.export_pretrained import export_best, speaker_rows
from custom_modules.training.init_from import write_class_layout
from custom_modules.training.losses import AAMSoftmaxHead
from custom_modules.training.recipe import training_precision
from custom_modules.training.schedules import TimeBudgetEpochCounter, WarmupSchedule
from custom_modules.training.spec_augment import PerSampleSpecAugment


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """10 speakers with a consistent voice each (learnable), 6 utterances of 2-3.5 s."""
    return write_corpus(tmp_path_factory.mktemp("train_corpus"), 10, 6, (2.0, 3.5))


def test_loss_decreases_on_learnable_batches():
    torch.manual_seed(0)
    head = AAMSoftmaxHead(16, num_classes=4, margin=0.2, scale=30)
    encoder = torch.nn.Linear(32, 16)
    centres = torch.randn(4, 32)
    labels = torch.arange(4).repeat(8)
    optimizer = torch.optim.Adam([*head.parameters(), *encoder.parameters()], lr=0.01)
    losses = []
    for _ in range(30):
        loss, _ = head(encoder(centres[labels] + 0.3 * torch.randn(32, 32)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_margin_warmup_schedule_and_per_sample_masks():
    head = AAMSoftmaxHead(8, 3, margin=0.2, margin_warmup_epochs=2)
    assert [round(head.set_epoch(e), 3) for e in (1, 2, 3, 9)] == [0.0, 0.1, 0.2, 0.2]
    schedule = WarmupSchedule(0.01, warmup_epochs=0, total_epochs=6, decay="triangular2",
                              cycle_epochs=2, final_ratio=0.1)
    # Up from the minimum to the peak and back each cycle, the peak halved every cycle.
    assert [schedule(e) for e in (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 6.0, 9.0)] == pytest.approx(
        [0.001, 0.0055, 0.01, 0.001, 0.0055, 0.00325, 0.001, 0.001])
    with pytest.raises(ValueError, match="a whole number of cycles"):
        WarmupSchedule(0.01, 0, 5, decay="triangular2", cycle_epochs=2)
    cosine = WarmupSchedule(0.01, warmup_epochs=1, total_epochs=5, decay="cosine",
                            final_ratio=0.1)
    with pytest.raises(ValueError, match="cycle_epochs .* goes with decay: triangular2"):
        WarmupSchedule(0.01, 1, 5, decay="cosine", cycle_epochs=2)
    assert [cosine(e) for e in (1.0, 3.0, 5.0, 7.0)] == pytest.approx([0.01, 0.0055, 0.001,
                                                                       0.001])
    masks = PerSampleSpecAugment(time_masks=2, max_time=20, freq_masks=0).train()
    out = masks(torch.ones(16, 100, 10))
    patterns = {tuple((out[i, :, 0] == 0).nonzero().flatten().tolist()) for i in range(16)}
    assert len(patterns) > 8  # masks differ between samples


def test_time_budget_stops_before_an_epoch_that_would_overrun(monkeypatch):
    # Each call is 100 s later; the clock never runs out, so only the budget can stop it.
    clock = itertools.count(0.0, 100.0)
    monkeypatch.setattr("custom_modules.training.schedules.time.monotonic", lambda: next(clock))
    counter = TimeBudgetEpochCounter(limit=10, max_minutes=250 / 60)
    assert list(counter) == [1, 2]                   # a third would end at 300 s > 250 s
    assert counter.current == 2
    assert list(TimeBudgetEpochCounter(limit=3, max_minutes=None)) == [1, 2, 3]


def test_time_budget_decides_once_per_epoch_and_follows_an_imposed_decision(monkeypatch):
    clock = itertools.count(0.0, 100.0)
    monkeypatch.setattr("custom_modules.training.schedules.time.monotonic", lambda: next(clock))
    counter = TimeBudgetEpochCounter(limit=10, max_minutes=250 / 60)
    seen = []
    for epoch in counter:
        # Asked at the end of each epoch (as the brain does before validating): epoch 2 is
        # the last, and the loop then stops without asking the clock again.
        seen.append((epoch, counter.is_last(), counter.planned))
    assert seen == [(1, False, 2), (2, True, 2)]
    imposed = TimeBudgetEpochCounter(limit=10, max_minutes=None)
    epochs = []
    for epoch in imposed:
        epochs.append(epoch)
        imposed.decide(3)                            # rank 0's plan, broadcast
    assert epochs == [1, 2, 3]


def test_time_budget_plans_the_epochs_that_fit_and_compresses_the_schedule(monkeypatch):
    # The clock is read when training starts and at each epoch's end. 650 s of budget: after
    # epoch 1, 100 s spent, 5 more fit (6 planned); the second epoch takes 200 s, so after it
    # 300 s are spent, 150 s an epoch, 2 more fit (4); epoch 4 ends at 600 s and is the last.
    clock = iter([0.0, 100.0, 300.0, 450.0, 600.0])
    monkeypatch.setattr("custom_modules.training.schedules.time.monotonic", lambda: next(clock))
    counter = TimeBudgetEpochCounter(limit=10, max_minutes=650 / 60)
    plans = [(epoch, counter.plan()) for epoch in counter]
    assert plans == [(1, 6), (2, 4), (3, 4), (4, 4)]
    # The schedule squeezed into 4 of its 10 epochs: after 2 epochs it is where 5 would be.
    schedule = WarmupSchedule(0.01, warmup_epochs=1, total_epochs=10, final_ratio=0.01)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    assert schedule.apply(optimizer, step=20, steps_per_epoch=10, share=0.4) == \
        pytest.approx(0.01 * 0.01 ** (4 / 9))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * 0.01 ** (4 / 9))
    assert schedule.apply(optimizer, 40, 10, share=0.4) == pytest.approx(1e-4)  # the end
    assert schedule.apply(optimizer, 2, 10, share=0.4) == pytest.approx(0.005)  # warm-up too


def test_time_budget_plans_again_upwards_when_a_slowdown_has_passed(monkeypatch):
    # 1,000 s for up to 10 epochs of 50 s; epochs 2 and 3 take 150 s (another process held a
    # core). After epoch 3 (350 s spent, the last three epochs' median 150 s) 4 more fit: 7.
    # Once epochs are fast again the plan grows back to all 10 (they end at 700 s). Planning
    # from the mean of every epoch and never upwards stopped at 8.
    clock = iter([0.0, 50.0, 200.0, 350.0, 400.0, 450.0, 500.0, 550.0, 600.0, 650.0, 700.0])
    monkeypatch.setattr("custom_modules.training.schedules.time.monotonic", lambda: next(clock))
    counter = TimeBudgetEpochCounter(limit=10, max_minutes=1000 / 60)
    plans = [counter.plan() for _ in counter]
    assert plans == [10, 10, 7, 8, 10, 10, 10, 10, 10, 10]


def test_a_resumed_run_keeps_its_time_budget_plan_and_a_finished_one_trains_no_more(
        monkeypatch, tmp_path):
    times = iter([0.0, 100.0, 300.0,         # the first process: 6, then 4 epochs planned
                  1000.0, 1010.0, 1020.0,    # the resumed one: epochs of 10 s, plan kept
                  2000.0])                   # a third: nothing left to train
    monkeypatch.setattr("custom_modules.training.schedules.time.monotonic", lambda: next(times))
    budget = {"limit": 10, "max_minutes": 650 / 60}
    first = TimeBudgetEpochCounter(**budget)
    assert [(next(first), first.plan()) for _ in range(2)] == [(1, 6), (2, 4)]
    Checkpointer(tmp_path / "run", {"counter": first}).save_checkpoint()
    resumed = TimeBudgetEpochCounter(**budget)
    Checkpointer(tmp_path / "run", {"counter": resumed}).recover_if_possible()
    assert (resumed.current, resumed.planned) == (2, 4)
    assert list(resumed) == [3, 4]         # 10-second epochs would fit 64 more: the plan holds
    Checkpointer(tmp_path / "run", {"counter": resumed}).save_checkpoint()
    again = TimeBudgetEpochCounter(**budget)
    Checkpointer(tmp_path / "run", {"counter": again}).recover_if_possible()
    assert list(again) == []
    # Another limit (or budget) plans anew; SpeechBrain's own counter file is read too.
    longer = TimeBudgetEpochCounter(limit=12, max_minutes=650 / 60)
    Checkpointer(tmp_path / "run", {"counter": longer}).recover_if_possible()
    assert (longer.current, longer.planned) == (4, 12)
    plain = EpochCounter(10)
    plain.current = 3
    Checkpointer(tmp_path / "plain", {"counter": plain}).save_checkpoint()
    read = TimeBudgetEpochCounter(**budget)
    Checkpointer(tmp_path / "plain", {"counter": read}).recover_if_possible()
    assert (read.current, read.planned) == (3, 10)


class Dies(Exception):
    """Stands for the process dying inside a checkpoint save."""


def test_speechbrains_checkpointer_leaves_a_checkpoint_that_looks_complete(tmp_path):
    """SpeechBrain writes CKPT.yaml first: a save that dies after the first parameter file
    leaves a checkpoint that is listed, and that fails to load. Ours leaves nothing listed."""
    def dying_save(obj, path):
        raise Dies

    for kind in (Checkpointer, AtomicCheckpointer):
        folder = tmp_path / kind.__name__
        checkpointer = kind(folder)
        checkpointer.add_recoverable("model", torch.nn.Linear(3, 3))
        checkpointer.add_recoverable("head", torch.nn.Linear(3, 2), custom_save_hook=dying_save)
        with pytest.raises(Dies):
            checkpointer.save_checkpoint()
        if kind is Checkpointer:
            (listed,) = checkpointer.list_checkpoints()
            assert (listed.path / "CKPT.yaml").is_file()
            assert (listed.path / "model.ckpt").is_file()
            with pytest.raises(RuntimeError, match="missing a load path for head"):
                checkpointer.recover_if_possible()
        else:
            assert checkpointer.list_checkpoints() == []
            assert checkpointer.recover_if_possible() is None
            assert len(list((folder / ".staging").glob("CKPT+*/model.ckpt"))) == 1


def three_epochs(tmp_path):
    """Checkpoints of three epochs whose weights and validation EERs differ."""
    torch.manual_seed(0)
    frontend, model = MelFrontend(n_mels=40), ECAPA_TDNN(**TINY_MODEL)
    classifier = AAMSoftmaxHead(24, num_classes=2)
    checkpointer = AtomicCheckpointer(tmp_path / "save", {"embedding_model": model,
                                                           "classifier": classifier})
    saved = {}
    for epoch, eer, threshold in ((1, 9.0, 0.31), (2, 4.5, 0.42), (3, 6.0, 0.53)):
        with torch.no_grad():
            model.fc.conv.weight.add_(1.0)
        saved[epoch] = model.fc.conv.weight.detach().clone()
        checkpointer.save_checkpoint(meta={"epoch": epoch, "EER": eer, "threshold": threshold})
    labels = tmp_path / "label_encoder.txt"
    labels.write_text("'a' => 0\n'b' => 1\n================\n'starting_index' => 0\n")
    return checkpointer, Embedder(frontend, model), classifier, str(labels), saved


def test_export_takes_the_last_epoch_or_the_lowest_eer_checkpoint_and_its_threshold(tmp_path):
    checkpointer, embedder, classifier, labels, saved = three_epochs(tmp_path)
    meta = export_best(checkpointer, embedder, classifier, labels, str(tmp_path / "last"),
                       "hparams/x.yaml", None, "last", None, {})
    assert (meta["epoch"], meta["EER"], meta["threshold"]) == (3, 6.0, 0.53)  # annealed
    assert torch.equal(load_embedder(tmp_path / "last").embedding_model.fc.conv.weight,
                       saved[3])
    with pytest.raises(ValueError, match="export weights 'lowest': choose one of last, best"):
        export_best(checkpointer, embedder, classifier, labels, str(tmp_path / "x"), "x", None,
                    "lowest", None, {})
    meta = export_best(checkpointer, embedder, classifier, labels, str(tmp_path / "pretrained"),
                       "hparams/x.yaml", None, "best", None,
                       {"noise": "musan", "reverb": "generated"})
    assert (meta["epoch"], meta["EER"], meta["threshold"]) == (2, 4.5, 0.42)
    exported = load_embedder(tmp_path / "pretrained")
    assert exported.threshold == 0.42
    assert torch.equal(exported.embedding_model.fc.conv.weight, saved[2])
    readme = (tmp_path / "pretrained/README.md").read_text()
    assert "validation EER: 4.50 %" in readme
    assert "augmentation corpora: noise: musan, reverb: generated" in readme


def test_the_exported_classifier_has_one_row_a_speaker_and_the_full_head_beside_it(tmp_path):
    torch.manual_seed(4)
    head = AAMSoftmaxHead(24, num_classes=6, subcenters=2)     # 3 speakers x speeds 0.9, 1.0
    rows = speaker_rows(head.weight, [0.9, 1.0], 2)
    unit = torch.nn.functional.normalize(head.weight.detach(), dim=1)
    for speaker in range(3):
        first = (1 * 3 + speaker) * 2                             # speed 1.0, sub-centre 0
        expected = torch.nn.functional.normalize(unit[first] + unit[first + 1], dim=0)
        assert torch.allclose(rows[speaker], expected, atol=1e-6)
    checkpointer, embedder, _, labels, _ = three_epochs(tmp_path)
    two = AAMSoftmaxHead(24, num_classes=4)                       # 2 speakers x 2 speeds
    write_class_layout(tmp_path, [1.0, 1.1], 1)
    checkpointer.recoverables["classifier"] = two
    checkpointer.save_checkpoint(meta={"epoch": 4, "EER": 1.0, "threshold": 0.5})
    export_best(checkpointer, embedder, two, labels, str(tmp_path / "pretrained"), "x", None,
                "best", None, {})
    exported = torch.load(tmp_path / "pretrained/classifier.ckpt", weights_only=True)
    assert torch.allclose(exported["weight"], speaker_rows(two.weight, [1.0, 1.1], 1))
    assert exported["weight"].shape == (2, 24)
    full = torch.load(tmp_path / "pretrained/aam_head.ckpt", weights_only=True)
    assert torch.equal(full["weight"], two.weight)


def test_export_can_average_the_last_epochs_and_validates_the_average(tmp_path):
    checkpointer, embedder, classifier, labels, saved = three_epochs(tmp_path)
    seen = []

    def validation(model):
        seen.append(model.embedding_model.fc.conv.weight.detach().clone())
        return {"EER": 3.25, "threshold": 0.6, "seconds": 0.1}

    meta = export_best(checkpointer, embedder, classifier, labels, str(tmp_path / "pretrained"),
                       "hparams/x.yaml", 2, "last", validation, {})
    mean = (saved[2] + saved[3]) / 2
    assert meta == {"EER": 3.25, "threshold": 0.6, "epochs": [2, 3]}
    assert torch.allclose(seen[0], mean)
    exported = load_embedder(tmp_path / "pretrained")
    assert torch.allclose(exported.embedding_model.fc.conv.weight, mean)
    assert exported.threshold == 0.6
    assert "the mean of epochs 2 to 3" in (tmp_path / "pretrained/README.md").read_text()
    with pytest.raises(ValueError, match="average_checkpoints=5, but .* keeps 3"):
        export_best(checkpointer, embedder, classifier, labels, str(tmp_path / "p5"), "x", 5,
                    "last", validation, {})


def test_the_epochs_to_average_survive_eer_and_intra_epoch_checkpoints(tmp_path):
    checkpointer, *_ = three_epochs(tmp_path)                # EERs 9.0, 4.5, 6.0
    checkpointer.save_checkpoint(meta={"intra": True}, end_of_epoch=False)
    save_epoch(checkpointer, {"epoch": 4, "EER": 7.0}, ["EER"], epochs_to_average=2)
    kept = sorted(c.meta.get("epoch", 0) for c in checkpointer.list_checkpoints())
    # Epoch 2 has the lowest EER; 3 and 4 are the two to average; the intra-epoch one goes.
    assert kept == [2, 3, 4]


@pytest.mark.parametrize("vectors_exempt", [False, True])
def test_optimiser_groups_carry_the_two_weight_decays(vectors_exempt):
    frontend, model = MelFrontend(n_mels=40), ECAPA_TDNN(**TINY_MODEL)
    classifier = AAMSoftmaxHead(24, num_classes=3)
    brain = SpeakerBrain(
        modules={"compute_features": frontend, "embedding_model": model,
                 "classifier": classifier},
        opt_class=lambda groups: torch.optim.Adam(groups, lr=1e-3),
        hparams={"weight_decay": 2e-5, "classifier_weight_decay": 2e-4, "freeze": [],
                 "pretrained_lr_scale": 0.1},
        run_opts={"device": "cpu", "remove_vector_weight_decay": vectors_exempt})
    brain.init_optimizers()
    decay_of = {id(p): g["weight_decay"] for g in brain.optimizer.param_groups
                for p in g["params"]}
    model_params = [p for p in model.parameters() if p.requires_grad]
    assert len(decay_of) == len(model_params) + 1        # the head has one weight matrix
    assert decay_of[id(classifier.weight)] == 2e-4
    for p in model_params:
        assert decay_of[id(p)] == (0.0 if vectors_exempt and p.dim() <= 1 else 2e-5)
    WarmupSchedule(1e-3, 0, 10, "constant").apply(brain.optimizer, 0, 5)
    lr_of = {id(p): g["lr"] for g in brain.optimizer.param_groups for p in g["params"]}
    assert lr_of[id(classifier.weight)] == 1e-3
    assert all(lr_of[id(p)] == pytest.approx(1e-4) for p in model_params)
    brain.modules["stray"] = torch.nn.Linear(2, 2)
    with pytest.raises(RuntimeError, match="'stray'"):
        brain.init_optimizers()


def test_the_gradient_norm_is_clipped_over_every_group_the_head_included():
    frontend, model = MelFrontend(n_mels=40), ECAPA_TDNN(**TINY_MODEL)
    classifier = AAMSoftmaxHead(24, num_classes=3)
    brain = SpeakerBrain(
        modules={"compute_features": frontend, "embedding_model": model,
                 "classifier": classifier},
        opt_class=lambda groups: torch.optim.SGD(groups, lr=1.0),
        hparams={"weight_decay": 0.0, "classifier_weight_decay": 0.0, "freeze": [],
                 "pretrained_lr_scale": 1.0},
        run_opts={"device": "cpu", "max_grad_norm": 5.0})
    brain.init_optimizers()
    WarmupSchedule(1.0, 0, 10, "constant").apply(brain.optimizer, 0, 5)
    assert brain.optimizer.param_groups[-1]["params"] == [classifier.weight]   # a later group
    params = [p for g in brain.optimizer.param_groups for p in g["params"]]
    before = [p.detach().clone() for p in params]
    for p in params:   # gradients of norm 1000 in the head, 0.01 per element in the model
        p.grad = torch.full_like(p, 0.01)
    size = classifier.weight.numel()
    classifier.weight.grad = torch.full_like(classifier.weight, 1000.0 / size ** 0.5)
    norm = torch.cat([p.grad.flatten() for p in params]).norm().item()
    brain.optimizers_step()
    # SGD with lr 1 moves each parameter by its (clipped) gradient: one step of norm 5, the
    # head's share scaled as much as the model's (SpeechBrain's own step left the head at 1000)
    moved = torch.cat([(b - p.detach()).flatten() for b, p in zip(before, params, strict=True)])
    assert moved.norm().item() == pytest.approx(5.0, rel=1e-4)
    head = (before[-1] - classifier.weight.detach()).norm().item()
    assert head == pytest.approx(1000.0 * 5.0 / norm, rel=1e-4)
    assert brain.optimizer_step == 1 and all(p.grad is None for p in params)


@pytest.mark.parametrize(("flags", "device", "capability", "expected"), [
    ({"avx2", "avx512f"}, "cpu", None, "fp32"), ({"avx512_bf16"}, "cpu", None, "bf16"),
    ({"amx_bf16"}, "cpu", None, "bf16"), ({"avx2"}, "cuda:0", (9, 0), "bf16"),
    ({"avx2"}, "cuda:0", (8, 0), "bf16"), ({"avx512_bf16"}, "cuda:0", (7, 0), "fp16")])
def test_training_precision_auto_is_bf16_only_where_the_device_runs_it(monkeypatch, flags,
                                                                      device, capability,
                                                                      expected):
    monkeypatch.setattr(precision, "cpu_description", lambda: ("a CPU", flags))
    monkeypatch.setattr(precision.torch.cuda, "get_device_capability", lambda d: capability)
    assert training_precision("auto", device, "demo.yaml") == expected
    assert training_precision("fp16", device, "demo.yaml") == "fp16"    # asked for by name
    with pytest.raises(InputError, match=r"^demo.yaml: precision 'half': choose one of fp32"):
        training_precision("half", device, "demo.yaml")


def test_under_bf16_autocast_the_augmented_waveforms_stay_float32():
    frontend, model = MelFrontend(n_mels=40), ECAPA_TDNN(**TINY_MODEL)
    dtypes = {}
    frontend.register_forward_pre_hook(
        lambda module, inputs: dtypes.__setitem__("waveforms", inputs[0].dtype))
    model.blocks[0].register_forward_hook(
        lambda module, inputs, output: dtypes.__setitem__("block", output.dtype))
    slower = Augmenter(augmentations=[SpeedPerturb(16000, speeds=[90])], concat_original=False,
                       min_augmentations=1, max_augmentations=1)
    brain = SpeakerBrain(modules={"compute_features": frontend, "embedding_model": model},
                         hparams={"wav_augment": slower, "spec_augment": None},
                         run_opts={"device": "cpu", "precision": "bf16"})
    wavs = torch.stack([speech_like(1.0, seed=i) for i in range(2)])
    batch = SimpleNamespace(to=lambda device: batch, sig=(wavs, torch.ones(2)))
    with brain.training_ctx:
        brain.compute_forward(batch, sb.Stage.TRAIN)
    assert dtypes == {"waveforms": torch.float32, "block": torch.bfloat16}


@pytest.mark.slow
def test_recipe_trains_resumes_and_exports(corpus, tmp_path):
    output = tmp_path / "exp"
    done = train(corpus, output, "--number_of_epochs=1", "--check_precisions_at_export=True")
    assert done.returncode == 0, done.stderr[-2000:]
    assert epochs_logged(output) == [1]
    # The export checked the fast precisions on the validation trials: what auto reads.
    checks = json.loads((output / "pretrained/precisions.json").read_text())["precisions"]
    assert set(checks) == {"fp32", "fp32-fast", "bf16", "fp16"}    # int8: on your lists
    assert list(checks["fp32"]["eer"]) == ["validation"] and checks["fp32"]["passed"]
    assert checks["fp32-fast"]["min_cosine"] > 0.9999      # the same arithmetic, reordered
    embedder = load_embedder(output / "pretrained")
    for name in ("hyperparams.yaml", "embedding_model.ckpt", "classifier.ckpt",
                 "label_encoder.txt", "README.md"):
        assert (output / "pretrained" / name).is_file()
    assert "number_of_epochs: 1" in (output / "hyperparams.yaml").read_text()
    wave = torch.from_numpy(soundfile.read(next(corpus.glob("spk00/*.wav")),
                                           dtype="float32")[0]).unsqueeze(0)
    with torch.inference_mode():
        assert embedder(wave).shape == (1, 192)
    first = (output / "train_log.txt").read_text().splitlines()[0]
    assert "train replaced: 0," in first and "valid seconds: " in first
    # Resumed to 4 epochs, validating every third: epoch 2 is not validated, 3 is, and so is
    # the last, 4.
    resumed = train(corpus, output, "--number_of_epochs=4", "--valid_every=3")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert epochs_logged(output) == [1, 2, 3, 4]
    validated = ["valid EER" in line for line in (output / "train_log.txt").read_text()
                 .splitlines()]
    assert validated == [True, False, True, True]


@pytest.mark.slow
def test_kill_inside_a_checkpoint_save_then_the_same_command_resumes(corpus, tmp_path):
    output = tmp_path / "exp"
    args = ("--number_of_epochs=2", "--ckpt_interval_steps=1")
    killed = train(corpus, output, *args, hook="kill_at_publish=3")
    assert killed.returncode == -9
    save = output / "save"
    # The second intra-epoch checkpoint is in place (it replaced the first); the third was
    # written into staging, never renamed.
    assert len(list(save.glob("CKPT+*"))) == 1
    assert len(list((save / ".staging").glob("CKPT+*/embedding_model.ckpt"))) == 1
    done = train(corpus, output, *args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Loading a checkpoint from" in done.stderr + done.stdout
    assert epochs_logged(output) == [1, 2]
    assert not (save / ".staging").exists()            # leftovers cleaned
    for checkpoint in save.glob("CKPT+*"):
        assert {p.name for p in checkpoint.iterdir()} >= {"CKPT.yaml", "embedding_model.ckpt",
                                                          "classifier.ckpt", "counter.ckpt"}


@pytest.mark.slow
def test_two_cpu_processes_end_with_identical_weights(corpus, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    replicas = tmp_path / "replicas"
    done = train(corpus, tmp_path / "exp", "--number_of_epochs=1", "--batch_size=4",
                 launcher=(str(torchrun), "--nproc_per_node=2"),
                 hook=f"save_replica={replicas}")
    assert done.returncode == 0, done.stderr[-2000:]
    first, second = (torch.load(replicas / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    weights = first["parameters"]
    assert list(weights) == list(second["parameters"]) and len(weights) > 50
    for name in weights:
        assert torch.equal(weights[name], second["parameters"][name]), name
    # ... and they are the weights that were exported (the epoch's checkpoint), with the
    # first process's batch-norm statistics (on gloo each process keeps its own, see
    # ``replicas_identical``).
    exported = torch.load(tmp_path / "exp/pretrained/embedding_model.ckpt", weights_only=True)
    statistics = {n: t for n, t in first["buffers"].items() if t.is_floating_point()}
    assert len(statistics) > 10
    for name, tensor in (*weights.items(), *statistics.items()):
        assert torch.equal(tensor, exported[name]), name


@pytest.mark.slow
def test_same_seed_same_weights_with_speed_perturbed_speakers(corpus, tmp_path):
    for name in ("a", "b"):
        done = train(corpus, tmp_path / name, "--number_of_epochs=1",
                     "--speaker_speeds=[1.0, 0.9, 1.1]")
        assert done.returncode == 0, done.stderr[-2000:]
    first, second = (torch.load(tmp_path / n / "pretrained/embedding_model.ckpt",
                                weights_only=True) for n in ("a", "b"))
    assert all(torch.equal(first[k], second[k]) for k in first)
    pretrained = tmp_path / "a" / "pretrained"
    classes = torch.load(pretrained / "aam_head.ckpt", weights_only=True)["weight"].shape[0]
    labels = (pretrained / "label_encoder.txt").read_text().split("\n=")[0].splitlines()
    speakers = len(labels)
    assert classes == 3 * speakers                 # the full head: a class a speed a speaker
    rows = torch.load(pretrained / "classifier.ckpt", weights_only=True)["weight"].shape[0]
    assert rows == speakers                        # SpeechBrain's view: a row a speaker
