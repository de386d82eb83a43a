"""The GitHub Actions workflows: the tests workflow runs the README's test command, the book workflow publishes it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO_ROOT / ".github" / "workflows"


def _workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def _triggers(workflow: dict) -> dict:
    """The ``on:`` mapping (YAML 1.1 reads the bare key ``on`` as ``True``)."""
    return workflow.get("on", workflow.get(True))


def _steps(job: dict, key: str) -> list[str]:
    """The ``run`` commands or ``uses`` actions (version stripped) of a job's steps, in order."""
    values = [step[key] for step in job["steps"] if key in step]
    return [v.split("@")[0] for v in values] if key == "uses" else values


def _readme_commands() -> list[str]:
    """The commands of the README's first code block, comments stripped: ``make book``, ``make test``."""
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.S).group(1)
    return [c for c in (line.split("#")[0].strip() for line in block.splitlines()) if c]


def _setup_python(job: dict) -> dict:
    return next(step["with"] for step in job["steps"] if step.get("uses", "").startswith("actions/setup-python@"))


@pytest.mark.parametrize("name", ["tests.yml", "book.yml"])
def test_workflow_parses_and_pins_action_versions(name: str) -> None:
    workflow = _workflow(name)
    assert workflow["name"] == name.removesuffix(".yml")
    assert workflow["jobs"]
    actions = [step["uses"] for job in workflow["jobs"].values() for step in job["steps"] if "uses" in step]
    assert all(re.fullmatch(r"[\w-]+/[\w-]+@v\d+", action) for action in actions), actions


def test_readme_commands_are_the_make_targets() -> None:
    assert _readme_commands()[:2] == ["make book", "make test"]


def test_tests_workflow_runs_the_readme_test_command_on_push_and_pull_requests() -> None:
    workflow = _workflow("tests.yml")
    assert set(_triggers(workflow)) == {"push", "pull_request"}
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    assert _steps(job, "uses") == ["actions/checkout", "actions/setup-python"]
    assert _setup_python(job) == {"python-version": "3.11", "cache": "pip", "cache-dependency-path": "pyproject.toml"}
    assert _steps(job, "run") == [_readme_commands()[1]] == ["make test"]


def test_book_workflow_builds_on_push_to_main_and_deploys_pages() -> None:
    workflow = _workflow("book.yml")
    triggers = _triggers(workflow)
    assert triggers["push"] == {"branches": ["main"]}
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    assert workflow["concurrency"] == {"group": "pages", "cancel-in-progress": False}
    build, deploy = workflow["jobs"]["build"], workflow["jobs"]["deploy"]
    assert _steps(build, "uses") == [
        "actions/checkout", "actions/setup-python", "actions/upload-artifact", "actions/upload-pages-artifact"
    ]
    assert _setup_python(build)["python-version"] == "3.11"
    fetch, build_book = _steps(build, "run")
    assert build_book == _readme_commands()[0] == "make book"
    # the real data first (issue 14); a failed download leaves the phantom, never a failed book
    fetch_step = next(step for step in build["steps"] if step.get("id") == "real_data")
    assert fetch_step["continue-on-error"] is True and "download all --out data/real --accept-terms" in fetch
    assert fetch.strip().endswith('echo "MODELMIX_REAL_DATA=data/real" >> "$GITHUB_ENV"')
    upload = next(step for step in build["steps"] if step.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html"
    assert deploy["needs"] == "build"
    assert deploy["environment"]["name"] == "github-pages"
    assert _steps(deploy, "uses") == ["actions/deploy-pages"]


def test_make_book_writes_where_the_book_workflow_uploads() -> None:
    """``jupyter-book build .`` without ``--path-output`` writes ``_build/html``, the uploaded folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "PROFILE", "JB_FLAGS")}
    dry_run = subprocess.run(["make", "-n", "-B", "book"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                             check=True)
    (build,) = [line for line in dry_run.stdout.splitlines() if "jupyter-book build" in line]
    assert " build . " in build and "--path-output" not in build
