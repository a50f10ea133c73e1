"""The README keeps its promises: its two commands are what CI runs, and every path it names is real.

The README's first code block holds the two commands a newcomer types (set up and train; set up
and run the tests). ``.ci/readme_commands.py`` extracts them and ``.ci/run`` runs what it prints,
so these tests check the block, the extractor and that ``.ci/run`` holds no copy of its own.
The rest checks README.md and docs/*.md against the repository: every path they name exists,
none lies outside the repository, and the README's file tree lists every module of the package.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

EXTRACTOR = REPO / ".ci" / "readme_commands.py"
CI_RUN = REPO / ".ci" / "run"
README = REPO / "README.md"


def load_extractor():
    spec = importlib.util.spec_from_file_location("readme_commands", EXTRACTOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def extract(readme: Path | None = None) -> subprocess.CompletedProcess:
    """Run the extractor as CI does, on ``readme`` (its default, the repository's README, if None)."""
    args = [] if readme is None else [str(readme)]
    return subprocess.run(
        [sys.executable, str(EXTRACTOR), *args], capture_output=True, text=True, timeout=60, cwd=REPO
    )


def steps(command: str) -> list[str]:
    """A command's steps: its parts between ``&&``, ``||``, ``;`` and ``|``."""
    return [part.strip() for part in re.split(r"&&|\|\||;|\|", command) if part.strip()]


# --- the README's two commands, and CI running them -------------------------------------------


def test_readme_first_block_holds_a_train_command_and_a_test_command_that_both_install_the_package():
    result = extract()
    assert result.returncode == 0, result.stderr
    commands = result.stdout.splitlines()
    assert len(commands) == 2, commands
    train, test = commands
    for command in commands:
        assert re.match(r"pip install\b.*\s-e\s+[\"']?\.", steps(command)[0]), (
            f"does not start by installing the package (pip install ... -e .): {command}"
        )
    assert any(re.fullmatch(r"python3? scripts/fit\.py\b.*", step) for step in steps(train)), train
    assert re.fullmatch(r"(python3? -m )?pytest\b.*", steps(test)[-1]), f"last step is not pytest: {test}"
    assert re.search(r"\.\[[^\]]*\bdev\b", test), f"the test command does not install the dev extras: {test}"


def test_ci_run_takes_the_commands_from_the_readme_and_holds_no_copy_of_them():
    ci = CI_RUN.read_text(encoding="utf-8")
    assert "readme_commands.py" in ci
    assert "README.md" in ci
    commands = extract().stdout.splitlines()
    assert commands
    for command in commands:
        assert command not in ci, f".ci/run holds a copy of the README's command: {command}"
        for step in steps(command):
            if len(step.split()) > 1:  # a lone word such as `pytest` is bound to appear
                assert step not in ci, f".ci/run holds a copy of a step of the README's command: {step}"


def test_ci_run_runs_each_command_with_bash_in_a_fresh_venv_and_then_ruff():
    ci = CI_RUN.read_text(encoding="utf-8")
    assert "-m venv" in ci
    assert re.search(r"source \S*/bin/activate", ci)
    assert re.search(r'bash -c "set -o pipefail; \$command"', ci)
    assert "-eq 5" in ci, "pytest's exit 5 (no tests collected) is not treated as a failure"
    assert "ruff check ." in ci
    assert "ruff format --check ." in ci


def test_a_bare_pytest_is_the_quick_suite_and_the_readme_says_how_to_run_the_slow_tests(pytestconfig):
    """The README's test command finishes in minutes: the slow tests are left out unless asked for."""
    addopts = pytestconfig.getini("addopts")  # split as a shell splits it
    assert "-m" in addopts and addopts[addopts.index("-m") + 1] == "not slow", addopts
    readme = README.read_text(encoding="utf-8")
    assert "`pytest -m slow`" in readme, "the README does not say how to run the slow tests"


def test_ci_run_runs_the_slow_tests_after_the_readme_commands_and_fails_when_none_is_collected():
    ci = CI_RUN.read_text(encoding="utf-8")
    readme_loop, slow_step = (
        ci.index('for command in "${commands[@]}"'),
        ci.index("pytest -m slow </dev/null"),
    )
    assert readme_loop < slow_step < ci.index("ruff check ."), (
        "the slow step is not between the README and ruff"
    )
    after = ci[slow_step:]
    assert "$status -eq 5" in after[: after.index("ruff check .")], "exit 5 (no slow test collected) passes"


@pytest.mark.parametrize(
    "block",
    [
        "pip install -e . && python scripts/fit.py\n",
        "pip install -e .\npython scripts/fit.py\npytest\n",
        "# only a comment\n\n",
    ],
    ids=["one command", "three commands", "no command"],
)
def test_extractor_refuses_a_first_block_without_exactly_two_commands(tmp_path, block):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n```bash\n{block}```\n\n```bash\necho later blocks do not count\n```\n")
    result = extract(readme)
    assert result.returncode != 0
    assert result.stdout == ""
    assert "not 2" in result.stderr and str(readme) in result.stderr


def test_extractor_drops_trailing_comments_but_keeps_a_hash_inside_quotes_or_a_word(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "# title\n\ntext\n\n```bash\n"
        "# a comment line is not a command\n"
        "pip install \"pkg#1\" -e . && echo '#not' a#b \\# && python scripts/fit.py   # train\n"
        "\n"
        'pip install -e ".[dev]" \\\n'
        "    && pytest # test\n"
        "```\n"
    )
    result = extract(readme)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "pip install \"pkg#1\" -e . && echo '#not' a#b \\# && python scripts/fit.py",
        'pip install -e ".[dev]" && pytest',
    ]


def test_extractor_refuses_a_readme_whose_first_block_is_not_bash(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("```python\nprint(1)\nprint(2)\n```\n")
    result = extract(readme)
    assert result.returncode != 0
    assert "bash" in result.stderr


def test_extractor_default_is_the_readme_at_the_repository_root():
    assert load_extractor().DEFAULT_README == README


# --- the README's test command is a bare `pytest` --------------------------------------------------


def test_bare_pytest_entry_point_imports_the_shared_helpers_and_the_benchmarks():
    """`pytest`, not `python -m pytest`: only pyproject's pythonpath puts the repository root on sys.path."""
    entry_point = Path(sys.executable).with_name("pytest")
    if not entry_point.exists():
        pytest.skip(f"no pytest entry point beside {sys.executable}")
    result = subprocess.run(
        [str(entry_point), "--collect-only", "-q", "-p", "no:cacheprovider", "tests/test_cli.py",
         "tests/test_benchmark_worker.py"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in result.stdout.lower(), result.stdout


def test_a_pytest_without_the_project_installed_says_how_to_set_up_in_one_line():
    from tests.helpers import REQUIRED, setup_problem

    message = setup_problem((*REQUIRED, "no_such_module_xyz"))
    assert message is not None and "lacks no_such_module_xyz:" in message
    assert 'pip install "torch==2.13.0" -e ".[dev]"' in message and "\n" not in message
    assert setup_problem() is None  # everything the suite needs is here


def test_no_test_imports_conftest():
    """pytest imports conftest.py under a name of its own; importing it again makes a second copy."""
    importers = [
        path.name
        for path in sorted((REPO / "tests").glob("*.py"))
        if re.search(r"^\s*(from\s+\S*conftest\s+import|import\s+\S*conftest)", path.read_text(), re.M)
    ]
    assert not importers, f"import from tests.helpers instead: {importers}"


README_MAX_LINES = 200  # a newcomer reads it to the end; the deep topics live in docs/


def test_readme_fits_in_two_hundred_lines():
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/"


# --- paths that README.md and docs/*.md name ----------------------------------------------------

# A word in backticks is taken for a repository path when it starts with one of these; runs go to
# logs/ (and e.g. logs/lightning/version_0 is made by a run, not kept in git), so only logs/ itself
# is checked there.
PATH_PREFIXES = ("mlp_lightning/", "scripts/", "docs/", "tests/", "benchmarks/", ".ci/", "logs/")
TOP_LEVEL_FILES = ("BENCHMARKS.md", "README.md", "pyproject.toml", ".gitignore", ".ci/run")
# Places that are not in the repository, however they are named: a checkout may have shared/ beside
# the code (reference material that is not part of the project), and the rest is above or beside it.
OUTSIDE = ("shared/", "../", "./../", "~/", "/work/")

_BACKTICKS = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def prose(text: str) -> str:
    """``text`` without its fenced code blocks (commands, trees and output are checked elsewhere)."""
    kept, fence = [], None
    for line in text.splitlines():
        opening = _FENCE.match(line)
        if fence is None and opening:
            fence = opening[1]
        elif fence is not None and line.strip().startswith(fence) and set(line.strip()) == {fence[0]}:
            fence = None
        elif fence is None:
            kept.append(line)
    return "\n".join(kept)


def named_paths(page: Path, text: str) -> list[tuple[str, str | None]]:
    """(as written, repository-relative path or None if outside the repository) for each path named.

    Words in backticks are paths from the repository root; link targets are relative to the page.
    """
    found: list[tuple[str, str | None]] = []
    text = prose(text)
    for _, span in _BACKTICKS.findall(text):
        for word in span.split():
            word = word.strip("\"'(),;").rstrip(".:")
            word = re.sub(r"(\.\w+):[\w.:]+$", r"\1", word)  # file.py:function or file.py:12
            if word.startswith(OUTSIDE) or "/../" in word:
                found.append((word, None))
            elif word.startswith(PATH_PREFIXES) or word in TOP_LEVEL_FILES:
                found.append((word, word))
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
            continue  # a URL, mailto:, or an anchor on the same page
        resolved = (page.parent / target.split("#")[0]).resolve()
        if resolved != REPO and REPO not in resolved.parents:
            found.append((target, None))
            continue
        relative = resolved.relative_to(REPO).as_posix()
        found.append((target, None if (relative + "/").startswith(OUTSIDE) else relative))
    return found


def exists(relative: str) -> bool:
    if relative.startswith("logs/"):
        relative = "logs"  # what a run writes there is not in the repository; the folder is
    if "*" in relative:
        return any(REPO.glob(relative))
    return (REPO / relative).exists()


def path_problems(page: Path, text: str | None = None) -> list[str]:
    """What is wrong with the paths ``page`` (its ``text``, read from it if None) names."""
    text = page.read_text(encoding="utf-8") if text is None else text
    where = page.relative_to(REPO).as_posix()
    problems = []
    for written, relative in named_paths(page, text):
        if relative is None:
            problems.append(f"{where}: `{written}` is outside the repository; describe it in words")
        elif not exists(relative):
            problems.append(f"{where}: `{written}` does not exist in this repository")
    return problems


def documentation_pages() -> list[Path]:
    return [README, *sorted((REPO / "docs").glob("*.md"))]


def test_every_repository_path_the_readme_and_docs_name_exists_and_none_is_outside_the_repository():
    problems = [problem for page in documentation_pages() for problem in path_problems(page)]
    assert not problems, "\n".join(problems)


def test_path_check_catches_a_missing_path_and_one_outside_the_repository():
    text = (
        "The model of `shared/reference/notebook.txt`; see `scripts/fit.py --resume`, "
        "`mlp_lightning/cli.py:parse_fit_args`, `tests/test_*.py`, `logs/lightning/version_0`, "
        "[BENCHMARKS.md](../BENCHMARKS.md), [up](../../elsewhere.md), `scripts/nope.py`, "
        "[web](https://example.com/x.md), `train/loss`, `checkpoints/last.ckpt`, `../`.\n"
        "```bash\npython scripts/not_checked_in_code_blocks.py\n```\n"
    )
    assert path_problems(REPO / "docs" / "x.md", text) == [
        "docs/x.md: `shared/reference/notebook.txt` is outside the repository; describe it in words",
        "docs/x.md: `scripts/nope.py` does not exist in this repository",
        "docs/x.md: `../` is outside the repository; describe it in words",
        "docs/x.md: `../../elsewhere.md` is outside the repository; describe it in words",
    ]


# --- the README's file tree ---------------------------------------------------------------------

_NAMES = re.compile(r"[\w.\-]+(?:/[\w.\-]+)*/?(?:, [\w.\-]+(?:/[\w.\-]+)*/?)*")


def readme_tree(text: str) -> list[str]:
    """The paths the README's file tree lists (the fenced block that starts with pyproject.toml).

    Two spaces of indentation per level; a name that ends in ``/`` opens a folder for the lines
    indented under it; several names may share a line, separated by ``, ``; whatever follows the
    names is a description.
    """
    blocks = re.findall(r"^ {0,3}```[^\n]*\n(.*?)^ {0,3}```", text, re.DOTALL | re.MULTILINE)
    trees = [block for block in blocks if block.lstrip().startswith("pyproject.toml")]
    assert trees, "the README has no file tree (a code block that starts with pyproject.toml)"
    paths: list[str] = []
    folders: list[str] = []  # folders[d]: the folder opened at depth d
    for number, line in enumerate(trees[0].splitlines(), 1):
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        assert indent % 2 == 0, f"tree line {number} is indented by {indent} spaces, not a multiple of 2"
        depth = indent // 2
        assert depth <= len(folders), f"tree line {number} is indented under no folder: {line.strip()}"
        folders = folders[:depth]
        names = _NAMES.match(line.lstrip(" "))
        assert names, f"tree line {number} names nothing: {line.strip()}"
        for name in names[0].split(", "):
            paths.append("".join(folders) + name)
            if name.endswith("/"):
                folders = folders[:depth] + [name]
    return paths


def test_readme_tree_lists_every_module_of_the_package_under_its_folder():
    listed = set(readme_tree(README.read_text(encoding="utf-8")))
    modules = sorted(
        path.relative_to(REPO).as_posix()
        for path in (REPO / "mlp_lightning").rglob("*.py")
        if path.name != "__init__.py"
    )
    missing = [module for module in modules if module not in listed]
    assert not missing, "the README's file tree leaves out: " + ", ".join(missing)


def test_every_path_in_the_readme_tree_exists():
    missing = [path for path in readme_tree(README.read_text(encoding="utf-8")) if not (REPO / path).exists()]
    assert not missing, "the README's file tree names what is not in the repository: " + ", ".join(missing)


def test_tree_parser_reads_folders_by_indentation_and_shared_lines():
    text = (
        "```\npyproject.toml\npkg/        the package\n  a.py, b.py   two\n  sub/\n    c.py  three\n"
        "  d.py\ntop/x.py   a file in a folder\n```\n"
    )
    assert readme_tree(text) == [
        "pyproject.toml",
        "pkg/",
        "pkg/a.py",
        "pkg/b.py",
        "pkg/sub/",
        "pkg/sub/c.py",
        "pkg/d.py",
        "top/x.py",
    ]


def test_repository_changes_sees_a_file_written_into_a_checkout_and_not_an_ignored_one(tmp_path):
    """What conftest's session end compares: the suite fails when it leaves a new or changed file."""
    from tests.helpers import repository_changes

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("logs/*\n")
    before = repository_changes(tmp_path)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "run.txt").write_text("ignored")
    assert repository_changes(tmp_path) == before
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "run.txt").write_text("written")
    assert repository_changes(tmp_path) - before == {"?? ref/run.txt"}
    assert repository_changes(tmp_path / "not-a-checkout") is None


def test_the_docs_give_the_image_grids_margin_and_the_help_names_classes_not_blobs():
    from mlp_lightning.core.boundary_image import GRID_MARGIN
    from mlp_lightning.core.hparams import HParams

    tensorboard = (REPO / "docs" / "tensorboard.md").read_text(encoding="utf-8")
    assert f"{GRID_MARGIN:.0%} of their extent" in tensorboard and "plus 1.0 on every side" not in tensorboard
    help_text = next(f.metadata["help"] for f in dataclasses.fields(HParams) if f.name == "num_classes")
    assert "blobs" not in help_text, help_text
