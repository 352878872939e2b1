"""Loading a recipe's HyperPyYAML file (and the model it names) with one-line errors instead
of tracebacks."""

import sys

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml
from ruamel.yaml import YAMLError

from custom_modules.pretrained import load_embedder


def load_hparams(argv: list[str]) -> tuple[dict, dict]:
    """Parse ``hparams.yaml --key=value ...`` the SpeechBrain way and load the file.

    Returns ``(hparams, run_opts)``. A missing or malformed file, or a ``!PLACEHOLDER`` left
    unset, ends the program with ``error: <file>: <problem>`` on one line.
    """
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    try:
        with open(hparams_file, encoding="utf-8") as handle:
            return load_hyperpyyaml(handle, overrides), run_opts
    except OSError as error:
        sys.exit(f"error: {hparams_file}: cannot read it ({error.strerror})")
    except YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        sys.exit(f"error: {hparams_file}:{line} malformed YAML ({problem})")
    except (ValueError, KeyError, AttributeError, ImportError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        hint = " (set it on the command line, e.g. --data_folder=...)" \
            if "PLACEHOLDER" in message else ""
        sys.exit(f"error: {hparams_file}: {message}{hint}")


def run_with_model(argv: list[str], step: str) -> tuple[dict, dict]:
    """Load the YAML, the model it names (``pretrained_path``, ``checkpoint_path``,
    ``device``) and call ``hparams[step](embedder)``; returns ``(hparams, result)``. Bad input
    ends the program with ``error: <problem>`` on one line."""
    hparams, _ = load_hparams(argv)
    try:
        embedder = load_embedder(hparams["pretrained_path"], hparams["checkpoint_path"],
                                 hparams["device"])
        return hparams, hparams[step](embedder)
    except (ValueError, RuntimeError) as error:
        sys.exit(f"error: {error}")
