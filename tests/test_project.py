"""The project's wiring: install files, CI, README, book configuration, notebook pairing, the command line."""

from __future__ import annotations

import ast
import fnmatch
import gzip
import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import jupytext
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from modelmix_lite import cli
from modelmix_lite.data.tasks import TASKS
from modelmix_lite.errors import DataError

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.py"))


def _load_yaml(name: str) -> dict:
    return yaml.safe_load((REPO_ROOT / name).read_text())


def _pins(requirements: list[str]) -> dict[str, SpecifierSet]:
    """Normalised distribution name -> version specifier."""
    parsed = [Requirement(r) for r in requirements]
    return {re.sub(r"[-_.]+", "-", r.name).lower(): r.specifier for r in parsed}


# --- install files ---------------------------------------------------------------------------------------


def test_environment_yml_pins_what_pyproject_pins() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *(r for extra in ("book", "dev") for r in project["optional-dependencies"][extra])]
    conda = _load_yaml("environment.yml")["dependencies"]
    pip = next(d["pip"] for d in conda if isinstance(d, dict))
    assert _pins([r for r in pip if not r.startswith("-")]) == _pins(wanted)
    assert "-e ." in pip
    python = next(d for d in conda if isinstance(d, str) and d.startswith("python="))
    assert SpecifierSet(project["requires-python"]).contains(python.split("=")[1])
    assert _pins(wanted)["torch"] == SpecifierSet(">=2.3,<2.14")  # <2.14: the CPU wheel, not 3 GB of CUDA


def test_ci_script_runs_make_test() -> None:
    script = REPO_ROOT / ".ci" / "run"
    lines = [line for line in script.read_text().splitlines() if line.strip()]
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines
    assert lines[-1] == "make test"
    assert os.access(script, os.X_OK)


def test_readme_starts_with_the_two_commands() -> None:
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.S)
    commands = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    assert [c for c in commands if c][:2] == ["make book", "make test"]


def _make_dry_run(target: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "PROFILE", "JB_FLAGS")}
    run = subprocess.run(["make", "-n", "-B", target], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
    return run.stdout


def test_make_test_installs_generates_tests_and_builds_the_smoke_book() -> None:
    lines = _make_dry_run("test").splitlines()
    expected = [
        "test -x .venv/bin/python || python3 -m venv .venv",
        '.venv/bin/python -m pip install -e ".[book,dev]"',
        ".venv/bin/python -m modelmix_lite phantom --out data/phantom.tmp --preset default --seed 0",
        ".venv/bin/python -m pytest",
        "MODELMIX_PROFILE=smoke .venv/bin/jupyter-book build . -W --keep-going --all --path-output _build/smoke",
    ]
    assert [line for line in lines if line in expected] == expected


def test_make_book_builds_in_the_cpu_profile() -> None:
    assert "MODELMIX_PROFILE=cpu .venv/bin/jupyter-book build . -W --keep-going --all" in _make_dry_run("book").splitlines()


def test_jupyter_book_is_version_1() -> None:
    assert version("jupyter-book").split(".")[0] == "1"  # 2.x is another engine that ignores _config.yml


# --- the book --------------------------------------------------------------------------------------------


def _toc_files(node: object) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k in ("root", "file")] + [f for v in node.values() for f in _toc_files(v)]
    if isinstance(node, list):
        return [f for v in node for f in _toc_files(v)]
    return []


def test_every_toc_entry_exists_once() -> None:
    files = _toc_files(_load_yaml("_toc.yml"))
    assert "book/intro" in files and "notebooks/01_data_preparation" in files
    assert len(files) == len(set(files))
    missing = [f for f in files if not any((REPO_ROOT / f"{f}{ext}").exists() for ext in (".md", ".py"))]
    assert missing == []


def test_book_config() -> None:
    config = _load_yaml("_config.yml")
    assert config["only_build_toc_files"] is True
    assert {"**/*.ipynb", ".venv", "_build", "data", "runs", "**/.ipynb_checkpoints"} <= set(config["exclude_patterns"])
    assert config["execute"]["execute_notebooks"] == "force"
    assert config["execute"]["timeout"] >= 1800
    sphinx = config["sphinx"]
    assert sphinx["config"]["nb_execution_raise_on_error"] is True
    assert sphinx["config"]["nb_custom_formats"] == {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
    assert {"sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"} <= set(sphinx["extra_extensions"])
    assert config["repository"]["url"].startswith("https://github.com/")
    assert config["repository"]["branch"] == "main"
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert config["bibtex_bibfiles"] == ["references.bib"]
    assert (REPO_ROOT / "references.bib").is_file()


def _package_modules() -> set[str]:
    """Every module and subpackage of modelmix_lite (``__main__`` and the top package itself aside)."""
    package = REPO_ROOT / "modelmix_lite"
    names = set()
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts and parts[-1] != "__main__":
            names.add(".".join(("modelmix_lite", *parts)))
    return names


def _apidoc_tweaks():
    """book/_ext/apidoc_tweaks.py, the book's local Sphinx extension, imported as a module."""
    path = REPO_ROOT / "book" / "_ext" / "apidoc_tweaks.py"
    spec = importlib.util.spec_from_file_location("apidoc_tweaks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_reference_has_a_page_for_every_module(tmp_path: Path) -> None:
    # What the book build generates from book/api.md (autosummary, :recursive: through the packages, with the
    # book's module template), generated here by sphinx-autogen: one page per module, none missing, none stale.
    api = (REPO_ROOT / "book" / "api.md").read_text()
    assert not re.search(r"^\s+modelmix_lite\s*$", api, re.M), "recursing into modelmix_lite would import __main__"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx.ext.autosummary.generate", "-o", str(tmp_path), "-t", "book/_templates", "book/api.md"],
        cwd=REPO_ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "failed to import" not in result.stdout + result.stderr, result.stdout + result.stderr
    pages = {path.stem for path in tmp_path.glob("*.rst")}
    modules = _package_modules()
    assert modules - pages == set(), "add these modules to a group of book/api.md (or put them in a listed package)"
    assert pages - modules == set(), "book/api.md lists modules that do not exist"
    for page in pages:
        text = (tmp_path / f"{page}.rst").read_text()
        assert re.search(rf"^\.\. automodule:: {re.escape(page)}$", text, re.M), page


def test_api_reference_pages_are_built() -> None:
    # The generated pages live in book/api/ (the :toctree: of book/api.md), are not committed, and stay in the
    # build although _toc.yml does not list them (only_build_toc_files excludes every other source file).
    config = _load_yaml("_config.yml")
    sphinx = config["sphinx"]
    tweaks = _apidoc_tweaks()
    assert sphinx["local_extensions"] == {"apidoc_tweaks": "book/_ext"}
    assert "sphinx.ext.autosummary" in sphinx["extra_extensions"]
    assert sphinx["config"]["autosummary_generate"] is True
    assert sphinx["config"]["templates_path"] == ["book/_templates"]
    assert (REPO_ROOT / "book/_templates/autosummary/module.rst").is_file()
    toctrees = set(re.findall(r"^\s+:toctree:\s*(\S+)\s*$", (REPO_ROOT / "book" / "api.md").read_text(), re.M))
    assert {f"book/{folder}" for folder in toctrees} == {tweaks.GENERATED_DIR}
    assert f"/{tweaks.GENERATED_DIR}/" in (REPO_ROOT / ".gitignore").read_text().splitlines()
    page = f"{tweaks.GENERATED_DIR}/modelmix_lite.data.tasks.rst"
    stale = f"{tweaks.GENERATED_DIR}/modelmix_lite.no_such_module.rst"
    assert not any(fnmatch.fnmatch(page, pattern) for pattern in config["exclude_patterns"])
    # What sphinx-external-toc leaves in exclude_patterns, and what apidoc_tweaks makes of it.
    sphinx_config = SimpleNamespace(exclude_patterns=[*config["exclude_patterns"], page, stale, "book/other.md"])
    tweaks.keep_generated_pages(None, sphinx_config)
    assert sphinx_config.exclude_patterns == [*config["exclude_patterns"], stale, "book/other.md"]


def test_api_reference_settings() -> None:
    config = _load_yaml("_config.yml")
    sphinx = config["sphinx"]["config"]
    # Types in the description of documented parameters only: a dataclass's fields are its documented
    # Attributes, not also an undocumented "Parameters" list.
    assert sphinx["autodoc_typehints"] == "description"
    assert sphinx["autodoc_typehints_description_target"] == "documented"
    assert re.fullmatch(r"20\d\d, the modelmix_lite authors", config["copyright"])
    # A constant's value is printed only when short: TABLES prints thousands of characters.
    from modelmix_lite.data.tasks import UNANNOTATED
    from modelmix_lite.reproduce.specs import TABLES

    tweaks = _apidoc_tweaks()
    assert tweaks.value_too_long(TABLES)
    assert not tweaks.value_too_long(UNANNOTATED)
    assert tweaks.value_too_long("x" * (tweaks.MAX_VALUE_CHARS + 1))
    assert not tweaks.value_too_long("x" * (tweaks.MAX_VALUE_CHARS - 2))  # its repr adds two quotes


# --- notebooks -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("script", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_paired_with_an_output_free_ipynb(script: Path) -> None:
    twin = script.with_suffix(".ipynb")
    assert twin.exists(), f"{twin.name} is missing: run `make sync`"
    cells = [(c.cell_type, c.source) for c in jupytext.read(script).cells]
    assert cells == [(c.cell_type, c.source) for c in jupytext.read(twin).cells], "out of sync: run `make sync`"
    code = [c for c in json.loads(twin.read_text())["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code), f"{twin.name} holds outputs"


@pytest.mark.parametrize("script", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_has_one_parameters_cell(script: Path) -> None:
    cells = [c for c in jupytext.read(script).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    assigned = {
        node.targets[0].id: ast.unparse(node.value)
        for node in ast.parse(cells[0].source).body
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
    }
    # "auto" (notebook 05) picks the gpu profile when CUDA is present; the book build sets the variable.
    assert assigned["profile"] in {f"os.environ.get('MODELMIX_PROFILE', '{p}')" for p in ("cpu", "auto")}
    assert "data_root" in assigned


# --- command line ----------------------------------------------------------------------------------------


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert [name for name in cli.COMMANDS if re.search(rf"^  {name} +\S", out, re.M)] == list(cli.COMMANDS)


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_command_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([name, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m modelmix_lite {name} ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "python -m modelmix_lite: error: a command is required: phantom, inspect"),
        (["bogus"], "python -m modelmix_lite: error: argument COMMAND: invalid choice: 'bogus'"),
        (["phantom", "--out", "x", "--bogus"], "python -m modelmix_lite phantom: error: unrecognized arguments: --bogus"),
        (["phantom", "--out", "x", "--preset", "huge"], "error: argument --preset: invalid choice: 'huge'"),
        (["phantom", "--out", "x", "--tasks", "lits"], "error: argument --tasks: invalid choice: 'lits'"),
        (["inspect", "--dataset", "acdc"], "error: the following arguments are required: --root"),
    ],
)
def test_bad_arguments_end_with_one_error_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err.splitlines()[-1]


def test_phantom_presets_are_the_generators(capsys: pytest.CaptureFixture[str]) -> None:
    from modelmix_lite.data.phantom import PRESETS

    with pytest.raises(SystemExit):
        cli.main(["phantom", "--out", "x", "--preset", "huge"])
    choices = re.search(r"\(choose from (.*)\)$", capsys.readouterr().err.rstrip()).group(1)
    assert sorted(choices.split(", ")) == sorted(map(repr, PRESETS))


def test_library_errors_become_one_line_and_status_1(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def broken(argv: list[str]) -> int:
        raise DataError("x.nii.gz: label volume contains NaN or Inf values")

    monkeypatch.setitem(cli.COMMANDS, "broken", broken)
    assert cli.main(["broken"]) == 1
    assert capsys.readouterr().err == "python -m modelmix_lite broken: error: x.nii.gz: label volume contains NaN or Inf values\n"


def _tree(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every file (``.gz`` decompressed: gzip headers carry a timestamp)."""
    return {
        str(path.relative_to(root)): gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_phantom_command_writes_what_generate_phantom_writes(phantom_root: Path, tmp_path: Path) -> None:
    assert cli.main(["phantom", "--out", str(tmp_path), "--preset", "smoke", "--seed", "0"]) == 0
    assert _tree(tmp_path) == _tree(phantom_root)


def test_phantom_command_writes_only_the_chosen_tasks(tmp_path: Path) -> None:
    assert cli.main(["phantom", "--out", str(tmp_path), "--preset", "smoke", "--tasks", "acdc", "myops"]) == 0
    folders = {p.name for p in tmp_path.iterdir()}
    assert {TASKS["acdc"].folder, TASKS["myops"].folder} <= folders and TASKS["mscmr"].folder not in folders


def test_inspect_command_prints_the_report_as_json(phantom_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modelmix_lite.data.inspect import inspect_dataset

    assert cli.main(["inspect", "--dataset", "mscmr", "--root", str(phantom_root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(inspect_dataset("mscmr", phantom_root)))


def test_python_dash_m_returns_the_command_status(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "modelmix_lite", "inspect", "--dataset", "acdc", "--root", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 1, run.stderr
    assert str(tmp_path) in run.stdout


def _first_code_cell(notebook: Path) -> str:
    import nbformat

    cells = nbformat.read(notebook.with_suffix(".ipynb"), as_version=4).cells
    return next(cell.source for cell in cells if cell.cell_type == "code")


def test_every_notebook_opens_with_the_same_colab_setup_cell() -> None:
    cells = {notebook.stem: _first_code_cell(notebook) for notebook in NOTEBOOKS}
    assert len(set(cells.values())) == 1, f"setup cells differ: {sorted(cells)}"
    setup = next(iter(cells.values()))
    assert '"google.colab" in sys.modules' in setup and "--no-deps" in setup  # never reinstalls Colab's torch
    assert "--depth" in setup and 'os.chdir("/content/modelmix_lite/notebooks")' in setup  # results reachable


def test_notebooks_that_train_ask_colab_for_a_gpu() -> None:
    import nbformat

    for notebook in NOTEBOOKS:
        metadata = nbformat.read(notebook.with_suffix(".ipynb"), as_version=4).metadata
        trains = "train_or_load(" in notebook.read_text() or "load_or_sweep(" in notebook.read_text()
        assert (metadata.get("accelerator") == "GPU") == trains, notebook.name
