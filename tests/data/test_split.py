"""Speaker-independent train/dev/test split: disjoint speakers, train covers every class, counts."""
from __future__ import annotations

import random

import pytest

from parastyle.bin import split_train_dev_test as split_cli
from parastyle.data.datadir import DataDir, validate_data_dir
from parastyle.data.split import assign_speakers, resolve_size, split_train_dev_test
from parastyle.fileio import DataError

EMO = ["angry", "happy", "neutral", "sad"]


def toy_corpus(num_spk=10, per_spk=6, seed=0, rare=True):
    """utt2spk and factors; with ``rare``, class 'fear' is spoken only by the last speaker."""
    rng = random.Random(seed)
    utt2spk, emotion, gender = {}, {}, {}
    for s in range(num_spk):
        spk = f"s{s:02d}"
        for j in range(per_spk):
            utt = f"{spk}-{j}"
            utt2spk[utt] = spk
            emotion[utt] = rng.choice(EMO)
            gender[utt] = "female" if s % 2 else "male"
    if rare:
        emotion[f"s{num_spk - 1:02d}-0"] = "fear"
    return utt2spk, {"emotion": emotion, "gender": gender}


def brute_counts(utt2spk, factors, assignment):
    out = {}
    for f, labels in factors.items():
        for utt, lab in labels.items():
            c = out.setdefault(assignment[utt2spk[utt]], {}).setdefault(f, {})
            c[lab] = c.get(lab, 0) + 1
    return out


def test_resolve_size():
    assert resolve_size(0.1, 20, "dev") == 2
    assert resolve_size("0.1", 20, "dev") == 2
    assert resolve_size(0.01, 20, "dev") == 1            # a positive fraction gives at least one speaker
    assert resolve_size("3", 20, "dev") == 3 and resolve_size(3, 20, "dev") == 3
    assert resolve_size("0", 20, "dev") == 0
    with pytest.raises(DataError, match="neither a fraction"):
        resolve_size("2.5", 20, "test")
    with pytest.raises(DataError, match=">= 0"):
        resolve_size(-1, 20, "test")


def test_assignment_disjoint_stratified_and_counted():
    utt2spk, factors = toy_corpus()
    res = assign_speakers(utt2spk, factors, dev=0.2, test=2, seed=3)
    sets = {k: set(res.speakers(k)) for k in ("train", "dev", "test")}
    assert [len(sets[k]) for k in ("train", "dev", "test")] == [6, 2, 2]
    assert not (sets["train"] & sets["dev"] or sets["train"] & sets["test"] or sets["dev"] & sets["test"])
    assert set().union(*sets.values()) == set(utt2spk.values())
    assert "s09" in sets["train"]                                  # the only 'fear' speaker trains
    assert set(res.counts["train"]["emotion"]) == set(EMO) | {"fear"}
    assert res.warnings == []
    brute = brute_counts(utt2spk, factors, res.assignment)
    for k in ("train", "dev", "test"):
        assert res.counts[k] == {f: brute.get(k, {}).get(f, {}) for f in factors}
        assert res.num_utts[k] == 6 * len(sets[k])
    assert "train: 6 speakers, 36 utterances" in res.report()
    # deterministic for a seed, different for another
    assert assign_speakers(utt2spk, factors, dev=0.2, test=2, seed=3).assignment == res.assignment
    assert any(assign_speakers(utt2spk, factors, dev=0.2, test=2, seed=s).assignment != res.assignment
               for s in range(4, 10))


@pytest.mark.parametrize("seed", range(8))
def test_train_covers_every_class_when_it_has_room(seed):
    """Each greedy step covers at least one new class, so a train quota >= number of classes
    always covers them all, whatever the class layout."""
    rng = random.Random(seed)
    utt2spk, labels = {}, {}
    classes = [f"c{i}" for i in range(rng.randint(3, 6))]
    for s in range(12):
        mine = rng.sample(classes, rng.randint(1, 2))
        for j in range(3):
            utt = f"s{s:02d}-{j}"
            utt2spk[utt] = f"s{s:02d}"
            labels[utt] = mine[j % len(mine)]
    res = assign_speakers(utt2spk, {"x": labels}, dev=3, test=3, seed=seed)
    assert set(res.counts["train"]["x"]) == set(labels.values())
    assert res.warnings == []


def test_classes_missing_from_train_are_reported():
    utt2spk = {f"s{i}-0": f"s{i}" for i in range(4)}
    labels = {f"s{i}-0": f"c{i}" for i in range(4)}            # every speaker has its own class
    res = assign_speakers(utt2spk, {"x": labels}, dev=1, test=1, seed=0)
    assert len(res.speakers("train")) == 2 and len(res.warnings) == 2
    assert all(w.startswith("x class 'c") and "has no train speaker" in w for w in res.warnings)
    with pytest.raises(DataError, match="4 speakers cannot give 2 dev \\+ 2 test speakers"):
        assign_speakers(utt2spk, {"x": labels}, dev=2, test=2)


def test_split_train_dev_test_writes_valid_dirs(make_data_dir_fixture, tmp_path):
    src = make_data_dir_fixture(num_spk=8, utts_per_spk=2, lang_dir=tmp_path / "lang")
    out = {k: tmp_path / k for k in ("train", "dev", "test")}
    res = split_train_dev_test(src, out["train"], out["dev"], out["test"], dev=1, test=0.25, seed=0)
    spk = {}
    for k, d in out.items():
        assert validate_data_dir(d, no_feats=True, lang_dir=tmp_path / "lang") == []
        dd = DataDir(d)
        spk[k] = set(dd.speakers)
        assert spk[k] == set(res.speakers(k))
        for f in ("emotion", "gender"):
            counts = {}
            for lab in dd.factor(f).values():
                counts[lab] = counts.get(lab, 0) + 1
            assert counts == res.counts[k][f]
    assert [len(spk[k]) for k in ("train", "dev", "test")] == [5, 1, 2]
    assert not (spk["train"] & spk["dev"] or spk["train"] & spk["test"] or spk["dev"] & spk["test"])
    assert sum(len(DataDir(d).utts) for d in out.values()) == 16


def test_split_cli(make_data_dir_fixture, tmp_path, capsys):
    src = make_data_dir_fixture(num_spk=5)
    dirs = [str(tmp_path / k) for k in ("train", "dev", "test")]
    rc = split_cli.main(["--dev", "1", "--test", "1", "--seed", "2", "--report", str(tmp_path / "report.txt"),
                         str(src)] + dirs)
    assert rc == 0
    printed = capsys.readouterr().out
    assert "train: 3 speakers, 9 utterances" in printed
    assert (tmp_path / "report.txt").read_text().strip() == printed.strip()
    assert split_cli.main(["--dev", "3", "--test", "2", str(src)] + dirs) == 1
    assert "5 speakers cannot give 3 dev + 2 test" in capsys.readouterr().err


def test_split_within_speakers_writes_closed_set_dirs(make_data_dir_fixture, tmp_path):
    from parastyle.bin.split_within_speakers import main as cli
    from parastyle.fileio import read_kv
    src = make_data_dir_fixture("all", num_spk=3, utts_per_spk=5)
    out = [tmp_path / n for n in ("tr", "dv", "te")]
    assert cli(["--dev", "0.2", "--test", "0.2", "--seed", "1", str(src), *map(str, out)]) == 0
    sets = [read_kv(d / "utt2spk") for d in out]
    everything = read_kv(src / "utt2spk")
    assert sorted(u for s in sets for u in s) == sorted(everything)             # a partition
    assert all(set(s.values()) == set(everything.values()) for s in sets)      # every speaker in every set
    assert [len(s) for s in sets] == [9, 3, 3]
    assert cli(["--dev", "0.6", "--test", "0.6", str(src), *map(str, out)]) == 1
