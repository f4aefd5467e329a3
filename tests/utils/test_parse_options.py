"""utils/parse_options.sh: --name value / --name=value, unknown options, booleans, and the
run.sh -> stage script pass-through of options run.sh does not define."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _scripts(tmp_path: Path) -> Path:
    (tmp_path / "utils").mkdir()
    (tmp_path / "utils" / "parse_options.sh").symlink_to(ROOT / "utils" / "parse_options.sh")
    (tmp_path / "stage.sh").write_text(
        "#!/usr/bin/env bash\nset -euo pipefail\na=1\nb=2\nc=3\nflag=false\n"
        ". utils/parse_options.sh\necho \"stage a=$a b=$b c=$c flag=$flag rest=$*\"\n")
    (tmp_path / "run.sh").write_text(
        "#!/usr/bin/env bash\nset -euo pipefail\na=10\n"
        "passthrough=true . utils/parse_options.sh\n./stage.sh --a \"$a\" \"$@\"\n")
    for s in ("stage.sh", "run.sh"):
        os.chmod(tmp_path / s, 0o755)
    return tmp_path


def _run(d, *args):
    return subprocess.run([str(d / args[0]), *args[1:]], cwd=d, capture_output=True, text=True)


def test_options_reach_the_script_that_defines_them(tmp_path):
    d = _scripts(tmp_path)
    p = _run(d, "run.sh", "--b", "5", "--a", "7", "--c=x y", "--flag", "true")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "stage a=7 b=5 c=x y flag=true rest="
    assert _run(d, "run.sh").stdout.strip() == "stage a=10 b=2 c=3 flag=false rest="
    assert _run(d, "stage.sh", "--c", "9", "pos1").stdout.strip() == "stage a=1 b=2 c=9 flag=false rest=pos1"


def test_unknown_option_and_bad_boolean_are_errors(tmp_path):
    d = _scripts(tmp_path)
    p = _run(d, "run.sh", "--zz", "1")
    assert p.returncode == 1 and "stage.sh: unknown option --zz" in p.stderr
    p = _run(d, "stage.sh", "--flag", "yes")
    assert p.returncode == 1 and "expects true or false" in p.stderr
    p = _run(d, "stage.sh", "--b")
    assert p.returncode == 1 and "needs a value" in p.stderr
    p = _run(d, "run.sh", "--help")
    assert p.returncode == 0 and "a=10" in p.stderr and "stage script" in p.stderr
