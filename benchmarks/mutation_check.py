"""Does the test suite notice when the code is wrong? Each mutation below once survived it;
this applies each to a copy of the working tree, runs the tests that guard it, and reports
whether they fail (as they must). Exits 1 when a mutation survives.

    python -m benchmarks.mutation_check          # about a minute on 2 cores

The copy is made with ``git ls-files`` (tracked and untracked, not ignored), so the tree here
is never touched.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple


class Mutation(NamedTuple):
    name: str
    path: str
    original: str
    mutated: str
    tests: str


MUTATIONS = [
    Mutation("AS-norm without the mean", "custom_modules/evaluation/backend_fit.py",
             "names[1]: Scoring(names[1], mean, cohort=cohort, top_k=top_k)",
             "names[1]: Scoring(names[1], None, cohort=cohort, top_k=top_k)",
             "tests/test_guards.py"),
    Mutation("valid_max_seconds ignored", "custom_modules/training/validation.py",
             "chosen[i] = _cropped(catalogue[i], max_samples)", "chosen[i] = catalogue[i]",
             "tests/test_guards.py"),
    Mutation("--device checked, then ignored", "recipes/model_step.py",
             "                             device_of(recipe.run_opts))",
             "                             \"cpu\")",
             "tests/test_guards.py"),
    Mutation("the AAM-softmax head left unclipped", "custom_modules/training/brain.py",
             "[p for group in optimizer.param_groups for p in group[\"params\"]]",
             "optimizer.param_groups[0][\"params\"]", "tests/test_training.py -k clipped"),
    Mutation("the time budget never plans upwards", "custom_modules/training/schedules.py",
             "            self.decide(self._estimate())",
             "            self.decide(min(self.planned, self._estimate()))",
             "tests/test_training.py -k budget"),
]


def copy_tree(source: Path, target: Path) -> None:
    """The files git knows of (tracked or untracked, not ignored) copied into ``target``."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=source, capture_output=True, text=True, check=True).stdout
    for name in listed.splitlines():
        if (source / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, target / name)


def passes(tests: str, tree: Path) -> bool:
    """Whether ``tests`` (pytest arguments) pass in ``tree``."""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *tests.split()], cwd=tree, capture_output=True, text=True,
                          check=False).returncode == 0


def survives(mutation: Mutation, tree: Path) -> bool:
    """Apply ``mutation`` in ``tree``, run its tests, undo it; whether they all passed."""
    path = tree / mutation.path
    text = path.read_text(encoding="utf-8")
    if text.count(mutation.original) != 1:
        sys.exit(f"error: {mutation.path}: the code to mutate ({mutation.name}) is not there "
                 f"once; update benchmarks/mutation_check.py")
    path.write_text(text.replace(mutation.original, mutation.mutated), encoding="utf-8")
    try:
        return passes(mutation.tests, tree)
    finally:
        path.write_text(text, encoding="utf-8")


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        tree = Path(scratch)
        copy_tree(Path.cwd(), tree)
        for tests in sorted({m.tests for m in MUTATIONS}):   # unmutated, they must pass
            if not passes(tests, tree):
                sys.exit(f"error: {tests} fail on the code as it is; fix that first")
        survived = []
        for mutation in MUTATIONS:
            alive = survives(mutation, tree)
            print(f"{mutation.name:<40} {'SURVIVED' if alive else 'caught'} "
                  f"({mutation.tests})")
            survived += [mutation.name] * alive
    print(f"{len(MUTATIONS) - len(survived)} of {len(MUTATIONS)} mutations caught")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
