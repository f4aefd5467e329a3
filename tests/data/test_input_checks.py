"""Bad input to the data tools is refused with file:line (never a traceback, never a silent result):
non-UTF-8 tables and lists, unsafe utterance ids, features of different front-ends combined."""
from __future__ import annotations

from pathlib import Path

import kaldiio
import numpy as np
import pytest
import yaml

from parastyle.data.datadir import DataDir, validate_data_dir
from parastyle.data.dirops import combine_data_dirs, split_data_dir, subset_data_dir
from parastyle.fileio import DataError, read_kv, write_kv


def _spoil_line(path: Path, n: int, junk: bytes = b" caf\xe9") -> None:
    """Append Latin-1 bytes (not UTF-8) to line ``n`` (1-based) of ``path``."""
    rows = path.read_bytes().split(b"\n")
    rows[n - 1] += junk
    path.write_bytes(b"\n".join(rows))


class _Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _run(module, *args):
    """Run a verb's ``main`` in this process (as its console script does), capturing its output;
    an exception escaping ``main`` (a traceback for the user) fails the test."""
    import contextlib
    import importlib
    import io
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = importlib.import_module(module).main(list(args))
        except SystemExit as e:            # argparse errors
            rc = e.code
    return _Result(rc, out.getvalue(), err.getvalue())


@pytest.mark.parametrize("name", ["text", "utt2spk", "wav.scp", "utt2emotion"])
def test_non_utf8_table_gives_file_and_line_in_every_tool(small_data_dir, tmp_path, name):
    d = small_data_dir
    _spoil_line(d / name, 3)
    expect = f"{d / name}:3: not valid UTF-8"
    assert any(p.startswith(expect) for p in validate_data_dir(d, no_feats=True))     # the validator's words
    for call in (lambda: subset_data_dir(d, tmp_path / "sub", first=2),
                 lambda: split_data_dir(d, 2),
                 lambda: combine_data_dirs(tmp_path / "comb", [d])):
        with pytest.raises(DataError, match=expect.replace(".", r"\.")):
            call()
    conf = tmp_path / "fbank.yaml"
    conf.write_text("type: fbank\nnum_mel_bins: 6\n")
    for args in (["parastyle.bin.subset_data_dir", "--first", "2", str(d), str(tmp_path / "sub")],
                 ["parastyle.bin.split_data", str(d), "2"],
                 ["parastyle.bin.combine_data", str(tmp_path / "comb"), str(d)],
                 ["parastyle.bin.extract_feats", "--data", str(d), "--conf", str(conf),
                  "--dump", str(tmp_path / "dump")]):
        if args[0].endswith("extract_feats") and name in ("text", "utt2emotion"):
            continue                                          # extraction does not read these files
        p = _run(*args)
        assert p.returncode == 1, (args, p.stderr)
        assert expect in p.stderr and "Traceback" not in p.stderr, (args, p.stderr)
    assert not (tmp_path / "sub").exists() and not (tmp_path / "comb").exists() and not (d / "split2").exists()


def test_non_utf8_list_and_front_end_config(small_data_dir, tmp_path):
    d = small_data_dir
    lst = tmp_path / "utts"
    lst.write_bytes(b"spk1-u1\nspk1-u\xff2\n")
    p = _run("parastyle.bin.subset_data_dir", "--utt-list", str(lst), str(d), str(tmp_path / "sub"))
    assert p.returncode == 1 and f"{lst}:2: not valid UTF-8" in p.stderr and "Traceback" not in p.stderr
    conf = tmp_path / "fbank.yaml"
    conf.write_bytes(b"type: fbank\nnum_mel_bins: 6  # \xe9\n")
    p = _run("parastyle.bin.extract_feats", "--data", str(d), "--conf", str(conf), "--dump", str(tmp_path / "dump"))
    assert p.returncode == 1 and f"{conf}:2: not valid UTF-8" in p.stderr and "Traceback" not in p.stderr
    assert not (d / "feats.scp").exists()


@pytest.mark.parametrize("bad", ["spk1-../../etc", "spk1-a/b", "spk1-x..y"])
def test_validator_rejects_utterance_ids_that_are_paths(small_data_dir, bad):
    d = small_data_dir
    u2s = read_kv(d / "utt2spk")
    u2s[bad] = "spk1"
    write_kv(d / "utt2spk", u2s)
    spk2utt = {}
    for u in sorted(u2s, key=lambda k: k.encode()):
        spk2utt.setdefault(u2s[u], []).append(u)
    write_kv(d / "spk2utt", {s: " ".join(us) for s, us in spk2utt.items()})
    for name in ("wav.scp", "text", "utt2dur"):
        t = read_kv(d / name)
        t[bad] = t["spk1-u1"]
        write_kv(d / name, t)
    problems = validate_data_dir(d, no_feats=True)
    hits = [p for p in problems if f"utterance id {bad!r} contains '/' or '..'" in p]
    assert len(hits) == 1 and hits[0].startswith(f"{d / 'utt2spk'}:"), problems
    assert len(problems) == 1                          # the directory is otherwise valid
    p = _run("parastyle.bin.validate_data_dir", "--no-feats", str(d))
    assert p.returncode != 0 and bad in (p.stdout + p.stderr)


def _with_feats(d: Path, conf: dict) -> None:
    """Features plus the front-end record extract_feats writes."""
    from parastyle.features.frontend import build_frontend
    fe = build_frontend(conf)
    utts = sorted(read_kv(d / "utt2spk"))
    rng = np.random.RandomState(0)
    kaldiio.save_ark(str(d / "feats.ark"), {u: rng.randn(7, fe.dim).astype(np.float32) for u in utts},
                     scp=str(d / "feats.scp"))
    write_kv(d / "utt2num_frames", {u: "7" for u in utts})
    (d / "feats_conf.yaml").write_text(yaml.safe_dump(fe.to_config(), sort_keys=False))
    (d / "frame_shift").write_text(f"{fe.frame_shift_s}\n")


def test_combine_carries_one_front_end_and_refuses_two(make_data_dir_fixture, tmp_path):
    """Before: combine dropped feats_conf.yaml, so the combination of fbank and log-mel features of
    the same dimension looked like any other feature dir."""
    fbank = {"type": "fbank", "sample_rate": 16000, "num_mel_bins": 6}
    logmel = {"type": "logmel", "sample_rate": 16000, "n_fft": 400, "win_length": 400, "hop_length": 160,
              "n_mels": 6}
    a = make_data_dir_fixture("a", num_spk=2, spk_prefix="a")
    b = make_data_dir_fixture("b", num_spk=2, spk_prefix="b")
    _with_feats(a, fbank)
    _with_feats(b, fbank)
    combine_data_dirs(tmp_path / "ab", [a, b])
    assert yaml.safe_load((tmp_path / "ab" / "feats_conf.yaml").read_text()) == \
        yaml.safe_load((a / "feats_conf.yaml").read_text())
    assert (tmp_path / "ab" / "frame_shift").read_text() == (a / "frame_shift").read_text()
    assert validate_data_dir(tmp_path / "ab") == []
    _with_feats(b, logmel)
    with pytest.raises(DataError, match=r"differ: the inputs' features come from different front-ends"):
        combine_data_dirs(tmp_path / "ab2", [a, b])
    (b / "feats_conf.yaml").unlink()
    with pytest.raises(DataError, match=r"feats_conf.yaml is in .* but not in"):
        combine_data_dirs(tmp_path / "ab2", [a, b])
    assert not (tmp_path / "ab2").exists()
    assert len(DataDir(tmp_path / "ab").utts) == 12


def test_pipe_entries_run_through_the_shell_as_documented(small_data_dir, tmp_path):
    """wav.scp ``cmd |`` values are shell commands (Kaldi's convention): shell syntax works and side
    effects happen, which is why the README warns against scoring untrusted data dirs."""
    from parastyle.data.audio import load_audio
    d = small_data_dir
    utt, path = next(iter(read_kv(d / "wav.scp").items()))
    marker = tmp_path / "ran"
    entry = f"touch {marker}; X={path}; cat \"$X\" |"
    wav = load_audio(utt, entry)
    assert marker.exists() and np.allclose(wav.numpy(), load_audio(utt, path).numpy())
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("Data directories are Kaldi's", 1)[1].split("\n## ", 1)[0]
    assert "`cmd |` entries run through the shell" in section and "untrusted sources" in section
