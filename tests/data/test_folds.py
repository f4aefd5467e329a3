"""Speaker-group cross-validation folds: assignment, written folds, leak checks, shared features."""
from __future__ import annotations

import pytest

from parastyle.data.datadir import DataDir
from parastyle.data.folds import assign_folds, attach_features, check_folds, make_folds
from parastyle.fileio import DataError


def corpus(n_spk=12, per_spk=4):
    utt2spk, gender, emotion = {}, {}, {}
    for s in range(n_spk):
        spk = f"spk{s:02d}"
        for i in range(per_spk):
            u = f"{spk}-u{i}"
            utt2spk[u] = spk
            gender[u] = "male" if s % 3 == 0 else "female"       # 4 male speakers of 12
            emotion[u] = ["happy", "sad", "angry", "neutral"][i % 4]
    return utt2spk, {"gender": gender, "emotion": emotion}


def test_folds_cover_every_speaker_once_and_spread_every_class():
    utt2spk, factors = corpus()
    folds = assign_folds(utt2spk, factors, 4, seed=0)
    assert sorted(folds) == sorted(set(utt2spk.values()))
    assert sorted(set(folds.values())) == [1, 2, 3, 4]
    # 4 male speakers and 4 folds: one male speaker per test fold (a random deal would often pair them)
    males = [folds[s] for s in folds if int(s[3:]) % 3 == 0]
    assert sorted(males) == [1, 2, 3, 4]
    sizes = [sum(1 for f in folds.values() if f == k) for k in (1, 2, 3, 4)]
    assert sizes == [3, 3, 3, 3]
    assert assign_folds(utt2spk, factors, 4, seed=0) == folds
    loso = assign_folds(utt2spk, factors, 12, seed=1)            # leave-one-speaker-out
    assert sorted(loso.values()) == list(range(1, 13))
    with pytest.raises(DataError, match="13 speaker-disjoint test folds"):
        assign_folds(utt2spk, factors, 13)


def write_dir(d, utt2spk, factors):
    d.mkdir(parents=True)
    (d / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in sorted(utt2spk.items())))
    (d / "wav.scp").write_text("".join(f"{u} /x/{u}.wav\n" for u in sorted(utt2spk)))
    for f, t in factors.items():
        (d / f"utt2{f}").write_text("".join(f"{u} {lab}\n" for u, lab in sorted(t.items())))


def test_make_folds_writes_speaker_disjoint_sets(tmp_path):
    utt2spk, factors = corpus()
    write_dir(tmp_path / "all", utt2spk, factors)
    report = make_folds(tmp_path / "all", tmp_path, 3, dev=1, seed=0)
    folds = check_folds(tmp_path)
    assert [f.name for f in folds] == ["fold1", "fold2", "fold3"]
    tested = []
    for f in folds:
        spk = {s: set(DataDir(f / s).utt2spk.values()) for s in ("train", "dev", "test")}
        assert len(spk["dev"]) == 1 and len(spk["test"]) == 4 and len(spk["train"]) == 7
        assert spk["train"] | spk["dev"] | spk["test"] == set(utt2spk.values())
        tested += sorted(spk["test"])
        assert set(DataDir(f / "test").factor("gender").values()) == {"male", "female"}
    assert sorted(tested) == sorted(set(utt2spk.values()))
    assert "fold1/test: 4 speakers, 16 utterances" in report.text()
    assert not list(tmp_path.glob(".fold*"))


def test_check_folds_refuses_a_leak_and_a_speaker_tested_twice(tmp_path):
    utt2spk, factors = corpus(6, 2)
    spk = sorted(set(utt2spk.values()))

    def sub(names):
        return {u: s for u, s in utt2spk.items() if s in names}, {f: {u: l for u, l in t.items() if utt2spk[u] in names}
                                                                   for f, t in factors.items()}
    for k, (tr, dv, te) in {1: (spk[2:5], spk[5:], spk[:2]), 2: (spk[:2] + spk[3:5], spk[5:], spk[1:3])}.items():
        for name, members in (("train", tr), ("dev", dv), ("test", te)):
            write_dir(tmp_path / f"fold{k}" / name, *sub(members))
    with pytest.raises(DataError, match=r"fold2: speaker\(s\) \['spk01'\] in both train and test"):
        check_folds(tmp_path)
    import shutil
    shutil.rmtree(tmp_path / "fold2" / "train")
    write_dir(tmp_path / "fold2" / "train", *sub(spk[3:5]))
    with pytest.raises(DataError, match="spk01' is also in .*fold1/test"):
        check_folds(tmp_path)
    shutil.rmtree(tmp_path / "fold2" / "dev")
    with pytest.raises(DataError, match="fold2/dev: missing"):
        check_folds(tmp_path)
    with pytest.raises(DataError, match="no fold<k>"):
        check_folds(tmp_path / "fold1")


def test_attach_features_gives_each_set_its_lines_of_data_all(tmp_path):
    utt2spk, factors = corpus(6, 2)
    write_dir(tmp_path / "all", utt2spk, factors)
    (tmp_path / "all" / "feats.scp").write_text("".join(f"{u} /d/f.ark:{i}\n" for i, u in enumerate(sorted(utt2spk))))
    (tmp_path / "all" / "utt2num_frames").write_text("".join(f"{u} {10 + i}\n" for i, u in enumerate(sorted(utt2spk))))
    (tmp_path / "all" / "frame_shift").write_text("0.01\n")
    make_folds(tmp_path / "all", tmp_path, 3, dev=1, seed=0)
    d = tmp_path / "fold2" / "test"
    assert attach_features(tmp_path / "all", d) == len(DataDir(d).utts)
    full = dict(line.split() for line in (tmp_path / "all" / "feats.scp").read_text().splitlines())
    got = dict(line.split() for line in (d / "feats.scp").read_text().splitlines())
    assert got == {u: full[u] for u in DataDir(d).utts}
    assert (d / "frame_shift").read_text() == "0.01\n"
    (tmp_path / "all" / "feats.scp").write_text("")
    with pytest.raises(DataError, match="have no line in"):
        attach_features(tmp_path / "all", d)
