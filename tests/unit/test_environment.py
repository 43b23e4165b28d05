"""environment.yml (conda) and pyproject.toml (pip) must install the same pinned packages."""

import re
import tomllib

import yaml


def _norm(req: str) -> str:
    return re.sub(r"[-_.]+", "-", req.strip().lower())


def test_environment_yml_matches_pyproject(repo):
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    wanted = {_norm(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((repo / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {_norm(r) for r in pip_section if not r.startswith("-e")}
    assert listed == wanted, (
        f"only in environment.yml: {sorted(listed - wanted)}; only in pyproject.toml: {sorted(wanted - listed)}"
    )
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"])


def test_every_dependency_is_pinned(repo):
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"] + project["optional-dependencies"]["dev"]:
        assert "==" in req, f"{req} is not pinned with =="


def test_torch_pinned_to_the_cpu_build_on_disk(repo):
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    assert "torch==2.13.0" in project["dependencies"]


def test_ci_runs_the_readme_test_command(repo):
    ci = (repo / ".ci" / "run").read_text()
    readme = (repo / "README.md").read_text()
    assert "make test" in ci and "make test" in readme and "make lab" in readme


def test_notebook_kernels_start_with_idle_openmp_threads_asleep():
    """make install writes KERNEL_ENV into the venv's kernel spec (tradeoffs.threads.configure_kernelspec):
    without it, spinning OpenMP threads made one MiniLM call 40x slower inside a kernel on 2 cores."""
    import json
    import sys
    from pathlib import Path

    from tradeoffs.threads import KERNEL_ENV

    spec = Path(sys.prefix) / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"
    env = json.loads(spec.read_text()).get("env", {})
    assert {k: env.get(k) for k in KERNEL_ENV} == KERNEL_ENV, f"{spec} lacks {KERNEL_ENV}: run `make install`"
