"""Recipe YAML loading: overrides work, bad files end with one clear line."""

import pytest

from custom_modules.hparams import load_hparams


def test_overrides_the_speechbrain_way(tmp_path):
    path = tmp_path / "h.yaml"
    path.write_text("data_folder: !PLACEHOLDER\nseed: 3\nout: !ref <data_folder>/x\n")
    hparams, run_opts = load_hparams([str(path), "--data_folder=/data", "--device=cpu"])
    assert hparams["out"] == "/data/x"
    assert hparams["seed"] == 3
    assert run_opts["device"] == "cpu"


@pytest.mark.parametrize(("text", "words"), [
    ("data_folder: !PLACEHOLDER\n", "'data_folder' is a !PLACEHOLDER"),
    ("a: [1\n", "line 2 malformed YAML"),
    ("a: !name:no_such_module.function\n", "no such entity"),
])
def test_bad_yaml_exits_with_one_line(tmp_path, text, words):
    path = tmp_path / "h.yaml"
    path.write_text(text)
    with pytest.raises(SystemExit) as exit_:
        load_hparams([str(path)])
    message = str(exit_.value.code)
    assert message.startswith(f"error: {path}")
    assert words in message
    assert "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(SystemExit, match="cannot read it"):
        load_hparams([str(tmp_path / "missing.yaml")])


@pytest.mark.parametrize("name", ["ecapa.yaml", "ecapa_c512.yaml", "ecapa_demo.yaml",
                                  "demo.yaml", "verify.yaml", "visualize.yaml",
                                  "prepare_voxceleb.yaml", "prepare_folder.yaml"])
def test_shipped_yaml_files_load(name, tmp_path):
    overrides = {"verify.yaml": [f"--experiment={tmp_path}"],
                 "visualize.yaml": [f"--experiment={tmp_path}"], "demo.yaml": []}
    hparams, _ = load_hparams([f"hparams/{name}",
                               *overrides.get(name, [f"--data_folder={tmp_path}"])])
    assert hparams
