"""Kaldi data directories: reading, validation (every problem, with file and line), fix, subset,
combine and split into jobs, on fabricated directories with real wav files."""
from __future__ import annotations

import re
from pathlib import Path

import kaldiio
import numpy as np
import pytest

from parastyle.data.datadir import DataDir, check_data_dir, validate_data_dir
from parastyle.data.dirops import combine_data_dirs, contiguous_partition, fix_data_dir, split_data_dir, subset_data_dir
from parastyle.fileio import DataError


def lines(path: Path):
    return path.read_text(encoding="utf-8").splitlines()


def write_lines(path: Path, rows):
    path.write_text("".join(f"{r}\n" for r in rows), encoding="utf-8")


def line_of(path: Path, key: str) -> int:
    """1-based line number of ``key`` in a table file."""
    return [r.split()[0] for r in lines(path)].index(key) + 1


def only(problems, pattern):
    """The problems matching a regex; exactly one expected."""
    found = [p for p in problems if re.search(pattern, p)]
    assert len(found) == 1, (pattern, problems)
    return found[0]


def add_feats(d: Path, dim=4):
    utts = [r.split()[0] for r in lines(d / "utt2spk")]
    rng = np.random.RandomState(0)
    mats = {u: rng.randn(5 + i, dim).astype(np.float32) for i, u in enumerate(utts)}
    kaldiio.save_ark(str(d / "feats.ark"), mats, scp=str(d / "feats.scp"))
    write_lines(d / "utt2num_frames", [f"{u} {m.shape[0]}" for u, m in mats.items()])
    return mats


# ---------------------------------------------------------------------------------------------- reading

def test_valid_dir_reads_and_validates(small_data_dir, tmp_path):
    d = small_data_dir
    assert validate_data_dir(d, no_feats=True, lang_dir=tmp_path / "lang") == []
    # Missing feats.scp is a problem without --no-feats.
    assert validate_data_dir(d) == [f"{d / 'feats.scp'}: file not found (use --no-feats before feature extraction)"]
    dd = DataDir(d)
    assert dd.utts == sorted(dd.utts, key=lambda s: s.encode())
    assert len(dd.utts) == 12 and dd.speakers == ["spk1", "spk2", "spk3", "spk4"]
    assert dd.spk2utt["spk2"] == ["spk2-u1", "spk2-u2", "spk2-u3"]
    assert dd.factor_names == ["emotion", "gender"]          # utt2caption/utt2tags/utt2dur are not factors
    assert dd.factor("gender")["spk2-u3"] == "male"
    assert dd.tags["spk1-u1"] == ["breathy", "fast"]
    assert dd.captions["spk1-u1"].startswith("a spk1 voice")
    assert dd.text["spk1-u2"] == "sentence number 2 of speaker 1"
    assert all(v > 0 for v in dd.utt2dur.values())
    assert dd.segments is None and dd.feats_scp is None and dd.utt2num_frames is None
    assert Path(dd.wav_scp["spk1-u1"]).is_file()
    with pytest.raises(DataError, match="no such factor file"):
        dd.factor("age")


def test_feats_and_num_frames(small_data_dir):
    mats = add_feats(small_data_dir)
    assert validate_data_dir(small_data_dir) == []
    dd = DataDir(small_data_dir)
    assert dd.utt2num_frames == {u: m.shape[0] for u, m in mats.items()}
    np.testing.assert_array_equal(kaldiio.load_mat(dd.feats_scp["spk3-u2"]), mats["spk3-u2"])


def test_wav_entry_forms(small_data_dir):
    wav = small_data_dir / "wav.scp"
    rows = lines(wav)
    rows[0] = rows[0].split()[0] + " sox " + rows[0].split()[1] + " -t wav - |"
    rows[1] = rows[1].split()[0] + " feats.ark:123"
    rows[2] = rows[2].split()[0] + " sox a.wav -t wav -"          # spaces but no pipe
    write_lines(wav, rows)
    problems = validate_data_dir(small_data_dir, no_feats=True)
    assert len(problems) == 1
    assert f"{wav}:3:" in problems[0] and "spk1-u3" in problems[0] and "not a pipe" in problems[0]


def test_datadir_strict_read_names_file_and_line(small_data_dir):
    text = small_data_dir / "text"
    rows = lines(text)
    rows[3], rows[4] = rows[4], rows[3]
    write_lines(text, rows)
    with pytest.raises(DataError, match=rf"{re.escape(str(text))}:5: key 'spk2-u1' is not sorted"):
        DataDir(small_data_dir).text


# ---------------------------------------------------------------------------------------------- bad inputs

def test_duplicate_utterance_id(small_data_dir):
    u2s = small_data_dir / "utt2spk"
    rows = lines(u2s)
    write_lines(u2s, rows[:5] + [rows[4]] + rows[5:])
    p = only(validate_data_dir(small_data_dir, no_feats=True), "duplicate")
    assert p == f"{u2s}:6: duplicate key 'spk2-u2' (first seen on line 5)"


def test_unsorted_file(small_data_dir):
    emo = small_data_dir / "utt2emotion"
    rows = lines(emo)
    rows[6], rows[7] = rows[7], rows[6]
    write_lines(emo, rows)
    p = only(validate_data_dir(small_data_dir, no_feats=True), "not sorted")
    assert p.startswith(f"{emo}:8: key 'spk3-u1' is not sorted (comes after 'spk3-u2')")


def test_missing_label_is_empty_value(small_data_dir):
    gen = small_data_dir / "utt2gender"
    rows = lines(gen)
    rows[2] = rows[2].split()[0]                     # "spk1-u3" without a label
    write_lines(gen, rows)
    p = only(validate_data_dir(small_data_dir, no_feats=True), "empty value")
    assert p == f"{gen}:3: empty value for key 'spk1-u3'"


def test_absent_label_line_means_unknown(make_data_dir_fixture, tmp_path):
    d = make_data_dir_fixture(unknown=("spk1-u2", "spk3-u1"), lang_dir=tmp_path / "lang")
    assert validate_data_dir(d, no_feats=True, lang_dir=tmp_path / "lang") == []
    emo = DataDir(d).factor("emotion")
    assert "spk1-u2" not in emo and len(emo) == 10


def test_unknown_label_name(small_data_dir, tmp_path):
    emo = small_data_dir / "utt2emotion"
    rows = lines(emo)
    rows[9] = rows[9].split()[0] + " furious"
    write_lines(emo, rows)
    assert validate_data_dir(small_data_dir, no_feats=True) == []       # no lang dir: any label
    p = only(validate_data_dir(small_data_dir, no_feats=True, lang_dir=tmp_path / "lang"), "furious")
    assert p == (f"{emo}:10: utterance 'spk4-u1' has label 'furious' which is not in the vocabulary "
                 f"{tmp_path / 'lang' / 'emotion.txt'}")


def test_utt2spk_spk2utt_mismatch(small_data_dir):
    s2u = small_data_dir / "spk2utt"
    rows = lines(s2u)
    rows[0] = "spk1 spk1-u1 spk1-u2"                         # spk1-u3 missing
    rows[1] = "spk2 spk1-u3 spk2-u1 spk2-u2 spk2-u3"         # ... listed under spk2
    write_lines(s2u, rows)
    problems = validate_data_dir(small_data_dir, no_feats=True)
    assert problems == [f"{s2u}:2: utterance 'spk1-u3' listed under speaker 'spk2' but "
                        f"{small_data_dir / 'utt2spk'}:3 gives speaker 'spk1'; utt2spk/spk2utt mismatch"]


def test_missing_spk2utt_entry_and_unknown_utt(small_data_dir):
    s2u = small_data_dir / "spk2utt"
    rows = lines(s2u)
    rows[3] = "spk4 spk4-u1 spk4-u2 spk4-u9"
    write_lines(s2u, rows)
    problems = validate_data_dir(small_data_dir, no_feats=True)
    assert len(problems) == 2
    only(problems, rf"^{re.escape(str(s2u))}:4: utterance 'spk4-u9' of speaker 'spk4' is not in")
    only(problems, rf"^{re.escape(str(small_data_dir / 'utt2spk'))}:12: utterance 'spk4-u3' .* missing from")


def test_speaker_ids_must_sort_with_utterances(tmp_path, make_data_dir_fixture):
    d = make_data_dir_fixture()
    # Rename speaker spk1 to zed: utt2spk sorted by speaker now differs from sorted by utterance.
    for name in ("utt2spk", "spk2utt"):
        write_lines(d / name, sorted((r.replace(" spk1", " zed") if name == "utt2spk" else r.replace("spk1 ", "zed ", 1))
                                     for r in lines(d / name)))
    problems = validate_data_dir(d, no_feats=True)
    assert validate_data_dir(d, no_feats=True, no_spk_sort=True) == []
    p = only(problems, "sorting by speaker differs")
    assert p.startswith(f"{d / 'utt2spk'}:4: utterance 'spk2-u1' of speaker 'spk2' sorts after 'spk1-u3' of speaker 'zed'")


def test_every_problem_is_reported(small_data_dir):
    d = small_data_dir
    write_lines(d / "text", [r for r in lines(d / "text") if not r.startswith("spk2-u2 ")])
    write_lines(d / "utt2dur", [r if not r.startswith("spk3-u3 ") else "spk3-u3 0" for r in lines(d / "utt2dur")])
    write_lines(d / "utt2caption", lines(d / "utt2caption") + ["zzz-u1 a stray caption"])
    write_lines(d / "wav.scp", [r for r in lines(d / "wav.scp") if not r.startswith("spk4-u1 ")])
    problems = validate_data_dir(d, no_feats=True)
    assert len(problems) == 4, problems
    assert only(problems, "missing from .*text") == f"{d / 'utt2spk'}:5: utterance 'spk2-u2' is missing from {d / 'text'}"
    assert only(problems, "non-positive") == f"{d / 'utt2dur'}:9: non-positive value '0' (expected > 0) for key 'spk3-u3'"
    assert only(problems, "zzz") == f"{d / 'utt2caption'}:13: utterance 'zzz-u1' is not in utt2spk ({d / 'utt2spk'})"
    assert only(problems, "wav.scp") == f"{d / 'utt2spk'}:10: utterance 'spk4-u1' is missing from {d / 'wav.scp'}"
    with pytest.raises(DataError) as e:
        check_data_dir(d, no_feats=True)
    assert "4 problems" in str(e.value) and all(p in str(e.value) for p in problems)


def test_feats_and_frames_must_cover_utterances(small_data_dir):
    d = small_data_dir
    add_feats(d)
    write_lines(d / "feats.scp", lines(d / "feats.scp")[1:])
    write_lines(d / "utt2num_frames", [r if not r.startswith("spk2-u1 ") else "spk2-u1 -3" for r in lines(d / "utt2num_frames")])
    problems = validate_data_dir(d)
    assert len(problems) == 2
    only(problems, rf"utterance 'spk1-u1' is missing from {re.escape(str(d / 'feats.scp'))}")
    only(problems, rf"^{re.escape(str(d / 'utt2num_frames'))}:4: non-positive value '-3'")


def test_segments_checks(small_data_dir):
    d = small_data_dir
    utts = [r.split()[0] for r in lines(d / "utt2spk")]
    # Two recordings, six segments each; one segment has end <= start, one names an unknown recording,
    # and one recording of wav.scp is used by no segment.
    wav = {"recA": "/data/a.wav", "recB": "/data/b.wav", "recC": "/data/c.wav"}
    segs = [f"{u} {'recA' if i < 6 else 'recB'} {i:.2f} {i + 0.5:.2f}" for i, u in enumerate(utts)]
    segs[2] = f"{utts[2]} recA 3.0 2.5"
    segs[7] = f"{utts[7]} recZ 0.0 1.0"
    write_lines(d / "segments", segs)
    write_lines(d / "wav.scp", [f"{k} {v}" for k, v in wav.items()])
    problems = validate_data_dir(d, no_feats=True)
    assert len(problems) == 3, problems
    assert only(problems, "end time") == f"{d / 'segments'}:3: end time 2.5 <= start time 3.0 for key 'spk1-u3'"
    assert only(problems, "recZ") == (f"{d / 'segments'}:8: utterance 'spk3-u2' refers to recording 'recZ' "
                                      f"which is not in {d / 'wav.scp'}")
    assert only(problems, "recC").startswith(f"{d / 'wav.scp'}:3: recording 'recC' is used by no segment")


def test_text_rules(small_data_dir):
    d = small_data_dir
    rows = lines(d / "text")
    rows[0] = "spk1-u1 hello\u00a0world"
    rows[1] = "spk1-u2 <s> hello"
    write_lines(d / "text", rows)
    problems = validate_data_dir(d, no_feats=True)
    assert len(problems) == 2
    assert only(problems, "whitespace").startswith(f"{d / 'text'}:1: unusual whitespace")
    assert only(problems, "illegal").startswith(f"{d / 'text'}:2: illegal word(s) <s>")


def test_no_text_no_wav_flags(small_data_dir):
    d = small_data_dir
    (d / "text").unlink()
    (d / "wav.scp").unlink()
    problems = validate_data_dir(d, no_feats=True)
    assert len(problems) == 2 and "text: file not found" in problems[0] and "wav.scp: file not found" in problems[1]
    assert validate_data_dir(d, no_feats=True, no_text=True, no_wav=True) == []


def test_crlf_and_missing_final_newline(small_data_dir):
    d = small_data_dir
    raw = (d / "utt2gender").read_text()
    (d / "utt2gender").write_text(raw.replace("spk2-u1 male\n", "spk2-u1 male\r\n").rstrip("\n"))
    problems = validate_data_dir(d, no_feats=True)
    assert len(problems) == 2
    only(problems, r"utt2gender:4: carriage return")
    only(problems, r"utt2gender: last line has no newline")


# ---------------------------------------------------------------------------------------------- fix

def test_fix_drops_and_reports_per_reason(small_data_dir):
    d = small_data_dir
    add_feats(d)
    write_lines(d / "text", [r for r in lines(d / "text") if not r.startswith("spk2-u2 ")])
    write_lines(d / "feats.scp", [r for r in lines(d / "feats.scp") if not r.startswith(("spk3-u1 ", "spk3-u3 "))])
    write_lines(d / "utt2dur", [r if not r.startswith("spk4-u2 ") else "spk4-u2 0" for r in lines(d / "utt2dur")])
    emo = lines(d / "utt2emotion")
    write_lines(d / "utt2emotion", [emo[1], emo[0]] + emo[2:] + [emo[-1], "zzz-u9 happy"])   # unsorted, dup, stray
    report = fix_data_dir(d)
    assert report.total == 12 and report.kept == 8
    assert report.dropped == {"missing from text": ["spk2-u2"], "missing from feats.scp": ["spk3-u1", "spk3-u3"],
                              "with an invalid utt2dur line": ["spk4-u2"]}
    summary = report.summary()
    assert "dropped 2 utterance(s) missing from feats.scp (e.g. spk3-u1, spk3-u3)" in summary
    assert "utt2emotion: removed 1 duplicate line(s)" in summary
    assert validate_data_dir(d) == []
    dd = DataDir(d)
    assert "spk3" not in dd.spk2utt or dd.spk2utt["spk3"] == ["spk3-u2"]
    assert dd.spk2utt["spk3"] == ["spk3-u2"]
    assert set(dd.factor("emotion")) == set(dd.utts)
    assert (d / ".backup" / "text").is_file() and (d / "wav").is_dir()     # old files kept; wavs untouched
    assert len(lines(d / ".backup" / "utt2spk")) == 12


def test_fix_to_new_dir_with_segments(small_data_dir, tmp_path):
    d = small_data_dir
    utts = [r.split()[0] for r in lines(d / "utt2spk")]
    write_lines(d / "segments", [f"{u} rec{i // 4} {i % 4}.0 {i % 4}.5" for i, u in enumerate(utts)])
    write_lines(d / "wav.scp", ["rec0 /x/0.wav", "rec1 /x/1.wav", "rec9 /x/9.wav"])   # rec2 missing, rec9 unused
    report = fix_data_dir(d, tmp_path / "fixed")
    assert report.dropped == {"whose segment's recording is not in wav.scp": utts[8:]}
    out = tmp_path / "fixed"
    assert lines(out / "wav.scp") == ["rec0 /x/0.wav", "rec1 /x/1.wav"]
    assert "wav.scp: removed 1 recording(s) no utterance uses" in report.summary()
    assert validate_data_dir(out, no_feats=True) == []
    assert len(lines(d / "utt2spk")) == 12                    # source untouched


def test_fix_refuses_conflicting_duplicates(small_data_dir):
    gen = small_data_dir / "utt2gender"
    rows = lines(gen)
    write_lines(gen, rows[:2] + [rows[1].split()[0] + " male"] + rows[2:])
    with pytest.raises(DataError, match=rf"{re.escape(str(gen))}:3: key 'spk1-u2' repeated with a different value"):
        fix_data_dir(small_data_dir)
    assert lines(gen)[2] == "spk1-u2 male"                     # nothing rewritten


# ---------------------------------------------------------------------------------------------- subset

def test_subset_by_lists_first_last_random(small_data_dir, tmp_path):
    d = small_data_dir
    (tmp_path / "utts").write_text("spk2-u3\nspk1-u1\n")
    from parastyle.data.datadir import read_utt_list
    assert subset_data_dir(d, tmp_path / "a", utt_list=read_utt_list(tmp_path / "utts")) == 2
    assert lines(tmp_path / "a" / "spk2utt") == ["spk1 spk1-u1", "spk2 spk2-u3"]
    assert validate_data_dir(tmp_path / "a", no_feats=True) == []
    assert lines(tmp_path / "a" / "wav.scp")[0].split()[1] == lines(d / "wav.scp")[0].split()[1]

    subset_data_dir(d, tmp_path / "b", spk_list=["spk3"])
    assert DataDir(tmp_path / "b").utts == ["spk3-u1", "spk3-u2", "spk3-u3"]
    subset_data_dir(d, tmp_path / "c", first=4)
    assert DataDir(tmp_path / "c").utts == ["spk1-u1", "spk1-u2", "spk1-u3", "spk2-u1"]
    subset_data_dir(d, tmp_path / "c2", last=2)
    assert DataDir(tmp_path / "c2").utts == ["spk4-u2", "spk4-u3"]
    subset_data_dir(d, tmp_path / "d", first=1, per_spk=True)
    assert DataDir(tmp_path / "d").utts == ["spk1-u1", "spk2-u1", "spk3-u1", "spk4-u1"]

    picks = []
    for seed in (0, 0, 1, 2, 3):
        out = tmp_path / f"r{len(picks)}"
        subset_data_dir(d, out, random=5, seed=seed)
        picks.append(DataDir(out).utts)
        assert validate_data_dir(out, no_feats=True) == []
    assert picks[0] == picks[1] and len(picks[0]) == 5
    assert len({tuple(p) for p in picks}) > 1


def test_subset_errors(small_data_dir, tmp_path):
    with pytest.raises(DataError, match=r"1 utterance\(s\) of the list are not in utt2spk \(e.g. nope\)"):
        subset_data_dir(small_data_dir, tmp_path / "x", utt_list=["spk1-u1", "nope"])
    with pytest.raises(DataError, match="speaker"):
        subset_data_dir(small_data_dir, tmp_path / "x", spk_list=["spk9"])
    with pytest.raises(DataError, match="only 12"):
        subset_data_dir(small_data_dir, tmp_path / "x", random=13)
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------------- combine

def test_combine_keeps_partial_factor_files(make_data_dir_fixture, tmp_path):
    a = make_data_dir_fixture("a", num_spk=2, spk_prefix="a", lang_dir=tmp_path / "lang_a")
    b = make_data_dir_fixture("b", num_spk=2, spk_prefix="b", text=False,
                              factors={"emotion": ("calm", "happy"), "age": ("adult", "child")})
    lang = tmp_path / "lang"
    lang.mkdir()
    (lang / "emotion.txt").write_text("neutral\nangry\n")           # an existing vocabulary keeps its order
    notes = combine_data_dirs(tmp_path / "all", [a, b], lang_dir=lang)
    out = DataDir(tmp_path / "all")
    assert len(out.utts) == 12 and out.factor_names == ["age", "emotion", "gender"]
    assert set(out.factor("age")) == {u for u in out.utts if u.startswith("b")}         # only b has age
    assert set(out.factor("gender")) == {u for u in out.utts if u.startswith("a")}
    assert out.text is None and notes == ["text: present in only 1 of 2 inputs; not written"]
    assert lines(lang / "emotion.txt") == ["neutral", "angry", "calm", "happy", "sad"]
    assert lines(lang / "age.txt") == ["adult", "child"]
    assert validate_data_dir(tmp_path / "all", no_feats=True, no_text=True, lang_dir=lang) == []


def test_combine_duplicate_utterance_names_both_dirs(make_data_dir_fixture, tmp_path):
    a = make_data_dir_fixture("a", num_spk=2)
    b = make_data_dir_fixture("b", num_spk=3, seed=1)
    with pytest.raises(DataError) as e:
        combine_data_dirs(tmp_path / "all", [a, b])
    msg = str(e.value)
    assert "duplicate utterance ids across inputs (6)" in msg
    assert f"utterance 'spk1-u1' is in both {a} and {b}" in msg
    assert not (tmp_path / "all").exists()


# ---------------------------------------------------------------------------------------------- split into jobs

def test_contiguous_partition_balanced():
    sizes = [5, 1, 1, 1, 4, 2, 2, 3, 1]
    for n in range(1, len(sizes) + 1):
        groups = contiguous_partition(sizes, n)
        assert len(groups) == n and all(groups)
        assert [i for g in groups for i in g] == list(range(len(sizes)))
    totals = [sum(sizes[i] for i in g) for g in contiguous_partition(sizes, 3)]
    assert max(totals) - min(totals) <= 5


def test_split_data_by_speaker_and_per_utt(make_data_dir_fixture):
    d = make_data_dir_fixture(num_spk=5, utts_per_spk=2)
    parts = split_data_dir(d, 3)
    assert [p.name for p in parts] == ["1", "2", "3"] and parts[0].parent.name == "split3"
    seen_utts, seen_spk = [], []
    for p in parts:
        assert validate_data_dir(p, no_feats=True) == []
        dd = DataDir(p)
        seen_utts += dd.utts
        seen_spk += dd.speakers
    assert sorted(seen_utts) == DataDir(d).utts
    assert len(seen_spk) == len(set(seen_spk)) == 5           # a speaker never spans two parts
    per_utt = split_data_dir(d, 4, per_utt=True)
    assert per_utt[0].parent.name == "split4utt"
    assert sum(len(DataDir(p).utts) for p in per_utt) == 10
    assert max(len(DataDir(p).utts) for p in per_utt) - min(len(DataDir(p).utts) for p in per_utt) <= 1
    with pytest.raises(DataError, match="5 speakers, fewer than the 6 jobs"):
        split_data_dir(d, 6)
    split_data_dir(d, 3)                                       # re-splitting replaces the old split
    assert sorted(x.name for x in d.iterdir() if x.name.startswith((".split", "split"))) == ["split3", "split4utt"]


def test_outputs_never_overwrite_inputs_or_foreign_dirs(small_data_dir, tmp_path):
    with pytest.raises(DataError, match="must differ from the input"):
        subset_data_dir(small_data_dir, small_data_dir, first=2)
    with pytest.raises(DataError, match="must differ from the input"):
        combine_data_dirs(small_data_dir, [small_data_dir])
    (tmp_path / "other" / "wav").mkdir(parents=True)
    with pytest.raises(DataError, match="refusing to replace this directory: it holds wav/"):
        subset_data_dir(small_data_dir, tmp_path / "other", first=2)
    assert (tmp_path / "other" / "wav").is_dir()
    assert subset_data_dir(small_data_dir, tmp_path / "sub", first=2) == 2
    assert subset_data_dir(small_data_dir, tmp_path / "sub", last=3) == 3           # a data dir is replaced
    assert DataDir(tmp_path / "sub").utts == ["spk4-u1", "spk4-u2", "spk4-u3"]
