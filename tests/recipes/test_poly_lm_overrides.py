"""egs/TEMPLATE/poly1/poly.sh: the per-exp LM overrides (lm_overrides / lm_steps_single) run in bash."""
import re
import subprocess
from pathlib import Path

import pytest

POLY = Path(__file__).resolve().parents[2] / "egs" / "TEMPLATE" / "poly1" / "poly.sh"
EXPS = ["multi", "asr", "tts", "lid", "gid", "asr_tokens", "tts_kmeans"]


def function_text(name: str) -> str:
    """The text of the top-level bash function ``name() { ... }`` of poly.sh (up to its closing ``}`` line)."""
    lines = POLY.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{name}() {{"))
    if lines[start].rstrip().endswith("}"):
        return lines[start]
    end = next(i for i in range(start + 1, len(lines)) if lines[i] == "}")
    return "\n".join(lines[start:end + 1])


def overrides(spec: str, name: str):
    """``(returncode, stdout, stderr)`` of ``lm_overrides name`` with ``lm_single_steps=spec``."""
    script = "\n".join(["set -euo pipefail", "kmeans_k=256", function_text("lm_overrides"),
                        function_text("lm_steps_single"), f"lm_single_steps='{spec}'",
                        f'out=$(lm_overrides {name}) || exit 3', 'echo "${out}"'])
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    return p.returncode, " ".join(p.stdout.split()), p.stderr


def max_steps(text: str):
    m = re.findall(r"--train\.max_steps (\S+)", text)
    assert len(m) <= 1, text
    return int(m[0]) if m else None


# the steps each exp must get: (spec, {exp: steps or None}), written out by hand
CASES = [
    ("", {e: None for e in EXPS}),
    ("500", {"multi": None, **{e: 500 for e in EXPS[1:]}}),
    ("asr=400 tts=300 lid=150 gid=150",
     {"multi": None, "asr": 400, "tts": 300, "lid": 150, "gid": 150, "asr_tokens": 400, "tts_kmeans": 300}),
    ("gid=7", {"multi": None, "asr": None, "tts": None, "lid": None, "gid": 7, "asr_tokens": None,
               "tts_kmeans": None}),
]


@pytest.mark.parametrize("spec,want", CASES)
def test_single_task_steps(spec, want):
    for name in EXPS:
        rc, out, err = overrides(spec, name)
        assert rc == 0, (name, err)
        assert max_steps(out) == want[name], (spec, name, out)


def test_single_task_exps_select_one_task_and_drop_the_multitask_weights():
    task_of = {"asr": "asr", "tts": "tts", "lid": "lid", "gid": "gid", "asr_tokens": "asr", "tts_kmeans": "tts"}
    for name, task in task_of.items():
        _, out, _ = overrides("", name)
        assert f"--data.lm.tasks [{task}]" in out
        assert "--data.sampler.weights null" in out
    assert overrides("", "multi")[1] == ""
    assert "--data.lm.speech_input tokens" in overrides("", "asr_tokens")[1]
    assert "--data.lm.speech_tokens kmeans --model.num_speech_tokens 256" in overrides("", "tts_kmeans")[1]


@pytest.mark.parametrize("spec", ["asr=x", "asr:400", "foo=3", "400 asr=3"])
def test_bad_step_spec_is_an_error_naming_it(spec):
    rc, _, err = overrides(spec, "asr")
    assert rc != 0
    assert "lm_single_steps" in err and "<task>=<steps>" in err


def test_unknown_exp_name_is_an_error():
    rc, _, err = overrides("", "nope")
    assert rc != 0 and "unknown LM exp name 'nope'" in err
