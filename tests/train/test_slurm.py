"""utils/slurm.pl: argument parsing, generated job script, and a run through a fake sbatch."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SLURM = Path(__file__).resolve().parents[2] / "utils" / "slurm.pl"
pytestmark = pytest.mark.skipif(shutil.which("perl") is None, reason="perl not installed")

FAKE_SBATCH = """#!/usr/bin/env bash
# test double: runs each array task of the script locally
for a in "$@"; do case $a in --array=*) r=${a#--array=}; r=${r%%%*};; esac; script=$a; done
for t in $(seq ${r%-*} ${r#*-}); do SLURM_ARRAY_TASK_ID=$t bash "$script"; done
exit 0
"""


def _run(args, cwd, env=None):
    return subprocess.run([str(SLURM), *args], cwd=cwd, capture_output=True, text=True, env=env)


def test_dry_run_script_and_sbatch_line(tmp_path):
    r = _run(["--mem", "4G", "--num_threads", "2", "--gpu", "1", "--max-jobs-run", "3", "--time", "1:00:00",
              "--dry-run", "true", "JOB=1:4", "exp/log/train.JOB.log", "python", "-m", "x", "--nj", "JOB",
              "--text", "a b"], tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "python -m x --nj ${SLURM_ARRAY_TASK_ID:-1} --text 'a b'" in out
    assert 'log="exp/log/train.${SLURM_ARRAY_TASK_ID:-1}.log"' in out
    sb = [l for l in out.splitlines() if l.startswith("sbatch")][0].split()
    assert sb[:2] == ["sbatch", "--wait"]
    for want in ("--mem 4G", "--cpus-per-task 2", "--gres=gpu:1", "--array=1-4%3", "--time 1:00:00"):
        assert want in " ".join(sb)
    assert sb[-1] == "exp/log/q/train.JOB.sh"
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize("args,msg", [
    (["--memory", "3", "a.log", "true"], "unknown option --memory"),
    (["--gpu", "x", "a.log", "true"], "--gpu must be a positive integer"),
    (["JOB=3:1", "a.log", "true"], "bad range"),
    (["a.log"], "missing log file and command"),
    (["--mem"], "needs a value"),
])
def test_bad_arguments(tmp_path, args, msg):
    r = _run(args, tmp_path)
    assert r.returncode == 1 and msg in r.stderr


def test_runs_array_and_reports_failures(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sbatch").write_text(FAKE_SBATCH)
    (bindir / "sbatch").chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")
    r = _run(["JOB=1:3", "log/echo.JOB.log", "echo", "task", "JOB"], tmp_path, env)
    assert r.returncode == 0, r.stderr
    for t in (1, 2, 3):
        assert f"task {t}" in (tmp_path / "log" / f"echo.{t}.log").read_text()
    r = _run(["JOB=1:2", "log/f.JOB.log", "test", "JOB", "-eq", "1"], tmp_path, env)
    assert r.returncode == 1 and "log/f.2.log (exit 1)" in r.stderr and "1 / 2" in r.stderr
