"""Recipe configuration: extends, overrides, run options, required keys, one-line errors; and
every shipped YAML: it loads, and each of its top-level values reaches the code."""

import importlib
import re
from pathlib import Path

import pytest
import torch

from custom_modules.config import compose, load_recipe, references
from custom_modules.training.distributed import distributed_defaults

RECIPES = {name: importlib.import_module(f"recipes.{name}")
           for name in ("train_speaker_embeddings", "speaker_verification", "visualize",
                        "demo_summary", "identification", "export_backend",
                        "check_precisions", "diarize", "import_speechbrain", "prepare_data")}
# What reads each shipped YAML; a top-level key must be referenced in the file or read here.
READERS = {"ecapa.yaml": ["train_speaker_embeddings"],
           "ecapa_c512.yaml": ["train_speaker_embeddings"],
           "ecapa_folder.yaml": ["train_speaker_embeddings"],
           "demo.yaml": ["train_speaker_embeddings", "demo_summary"],
           "verify.yaml": ["speaker_verification"], "demo_verify.yaml": ["speaker_verification"],
           "verify_voxceleb.yaml": ["speaker_verification"],
           "visualize.yaml": ["visualize"], "demo_visualize.yaml": ["visualize"],
           "identify.yaml": ["identification"], "demo_identify.yaml": ["identification"],
           "precisions.yaml": ["check_precisions"], "diarize.yaml": ["diarize"],
           "demo_diarize.yaml": ["diarize"], "import_speechbrain.yaml": ["import_speechbrain"],
           "real_speech.yaml": ["prepare_data"], "real_speech_backend.yaml": ["export_backend"],
           "verify_real_speech.yaml": ["speaker_verification"],
           "identify_real_speech.yaml": ["identification"],
           "diarize_real_speech.yaml": ["diarize"],
           "diarize_pyannote_sample.yaml": ["diarize"],
           "precisions_real_speech.yaml": ["check_precisions"],
           "demo_real_speech.yaml": ["prepare_data"], "demo_real_diarize.yaml": ["diarize"],
           "ecapa_lm.yaml": ["train_speaker_embeddings"],
           "ecapa_folder_lm.yaml": ["train_speaker_embeddings"],
           "demo_lm.yaml": ["train_speaker_embeddings", "demo_summary"],
           "finetune_folder.yaml": ["train_speaker_embeddings"],
           "finetune_folder_gpu.yaml": ["train_speaker_embeddings"]}
VOXCELEB = ["--data_folder=/data/vox2", "--voxceleb1_folder=/data/vox1"]
PLACEHOLDERS = {"ecapa.yaml": VOXCELEB, "ecapa_c512.yaml": VOXCELEB,
                "ecapa_folder.yaml": ["--data_folder=/data"],
                "finetune_folder.yaml": ["--data_folder=/data"],
                "finetune_folder_gpu.yaml": ["--data_folder=/data"],
                "diarize.yaml": ["--recordings=/data/recordings.csv"],
                "ecapa_lm.yaml": VOXCELEB,
                "ecapa_folder_lm.yaml": ["--data_folder=/data", "--base_experiment=/exps/base"]}
# Keys a YAML defines (through its base) that nothing reads, on purpose: the large-margin
# stages switch the per-batch waveform drops off (wav_augment: null), and the base's drop
# objects stay defined for the recipes that use them.
ALLOWED_UNUSED = {"ecapa_lm.yaml": {"drop_freq", "drop_chunk"},
                  "ecapa_folder_lm.yaml": {"drop_freq", "drop_chunk"},
                  "demo_lm.yaml": {"drop_freq", "drop_chunk", "speed_perturb"}}


def write(path, text: str):
    path.write_text(text)
    return str(path)


def test_overrides_the_speechbrain_way(tmp_path):
    path = write(tmp_path / "h.yaml", "data_folder: !PLACEHOLDER\nseed: 3\n"
                                      "out: !ref <data_folder>/x\nlists: {a: 1}\n")
    recipe = load_recipe([path, "--data_folder=/data", "--device=cpu", "--lists={b: 2}"],
                         ["out"], ["device"])
    assert recipe.hparams["out"] == "/data/x"
    assert recipe.hparams["seed"] == 3
    assert recipe.hparams["lists"] == {"a": 1, "b": 2}        # mappings merge
    assert recipe.run_opts.device == "cpu"
    assert "data_folder: /data" in recipe.text


def test_extends_merges_mappings_and_replaces_other_values(tmp_path):
    write(tmp_path / "base.yaml", "n: 4\nout: !ref <name>/x\nname: base\n"
                                  "model: !new:collections.OrderedDict\n    a: 1\n    b: 2\n"
                                  "other: !new:collections.OrderedDict\n    a: 1\n")
    child = write(tmp_path / "child.yaml",
                  "extends: base.yaml\nname: child\nmodel:\n    b: 3\n"
                  "other: !new:collections.Counter\n    c: 5\nextra: !ref <out>/y\n")
    hparams = load_recipe([child], ["model", "extra"]).hparams
    assert dict(hparams["model"]) == {"a": 1, "b": 3}           # merged into the base's object
    assert type(hparams["other"]).__name__ == "Counter"         # another class: replaced
    assert dict(hparams["other"]) == {"c": 5}
    assert hparams["extra"] == "child/x/y"                      # references resolve across
    assert hparams["n"] == 4
    write(tmp_path / "loop.yaml", "extends: loop.yaml\n")
    with pytest.raises(ValueError, match="loop.yaml: extends itself"):
        compose(tmp_path / "loop.yaml")


@pytest.mark.parametrize(("argv", "keys", "words"), [
    (["--numbr=3"], [], "--numbr: {path} has no such key (did you mean --number?)"),
    (["--precision=bf16"], [], "--precision has no effect on this recipe (run options it "
                               "uses: --device)"),
    ([], ["number", "absent"], "{path}: no 'absent' (this recipe reads number, absent)"),
])
def test_what_would_be_ignored_is_refused(tmp_path, argv, keys, words):
    path = write(tmp_path / "h.yaml", "number: 1\n")
    with pytest.raises(ValueError) as error:
        load_recipe([path, *argv], keys, ["device"])
    assert str(error.value) == words.format(path=path)


@pytest.mark.parametrize(("text", "words"), [
    ("data_folder: !PLACEHOLDER\n", "'data_folder' is a !PLACEHOLDER and must be replaced. "
                                    "(set it on the command line: --data_folder=...)"),
    ("a: [1\n", "line 2 malformed YAML"),
    ("a: !name:no_such_module.function\n", "no such entity"),
    ("a: !new:fractions.Fraction\n    no_such_argument: 1\n", "unexpected keyword argument"),
    ("a: !new:int [x]\n", "invalid literal for int()"),
    ("a: !new:custom_modules.models.frontend.MelFrontend\n    n_mels: 0\n",
     "MelFrontend: n_mels=0 must be at least 1"),
])
def test_bad_yaml_is_one_line_naming_the_file(tmp_path, text, words):
    path = write(tmp_path / "h.yaml", text)
    with pytest.raises(ValueError) as error:
        load_recipe([path], [])
    message = str(error.value)
    assert message.startswith(path) and words in message and "\n" not in message
    with pytest.raises(ValueError, match="missing.yaml: cannot read it"):
        load_recipe([str(tmp_path / "missing.yaml")], [])


def test_a_bug_inside_our_constructors_keeps_its_traceback(tmp_path):
    # A string where a number belongs reaches a comparison inside WarmupSchedule: a TypeError
    # raised in our code (it lacks a type check), not a problem the loader can name.
    path = write(tmp_path / "h.yaml", "a: !new:custom_modules.training.schedules.WarmupSchedule"
                                      "\n    lr: fast\n    warmup_epochs: 1\n"
                                      "    total_epochs: 2\n")
    with pytest.raises(TypeError) as error:
        load_recipe([path], [])
    assert not isinstance(error.value, ValueError)


def test_training_yaml_is_only_a_base(tmp_path):
    with pytest.raises(ValueError, match="'output_folder' is a !PLACEHOLDER"):
        load_recipe(["hparams/training.yaml"], [])


@pytest.mark.parametrize("name", list(READERS))
def test_every_top_level_value_of_a_shipped_yaml_reaches_the_code(name, tmp_path):
    path = f"hparams/{name}"
    tree = compose(path)
    read = {key for reader in READERS[name] for key in RECIPES[reader].KEYS}
    assert read <= set(tree), f"{name} lacks {sorted(read - set(tree))}"
    referenced = {ref for value in tree.values() for ref in references(value)}
    unused = {key for key in tree if not key.startswith("__")} - referenced - read
    assert unused == ALLOWED_UNUSED.get(name, set()), f"{name}: {sorted(unused)} reach nothing"
    for reader in READERS[name]:
        module = RECIPES[reader]
        run_options = getattr(module, "RUN_OPTIONS", ())
        where = "--experiment" if "experiment" in tree else "--output_folder"
        hparams = load_recipe([path, *PLACEHOLDERS.get(name, []), f"{where}={tmp_path}"],
                              module.KEYS, run_options).hparams
        assert set(module.KEYS) <= set(hparams)


def test_every_make_demo_command_is_accepted_by_its_recipe(tmp_path):
    """What make demo passes reaches keys its recipes read (an option SpeechBrain owns, such as
    --precision, is refused by a recipe that does not take it as a run option)."""
    makefile = Path("Makefile").read_text().replace("$(DEMO_TRAINING)", "").replace(
        "$(DEMO)", str(tmp_path / "demo")).replace("$(REAL)", str(tmp_path / "real"))
    commands = re.findall(r"\$\(PYTHON\) recipes/(\w+)\.py (hparams/\S+\.yaml)([^)\n]*)",
                          makefile)
    assert [name for name, _, _ in commands] == [
        "prepare_data", "train_speaker_embeddings", "train_speaker_embeddings",
        "speaker_verification", "visualize", "identification", "diarize", "demo_summary",
        "prepare_data", "import_speechbrain", "export_backend", "speaker_verification",
        "identification", "diarize", "diarize"]
    for name, path, options in commands:
        argv = [path, *(word for word in options.split() if word.startswith("--"))]
        if name == "prepare_data":
            load_recipe(argv, ["preparation"])
            continue
        module = RECIPES[name]
        load_recipe(argv, module.KEYS, getattr(module, "RUN_OPTIONS", ("device",)))


@pytest.mark.parametrize("flag", ["--test_only", "--eval_precision=bf16", "--jit"])
def test_training_refuses_the_run_options_it_would_ignore(flag):
    module = RECIPES["train_speaker_embeddings"]
    with pytest.raises(ValueError) as error:
        load_recipe(["hparams/ecapa_folder.yaml", "--data_folder=/data", flag,
                     "--output_folder=/nonexistent"], module.KEYS, module.RUN_OPTIONS)
    assert str(error.value) == f"{flag.split('=')[0]} has no effect on this recipe"


@pytest.mark.skipif(torch.cuda.is_available(), reason="about machines without CUDA")
def test_without_cuda_nccl_asked_for_is_an_error_and_otherwise_gloo_is_chosen(tmp_path):
    module = RECIPES["train_speaker_embeddings"]

    def run_opts(*flags):
        return load_recipe(["hparams/ecapa_folder.yaml", "--data_folder=/data",
                            f"--output_folder={tmp_path}", *flags], module.KEYS,
                           module.RUN_OPTIONS).run_opts

    chosen = distributed_defaults(run_opts())
    assert (chosen.distributed_backend, chosen.device) == ("gloo", "cpu")
    with pytest.raises(ValueError, match="--distributed_backend=nccl needs CUDA GPUs"):
        distributed_defaults(run_opts("--distributed_backend=nccl"))
    with pytest.raises(ValueError, match="--device=cuda:0: CUDA is not available here"):
        distributed_defaults(run_opts("--device=cuda:0"))


def named_callables(value):
    """``(tag, mapping)`` of every ``!name:`` node (a step the recipe calls: preparation,
    back-end, diarization...) with its keyword arguments. ``!new:`` objects are left out: the
    model classes keep SpeechBrain's constructor and its architecture defaults."""
    tag = getattr(getattr(value, "tag", None), "value", None)
    if isinstance(value, dict):
        if tag and tag.startswith("!name:"):
            yield tag, value
        for inner in value.values():
            yield from named_callables(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from named_callables(inner)


def our_callable(tag: str):
    """The function or class a tag names, when it is this project's (SpeechBrain's and
    torch's defaults are theirs to document)."""
    path = tag.split(":", 1)[1]
    if not path.startswith(("custom_modules.", "data_prep.")):
        return None
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("name", sorted(READERS))
def test_every_argument_of_our_callables_is_set_in_the_yaml(name):
    """No default hides in a signature: what a YAML runs is what it says."""
    import inspect

    unset = []
    for tag, mapping in named_callables(compose(f"hparams/{name}")):
        function = our_callable(tag)
        if function is None:
            continue
        defaults = [p.name for p in inspect.signature(function).parameters.values()
                    if p.default is not inspect.Parameter.empty]
        unset += [f"{tag}({p})" for p in defaults if p not in mapping]
    assert not unset, f"{name}: {unset}"
