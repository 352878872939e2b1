"""A model folder's hyperparams.yaml is read as data: what HyperPyYAML would execute is refused
before anything runs, what our export and SpeechBrain's folders contain reads as HyperPyYAML
reads it."""

import pytest
import torch
from conftest import SPEECHBRAIN_HPARAMS, TINY_MODEL
from hyperpyyaml import load_hyperpyyaml

from custom_modules import ECAPA_TDNN, MelFrontend
from custom_modules.errors import InputError
from custom_modules.inference.model_yaml import read_model_yaml
from custom_modules.inference.pretrained import load_embedder, write_pretrained

SPEECHBRAIN_FOLDER = SPEECHBRAIN_HPARAMS.format(folder="speechbrain/spkrec-ecapa-voxceleb") + """\
classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: 24
    out_neurons: 7
label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder
model_file: !ref <pretrained_path>/embedding_model.ckpt
"""


@pytest.fixture
def folder(tmp_path):
    torch.manual_seed(0)
    write_pretrained(tmp_path / "model", MelFrontend(n_mels=40), ECAPA_TDNN(**TINY_MODEL), 0.25,
                     emb_norm_std=False)
    return tmp_path / "model"


def test_our_export_reads_as_hyperpyyaml_reads_it(folder):
    text = (folder / "hyperparams.yaml").read_text()
    ours, reference = read_model_yaml(text, "x"), load_hyperpyyaml(text)
    for key in ("compute_features", "embedding_model"):
        assert ours[key].config == reference[key].config
    assert ours["compute_features"].config["amin"] == 1e-10       # a float, as YAML 1.2 says
    assert ours["modules"]["embedding_model"] is ours["embedding_model"]   # one object
    assert ours["mean_var_norm_emb"].norm_type == "global"
    assert (ours["threshold"], ours["normalize_embeddings"]) == (0.25, False)


def test_speechbrains_folder_layout_reads_without_its_loader_objects():
    ours = read_model_yaml(SPEECHBRAIN_FOLDER, "sb.yaml")
    reference = load_hyperpyyaml(SPEECHBRAIN_FOLDER)
    assert ours["pretrainer"] is None and ours["label_encoder"] is None
    assert ours["model_file"] == "speechbrain/spkrec-ecapa-voxceleb/embedding_model.ckpt"
    assert ours["embedding_model"].state_dict().keys() == \
        reference["embedding_model"].state_dict().keys()
    assert ours["classifier"].weight.shape == reference["classifier"].weight.shape == (7, 24)
    assert ours["mean_var_norm"].norm_type == "sentence"


@pytest.mark.parametrize("line", [
    "danger: !apply:os.system [\"touch {marker}\"]",
    "danger: !new:subprocess.Popen [[\"touch\", \"{marker}\"]]",
    "danger: !name:os.system [\"touch {marker}\"]",
    "danger: !!python/object/apply:os.system [\"touch {marker}\"]",
    "danger: !include:{marker}.yaml",
    "other: !new:custom_modules.models.ecapa.ECAPA_TDNN\n"
    "    activation: !name:os.system\n",
    # Attributes of built objects are not reachable through !ref (a way to any callable).
    "other: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN\n    input_size: 40\n"
    "    activation: !ref <embedding_model.__class__.__init__.__globals__.__builtins__.exec>\n",
])
def test_a_folder_that_would_run_a_command_is_refused_and_nothing_runs(folder, tmp_path, line):
    marker = tmp_path / "ran"
    path = folder / "hyperparams.yaml"
    path.write_text(path.read_text() + line.format(marker=marker) + "\n")
    with pytest.raises(InputError) as error:
        load_embedder(folder)
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    assert "not allowed" in message or "not an allowed" in message or \
        "is not a key of a mapping written in the file" in message
    assert not marker.exists()
    # HyperPyYAML itself would have run it (for the first form, where the command is a
    # harmless touch): the reason this reader exists.
    if line.startswith("danger: !apply:os.system"):
        load_hyperpyyaml(path.read_text())
        assert marker.exists()


def test_unknown_modules_and_references_are_one_line_errors(folder):
    path = folder / "hyperparams.yaml"
    text = path.read_text()
    path.write_text(text.replace("modules:\n", "modules:\n    decoder: !ref <threshold>\n"))
    with pytest.raises(InputError, match="unknown module 'decoder'"):
        load_embedder(folder)
    path.write_text(text.replace("input_size: 40", "input_size: !ref <n_mels>"))
    with pytest.raises(InputError, match=r"!ref <n_mels>: no key 'n_mels'"):
        load_embedder(folder)


def test_a_folder_written_before_the_package_was_reorganised_still_loads(folder):
    path = folder / "hyperparams.yaml"
    path.write_text(path.read_text()
                    .replace("custom_modules.models.ecapa.", "custom_modules.ecapa.")
                    .replace("custom_modules.models.frontend.MelFrontend",
                             "custom_modules.frontend.MelFrontend"))
    current = load_embedder(folder)
    assert isinstance(current.embedding_model, ECAPA_TDNN)
    assert current.threshold == 0.25


def test_scalars_read_as_yaml_1_2_reads_them_and_bad_documents_are_one_line():
    text = "a: yes\nb: on\nc: 010\nd: 1:30\ne: 0o10\nf: 1e-3\ng: .5\nh: true\ni: null\n"
    assert read_model_yaml(text, "x") == load_hyperpyyaml(text) == {
        "a": "yes", "b": "on", "c": 10, "d": "1:30", "e": 8, "f": 1e-3, "g": 0.5, "h": True,
        "i": None}
    with pytest.raises(InputError, match="x: key 'n' is given twice"):
        read_model_yaml("n: 1\nn: 2\n", "x")
    with pytest.raises(InputError, match="x: nested too deeply, or an alias refers to itself"):
        read_model_yaml("a: &a [*a]\n", "x")
    laughs = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{k}: &{k} [{', '.join([f'*{p}'] * 10)}]\n" for p, k in zip("abcdefgh", "bcdefghi",
                                                                        strict=True))
    assert len(read_model_yaml(laughs, "x")["i"]) == 10     # shared nodes are checked once
