"""The package's shape (docs/ARCHITECTURE.md): imports run downwards through the roles, only
the analysis layer draws, the library never imports the demo, the benchmarks, the recipes or
the tests, and no module is over 400 lines."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path("custom_modules")
# Lowest first; a module may import its own layer and those below it.
LAYERS = [{"errors", "files", "sidecars", "audio", "config"}, {"models"}, {"data"}, {"inference"},
          {"scoring"}, {"evaluation"}, {"diarization"},
          {"training"}, {"analysis"}, {"interop"}, {"interface"}, {"__main__"}]
MODULES = sorted(PACKAGE.rglob("*.py"))


def layer(module: str) -> int:
    """Layer of ``custom_modules.<role>[.<file>]``; the package's own ``__init__`` (which
    imports the model at once and the interface only when asked) is above everything."""
    if module in ("custom_modules", "custom_modules.__init__"):
        return len(LAYERS)
    role = module.split(".")[1]
    return next(i for i, roles in enumerate(LAYERS) if role in roles)


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert not any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree)), \
        f"{path}: relative import (this package imports absolutely)"
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    return names | {node.module for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module}


def name_of(path: Path) -> str:
    """``custom_modules.training.recipe``; a folder's ``__init__`` is named like the folder."""
    parts = path.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 2 else parts)


@pytest.mark.parametrize("path", MODULES, ids=str)
def test_imports_run_downwards(path):
    mine = layer(name_of(path))
    for imported in imports(path):
        top = imported.split(".")[0]
        assert top not in ("recipes", "data_prep", "benchmarks", "tests", "conftest"), imported
        if top == "matplotlib":
            assert name_of(path) == "custom_modules.analysis.plots", "only plots draws"
        if top == "custom_modules" and imported != "custom_modules":
            assert layer(imported) <= mine, f"{name_of(path)} imports {imported}"
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 400


def fresh_python(code: str) -> str:
    """What ``code`` prints in a new interpreter (nothing imported before it)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_training_and_verification_do_not_load_matplotlib():
    assert fresh_python("import sys, custom_modules.training.recipe, "
                        "custom_modules.evaluation.verification, custom_modules.interface.encoder;"
                        " print('matplotlib' in sys.modules)") == "False"


def test_the_public_names_still_import():
    assert fresh_python("from custom_modules import ECAPA_TDNN, MelFrontend, SpeakerEncoder; "
                        "print(SpeakerEncoder.__module__)") == "custom_modules.interface.encoder"


def test_no_warning_a_user_cannot_act_on(tmp_path):
    """SpeechBrain's "torchvision is not available - cannot save figures" and its quirks on
    import, and its label encoder's "Load called, but CategoricalEncoder is not empty", are
    filtered (under the recipes' INFO logging); other SpeechBrain messages still reach the
    user."""
    labels = tmp_path / "labels.txt"
    code = ("import logging; logging.basicConfig(level=logging.INFO, format='%(message)s'); "
            "import custom_modules, speechbrain.utils.train_logger; "
            "from speechbrain.dataio.encoder import CategoricalEncoder; "
            f"encoder = CategoricalEncoder(); encoder.update_from_iterable(['a', 'b']); "
            f"encoder.save({str(labels)!r}); encoder.load({str(labels)!r}); "
            "logging.getLogger('speechbrain.utils.train_logger').warning('other warning'); "
            "logging.getLogger('speechbrain.dataio.encoder').info('other encoder news')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    for unactionable in ("torchvision", "quirks", "not empty"):
        assert unactionable not in done.stderr
    assert "other warning" in done.stderr and "other encoder news" in done.stderr
