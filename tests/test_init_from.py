"""Starting from a trained model: which weights and classifier rows are taken, what is refused,
what is frozen. Tiny models, no audio (the recipe runs are in test_finetune.py)."""

import itertools

import pytest
import torch
from conftest import TINY_MODEL

from custom_modules import ECAPA_TDNN, MelFrontend
from custom_modules.errors import InputError
from custom_modules.inference.pretrained import write_pretrained
from custom_modules.training.checkpointing import AtomicCheckpointer
from custom_modules.training.init_from import (
    frozen_modules,
    initialise_from,
    shared_rows,
    write_class_layout,
    write_model_configs,
)
from custom_modules.training.losses import AAMSoftmaxHead


def label_file(path, speakers: list[str]) -> None:
    lines = [f"'{s}' => {i}" for i, s in enumerate(speakers)]
    path.write_text("\n".join(lines) + "\n================\n'starting_index' => 0\n")


def trained_folder(folder, speakers, speeds, subcenters=1):
    """A pretrained folder whose classifier row r holds the value r everywhere."""
    torch.manual_seed(1)
    frontend, model = MelFrontend(n_mels=40), ECAPA_TDNN(**TINY_MODEL)
    head = AAMSoftmaxHead(24, num_classes=len(speakers) * len(speeds), subcenters=subcenters)
    with torch.no_grad():
        head.weight.copy_(torch.arange(len(head.weight)).float()[:, None].expand(-1, 24))
    write_pretrained(folder, frontend, model, 0.5)
    torch.save(head.state_dict(), folder / "aam_head.ckpt")
    label_file(folder / "label_encoder.txt", speakers)
    write_class_layout(folder, speeds, subcenters)
    return model


@pytest.mark.parametrize("subcenters", [1, 3])
def test_shared_rows_match_a_brute_force_over_every_row(subcenters):
    old = {"a": 0, "b": 1, "c": 2}
    new = {"c": 0, "d": 1, "a": 2, "e": 3}
    old_speeds, new_speeds = [1.0, 0.9, 1.1], [1.0, 1.1]
    new_rows, old_rows = shared_rows(old, old_speeds, subcenters, new, new_speeds, subcenters)
    # Every row named by (speed, speaker, sub-centre) in both layouts.
    expected = []
    for (k, speed), (speaker, s), sub in itertools.product(enumerate(new_speeds), new.items(),
                                                           range(subcenters)):
        if speaker in old and speed in old_speeds:
            old_class = old_speeds.index(speed) * len(old) + old[speaker]
            expected.append(((k * len(new) + s) * subcenters + sub,
                             old_class * subcenters + sub))
    assert sorted(zip(new_rows.tolist(), old_rows.tolist(), strict=True)) == sorted(expected)
    assert len(expected) == 2 * 2 * subcenters            # a and c, at 1.0 and 1.1
    # Different numbers of sub-centres: nothing is shared.
    assert len(shared_rows(old, old_speeds, subcenters, new, new_speeds, subcenters + 1)[0]) == 0


def test_a_pretrained_folder_gives_its_weights_and_the_shared_speakers_rows(tmp_path):
    source = trained_folder(tmp_path / "old", ["a", "b", "c"], [1.0, 0.9])
    torch.manual_seed(2)
    frontend, model = MelFrontend(n_mels=40), ECAPA_TDNN(**TINY_MODEL)
    head = AAMSoftmaxHead(24, num_classes=3)
    before = head.weight.detach().clone()
    report = initialise_from(str(tmp_path / "old"), frontend, model, head,
                             {"c": 0, "x": 1, "a": 2}, [1.0])
    for (name, theirs), ours in zip(source.state_dict().items(), model.state_dict().values(),
                                    strict=True):
        assert torch.equal(theirs, ours), name
    # c was class 2 and a class 0 at speed 1.0; x is new and keeps its random row.
    assert torch.equal(head.weight[0], torch.full((24,), 2.0))
    assert torch.equal(head.weight[2], torch.full((24,), 0.0))
    assert torch.equal(head.weight[1], before[1])
    assert (report["classes_kept"], report["classes"]) == (2, 3)


def test_a_training_checkpoint_is_a_source_with_the_label_encoder_beside_it(tmp_path):
    torch.manual_seed(3)
    model, head = ECAPA_TDNN(**TINY_MODEL), AAMSoftmaxHead(24, num_classes=2)
    checkpoint = AtomicCheckpointer(tmp_path / "save", {"embedding_model": model,
                                                         "classifier": head}
                                    ).save_checkpoint(meta={"epoch": 1})
    label_file(tmp_path / "save/label_encoder.txt", ["p", "q"])
    new_model, new_head = ECAPA_TDNN(**TINY_MODEL), AAMSoftmaxHead(24, num_classes=2)
    report = initialise_from(str(checkpoint.path), MelFrontend(n_mels=40), new_model, new_head,
                             {"q": 0, "r": 1}, [1.0])     # no classes.json: one speed
    assert torch.equal(new_model.fc.conv.weight, model.fc.conv.weight)
    assert torch.equal(new_head.weight[0], head.weight[1])
    assert report["kind"] == "training checkpoint" and report["classes_kept"] == 1
    # With the training's model.json, a frontend that differs only in what has no parameter
    # (here its normalisation) is refused too.
    write_model_configs(tmp_path / "save", MelFrontend(n_mels=40, std_norm=True), model)
    with pytest.raises(InputError, match="its compute_features has std_norm=True, this "
                                         "recipe False"):
        initialise_from(str(checkpoint.path), MelFrontend(n_mels=40), ECAPA_TDNN(**TINY_MODEL),
                        AAMSoftmaxHead(24, num_classes=2), {}, [1.0])


def test_a_different_model_or_frontend_or_folder_is_a_one_line_error(tmp_path):
    trained_folder(tmp_path / "old", ["a", "b"], [1.0])
    head = AAMSoftmaxHead(24, num_classes=2)
    wider = ECAPA_TDNN(**{**TINY_MODEL, "channels": [48, 48, 48, 48, 96]})
    with pytest.raises(InputError, match=r"its embedding_model has channels=\[32, 32, 32, 32, "
                                         r"96\], this recipe \[48, 48, 48, 48, 96\]"):
        initialise_from(str(tmp_path / "old"), MelFrontend(n_mels=40), wider, head, {}, [1.0])
    with pytest.raises(InputError, match="its compute_features has n_mels=40, this recipe 80"):
        initialise_from(str(tmp_path / "old"), MelFrontend(n_mels=80),
                        ECAPA_TDNN(**TINY_MODEL), head, {}, [1.0])
    with pytest.raises(InputError, match="neither a pretrained folder"):
        initialise_from(str(tmp_path), MelFrontend(n_mels=40), ECAPA_TDNN(**TINY_MODEL), head,
                        {}, [1.0])
    torch.save({"weight": torch.zeros(3, 24)}, tmp_path / "old/aam_head.ckpt")
    with pytest.raises(InputError, match=r"its classifier has \(3, 24\) rows"):
        initialise_from(str(tmp_path / "old"), MelFrontend(n_mels=40),
                        ECAPA_TDNN(**TINY_MODEL), head, {"a": 0, "b": 1}, [1.0])


def test_frozen_layers_lose_their_gradients_and_unknown_ones_are_refused():
    model = ECAPA_TDNN(**TINY_MODEL)
    frozen = frozen_modules(model, ["blocks.0", "mfa"])
    assert frozen == [model.blocks[0], model.mfa]
    grads = {name: p.requires_grad for name, p in model.named_parameters()}
    assert not any(v for n, v in grads.items() if n.startswith(("blocks.0.", "mfa.")))
    assert all(v for n, v in grads.items() if not n.startswith(("blocks.0.", "mfa.")))
    with pytest.raises(InputError, match="freeze: block.1 is not a submodule"):
        frozen_modules(model, ["block.1"])
