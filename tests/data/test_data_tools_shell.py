"""The Kaldi-named shell tools in utils/: wrappers of the python CLIs, the perl converters, run.pl."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UTILS = ROOT / "utils"


def run(*args, cwd=None, check=None):
    """Run a tool with the venv's python first on PATH and LC_ALL=C; return the CompletedProcess."""
    env = dict(os.environ, LC_ALL="C", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    p = subprocess.run([str(a) for a in args], cwd=cwd or ROOT, env=env, capture_output=True, text=True, timeout=120)
    if check is not None:
        assert p.returncode == check, (p.returncode, p.stdout, p.stderr)
    return p


def read(path):
    return Path(path).read_text(encoding="utf-8")


def test_validate_data_dir_sh(small_data_dir):
    p = run(UTILS / "validate_data_dir.sh", "--no-feats", small_data_dir, check=0)
    assert "successfully validated" in p.stdout
    p = run(UTILS / "validate_data_dir.sh", small_data_dir, check=1)
    assert "feats.scp: file not found" in p.stderr
    rows = read(small_data_dir / "utt2spk").splitlines()
    (small_data_dir / "utt2spk").write_text("\n".join(rows[:2] + [rows[1]] + rows[2:]) + "\n")
    (small_data_dir / "utt2gender").write_text(read(small_data_dir / "utt2gender").replace("spk3-u1 female", "spk3-u1 robot"))
    p = run(UTILS / "validate_data_dir.sh", "--no-feats", "--lang-dir", small_data_dir.parent / "lang", small_data_dir, check=1)
    assert f"{small_data_dir / 'utt2spk'}:3: duplicate key 'spk1-u2' (first seen on line 2)" in p.stderr
    assert f"{small_data_dir / 'utt2gender'}:7: utterance 'spk3-u1' has label 'robot'" in p.stderr
    assert "2 problem(s) found" in p.stderr


def test_fix_data_dir_sh(small_data_dir):
    d = small_data_dir
    (d / "text").write_text("".join(line + "\n" for line in read(d / "text").splitlines() if not line.startswith("spk4-")))
    (d / "spk2utt").unlink()
    p = run(UTILS / "fix_data_dir.sh", d, check=0)
    assert "kept 9 of 12 utterances" in p.stderr
    assert "dropped 3 utterance(s) missing from text (e.g. spk4-u1, spk4-u2, spk4-u3)" in p.stderr
    assert read(d / "spk2utt").splitlines() == ["spk1 spk1-u1 spk1-u2 spk1-u3", "spk2 spk2-u1 spk2-u2 spk2-u3",
                                               "spk3 spk3-u1 spk3-u2 spk3-u3"]
    run(UTILS / "validate_data_dir.sh", "--no-feats", d, check=0)
    # A problem fixing cannot solve (speaker ids that do not sort with utterances): exit 1.
    (d / "utt2spk").write_text(read(d / "utt2spk").replace(" spk1\n", " zed\n"))
    p = run(UTILS / "fix_data_dir.sh", d, check=1)
    assert "sorting by speaker differs" in p.stderr and "cannot be fixed automatically" in p.stderr


def test_subset_data_dir_sh(small_data_dir, tmp_path):
    src = small_data_dir
    run(UTILS / "subset_data_dir.sh", "--first", 2, src, tmp_path / "a", check=0)
    assert read(tmp_path / "a" / "utt2spk").split()[::2] == ["spk1-u1", "spk1-u2"]
    run(UTILS / "subset_data_dir.sh", "--per-spk", "--seed", 4, src, 1, tmp_path / "b", check=0)   # Kaldi form
    assert [line.split()[1] for line in read(tmp_path / "b" / "utt2spk").splitlines()] == ["spk1", "spk2", "spk3", "spk4"]
    (tmp_path / "spk.list").write_text("spk2\nspk4\n")
    run(UTILS / "subset_data_dir.sh", "--spk-list", tmp_path / "spk.list", src, tmp_path / "c", check=0)
    assert read(tmp_path / "c" / "spk2utt").split()[::4] == ["spk2", "spk4"]
    (tmp_path / "utt.list").write_text("spk1-u1\nspk9-u1\n")
    p = run(UTILS / "subset_data_dir.sh", "--utt-list", tmp_path / "utt.list", src, tmp_path / "d", check=1)
    assert "not in utt2spk (e.g. spk9-u1)" in p.stderr and not (tmp_path / "d").exists()
    for d in ("a", "b", "c"):
        run(UTILS / "validate_data_dir.sh", "--no-feats", tmp_path / d, check=0)


def test_combine_data_sh(make_data_dir_fixture, tmp_path):
    a = make_data_dir_fixture("a", num_spk=2, spk_prefix="a")
    b = make_data_dir_fixture("b", num_spk=2, spk_prefix="b", factors={"age": ("adult", "child")})
    run(UTILS / "combine_data.sh", "--lang-dir", tmp_path / "lang", tmp_path / "all", a, b, check=0)
    assert len(read(tmp_path / "all" / "utt2spk").splitlines()) == 12
    assert len(read(tmp_path / "all" / "utt2age").splitlines()) == 6
    assert read(tmp_path / "lang" / "age.txt").split() == ["adult", "child"]
    run(UTILS / "validate_data_dir.sh", "--no-feats", "--lang-dir", tmp_path / "lang", tmp_path / "all", check=0)
    p = run(UTILS / "combine_data.sh", tmp_path / "all2", a, a, check=1)
    assert f"utterance 'a1-u1' is in both {a} and {a}" in p.stderr


def test_split_data_sh(make_data_dir_fixture):
    d = make_data_dir_fixture(num_spk=4)
    run(UTILS / "split_data.sh", d, 2, check=0)
    assert sorted(read(d / "split2" / "1" / "spk2utt").split()[::4] + read(d / "split2" / "2" / "spk2utt").split()[::4]) \
        == ["spk1", "spk2", "spk3", "spk4"]
    run(UTILS / "split_data.sh", "--per-utt", d, 5, check=0)
    assert sorted(x.name for x in (d / "split5utt").iterdir()) == ["1", "2", "3", "4", "5"]
    p = run(UTILS / "split_data.sh", d, 5, check=1)
    assert "4 speakers, fewer than the 5 jobs" in p.stderr


def test_perl_converters_match_written_files(small_data_dir, tmp_path):
    """What Kaldi's validate_data_dir.sh compares: spk2utt from utt2spk, utt2spk from spk2utt,
    and utt2spk sorted by speaker (sort -k2) equal to utt2spk."""
    from parastyle.data.dirops import subset_data_dir
    subset_data_dir(small_data_dir, tmp_path / "sub", random=7, seed=1)
    d = tmp_path / "sub"
    p = run(UTILS / "utt2spk_to_spk2utt.pl", d / "utt2spk", check=0)
    assert p.stdout == read(d / "spk2utt")
    p = run(UTILS / "spk2utt_to_utt2spk.pl", d / "spk2utt", check=0)
    assert p.stdout == read(d / "utt2spk")
    p = run("bash", "-c", f"sort -k2 {d / 'utt2spk'}", check=0)
    assert p.stdout == read(d / "utt2spk")
    p = run("bash", "-c", f"awk '{{print $1}}' {d / 'wav.scp'} | sort -u", check=0)
    assert p.stdout == "".join(line.split()[0] + "\n" for line in read(d / "utt2spk").splitlines())
    # stdin input, and a malformed line is an error naming the line
    p = run("bash", "-c", f"printf 'u1 s1\\nu2 s1 extra\\n' | {UTILS / 'utt2spk_to_spk2utt.pl'}", check=255)
    assert ":2: expected '<utt> <spk>'" in p.stderr


def test_run_pl_parallel_and_failures(tmp_path):
    # Three jobs that each wait (up to 20 s) for the other two to start: succeeds only if they run at once
    # (by default at most one job per CPU runs at a time, as in Kaldi).
    script = tmp_path / "job.sh"
    script.write_text('touch "$1/started.$2"; for i in $(seq 200); do [ $(ls "$1" | grep -c started) -ge 3 ] && '
                      'echo "job $2 saw all" && exit 0; sleep 0.1; done; exit 3\n')
    p = run(UTILS / "run.pl", "--max-jobs-run", 3, "JOB=1:3", tmp_path / "log" / "x.JOB.log", "bash", script, tmp_path,
            "JOB", check=0)
    log2 = read(tmp_path / "log" / "x.2.log")
    assert log2.startswith(f"# bash {script} {tmp_path} 2\n# Started at ") and "job 2 saw all" in log2
    assert "# Ended (code 0)" in log2
    # --max-jobs-run 1: strictly one after another.
    seq = tmp_path / "seq"
    seq.mkdir()
    check = f'[ ! -e {seq}/running ] && touch {seq}/running && sleep 0.2 && rm {seq}/running'
    run(UTILS / "run.pl", "--max-jobs-run", 1, "JOB=1:3", tmp_path / "log" / "s.JOB.log", "bash", "-c", check, check=0)
    # Failures: exit 1, naming each failed log; escaped pipes are pipes (Kaldi convention).
    p = run(UTILS / "run.pl", "JOB=1:4", tmp_path / "log" / "f.JOB.log", "echo", "job", "JOB", "|", "grep", "-v", "-e",
            "'job.[24]'", check=1)
    assert p.stderr.strip() == (f"run.pl: 2 / 4 failed, log is in {tmp_path}/log/f.2.log, {tmp_path}/log/f.4.log")
    assert "# Ended (code 1)" in read(tmp_path / "log" / "f.4.log")
    assert "job 3" in read(tmp_path / "log" / "f.3.log")
    # A single job, no JOB range.
    p = run(UTILS / "run.pl", tmp_path / "log" / "one.log", "bash", "-c", "exit 7", check=1)
    assert p.stderr.strip() == f"run.pl: job failed, log is in {tmp_path}/log/one.log"
    assert "# Ended (code 7)" in read(tmp_path / "log" / "one.log")
    p = run(UTILS / "run.pl", "--bogus", 1, tmp_path / "log" / "b.log", "true", check=1)
    assert "unknown option --bogus" in p.stderr


@pytest.mark.parametrize("tool", ["validate_data_dir", "fix_data_dir", "subset_data_dir", "combine_data",
                                  "split_data", "split_train_dev_test"])
def test_clis_have_help(tool):
    p = run(sys.executable, "-m", f"parastyle.bin.{tool}", "--help", check=0)
    assert p.stdout.startswith("usage:")


def test_outputs_pass_kaldi_sorting_checks(make_data_dir_fixture, tmp_path):
    """Every table written by fix/subset/combine/split is what Kaldi's check_sorted_and_uniq accepts:
    ``awk '{print $1}' f | LC_ALL=C sort | uniq`` equals the key column, and the file ends with a newline."""
    a = make_data_dir_fixture("a", num_spk=3, spk_prefix="A")
    b = make_data_dir_fixture("b", num_spk=3, spk_prefix="a_")       # 'A' < 'a_' < 'a' in C order
    run(UTILS / "combine_data.sh", tmp_path / "all", a, b, check=0)
    run(UTILS / "subset_data_dir.sh", "--random", 7, tmp_path / "all", tmp_path / "sub", check=0)
    run(UTILS / "split_data.sh", tmp_path / "all", 3, check=0)
    run(UTILS / "fix_data_dir.sh", tmp_path / "all", check=0)
    dirs = [tmp_path / "all", tmp_path / "sub"] + [tmp_path / "all" / "split3" / str(n) for n in (1, 2, 3)]
    for d in dirs:
        for f in sorted(d.iterdir()):
            if not f.is_file():
                continue
            keys = run("bash", "-c", f"awk '{{print $1}}' {f}", check=0).stdout
            sorted_keys = run("bash", "-c", f"awk '{{print $1}}' {f} | sort | uniq", check=0).stdout
            assert keys == sorted_keys, f
            assert read(f).endswith("\n"), f
        assert run("bash", "-c", f"sort -k2 {d / 'utt2spk'}", check=0).stdout == read(d / "utt2spk")
        assert run(UTILS / "spk2utt_to_utt2spk.pl", d / "spk2utt", check=0).stdout == read(d / "utt2spk")
