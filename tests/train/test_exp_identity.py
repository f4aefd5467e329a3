"""Exp identity and config checks: a finished or stopped exp is never reused with other data or an
incompatible config; compatible changes are allowed and logged; averaging never mixes architectures."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch
import yaml

from parastyle.train import checkpoint as ckpt
from parastyle.train.identity import IdentityError, check_exp_identity, exp_identity, read_identity
from parastyle.train.trainer import Trainer, TrainingError

from conftest import make_datadir, tiny_config


@pytest.fixture
def folds(tmp_path):
    """Two folds of one corpus (different utterances, same label vocabularies)."""
    a = make_datadir(tmp_path / "data" / "fold0", "train", n=24, seed=0)
    b = make_datadir(tmp_path / "data" / "fold1", "train", n=21, seed=3)
    dev = make_datadir(tmp_path / "data" / "fold0", "dev", n=9, seed=1)
    return a, b, dev, tmp_path / "data" / "fold0" / "lang"


def test_finished_exp_of_another_fold_is_refused(folds, tmp_path):
    a, b, dev, lang = folds
    exp = tmp_path / "exp" / "ce"
    assert Trainer(tiny_config(), a, dev, lang, exp).run() == "done"
    rec = read_identity(exp)
    assert rec["train_data"]["num_utts"] == 24 and rec["train_data"]["path"] == str(a.resolve())
    assert set(rec["train_data"]["files"]) == {"feats.scp", "feats_conf.yaml", "utt2emotion", "utt2gender"}
    assert set(rec["lang_dir"]["vocabularies"]) == {"emotion.txt", "gender.txt"}
    # fold 1 on fold 0's finished exp: an error naming the difference, not "already trained"
    with pytest.raises(IdentityError) as ei:
        Trainer(tiny_config(), b, dev, lang, exp).run()
    msg = str(ei.value)
    assert "train_data" in msg and "utterance list differs" in msg and "24 utterances then, 21 now" in msg
    assert str(b.resolve()) in msg
    # the same fold again: nothing to do
    assert Trainer(tiny_config(), a, dev, lang, exp).run() == "already_done"
    # scoring code asks the same question through the library
    check_exp_identity(exp, train_data=a, lang_dir=lang)
    with pytest.raises(IdentityError, match="utterance list differs"):
        check_exp_identity(exp, train_data=b)
    with pytest.raises(IdentityError, match="valid_data"):
        check_exp_identity(exp, valid_data=None)


def test_stopped_exp_resumed_on_another_fold_is_refused(folds, tmp_path):
    a, b, dev, lang = folds
    exp = tmp_path / "exp"
    Trainer(tiny_config(), a, dev, lang, exp).run(stop_after_steps=2)
    before = (exp / "config.yaml").read_bytes()
    with pytest.raises(IdentityError, match="utterance list differs"):
        Trainer(tiny_config(), b, dev, lang, exp).run()
    assert (exp / "config.yaml").read_bytes() == before
    assert [s for s, _ in ckpt.list_checkpoints(exp / "checkpoints")] == [2]


def test_same_utterances_other_features_or_labels_or_vocabulary(folds, tmp_path):
    a, _, dev, lang = folds
    exp = tmp_path / "exp"
    Trainer(tiny_config(), a, dev, lang, exp).run()
    # a moved copy of the same data is the same identity
    moved = tmp_path / "moved" / "train"
    shutil.copytree(a, moved)
    assert Trainer(tiny_config(), moved, dev, lang, exp).run() == "already_done"
    # re-extracted features of the same utterances
    feats = {k: np.array(v) + 1.0 for k, v in kaldiio.load_scp(str(moved / "feats.scp")).items()}
    kaldiio.save_ark(str(moved / "feats_new.ark"), feats, scp=str(moved / "feats.scp"))
    with pytest.raises(IdentityError, match="feats.scp differs"):
        Trainer(tiny_config(), moved, dev, lang, exp).run()
    # other labels
    lab = tmp_path / "lab" / "train"
    shutil.copytree(a, lab)
    lines = (lab / "utt2gender").read_text().splitlines()
    lines[0] = lines[0].rsplit(" ", 1)[0] + (" male" if lines[0].endswith("female") else " female")
    (lab / "utt2gender").write_text("\n".join(lines) + "\n")
    with pytest.raises(IdentityError, match="utt2gender differs"):
        Trainer(tiny_config(), lab, dev, lang, exp).run()
    # another vocabulary
    lang2 = tmp_path / "lang2"
    shutil.copytree(lang, lang2)
    (lang2 / "emotion.txt").write_text("angry\nhappy\nneutral\nsad\n")
    with pytest.raises(IdentityError, match="vocabulary emotion.txt differs"):
        Trainer(tiny_config(), a, dev, lang2, exp).run()


def test_incompatible_config_change_refused_before_touching_config(corpus, tmp_path):
    train, dev, lang = corpus
    exp = tmp_path / "exp"
    Trainer(tiny_config(), train, dev, lang, exp).run(stop_after_steps=2)
    before = (exp / "config.yaml").read_bytes()
    conf = tiny_config()
    conf["model"]["encoder"]["hidden"] = 32
    conf["optim"]["lr"] = 0.02
    with pytest.raises(TrainingError) as ei:
        Trainer(conf, train, dev, lang, exp).run()
    msg = str(ei.value)
    assert "model.encoder.hidden: 16 -> 32" in msg and "optim.lr: 0.01 -> 0.02" in msg
    assert "train.max_steps" not in msg
    assert (exp / "config.yaml").read_bytes() == before
    # the same on a finished exp (instead of "nothing to do")
    done_exp = tmp_path / "done_exp"
    Trainer(tiny_config(), train, dev, lang, done_exp).run()
    with pytest.raises(TrainingError, match="model.encoder.hidden: 16 -> 32"):
        Trainer(conf, train, dev, lang, done_exp).run()


def test_compatible_change_allowed_and_logged(corpus, tmp_path, caplog):
    train, dev, lang = corpus
    exp = tmp_path / "exp"
    Trainer(tiny_config(), train, dev, lang, exp).run(stop_after_steps=2)
    with caplog.at_level(logging.INFO):
        t = Trainer(tiny_config(max_steps=8, log_interval=4), train, dev, lang, exp)
        assert t.run() == "done"
    assert "train.max_steps changed from 6 to 8" in caplog.text
    assert t.step == 8
    saved = yaml.safe_load((exp / "config.yaml").read_text())
    assert saved["train"]["max_steps"] == 8
    assert read_identity(exp)["config_hash"] == exp_identity(tiny_config())["config_hash"]


def test_averaging_refuses_different_architectures(tmp_path):
    small, big = torch.nn.Linear(3, 2), torch.nn.Linear(4, 2)
    ckpt.save_checkpoint(tmp_path / "a.pt", {"model": small.state_dict(), "config_hash": "1" * 64})
    ckpt.save_checkpoint(tmp_path / "b.pt", {"model": big.state_dict(), "config_hash": "1" * 64})
    ckpt.save_checkpoint(tmp_path / "c.pt", {"model": torch.nn.Linear(3, 2).state_dict(), "config_hash": "2" * 64})
    ckpt.save_checkpoint(tmp_path / "d.pt", {"model": torch.nn.Linear(3, 2).state_dict(), "config_hash": "1" * 64})
    with pytest.raises(ckpt.CheckpointError, match=r"different architectures .*weight \(2, 3\) vs \(2, 4\)"):
        ckpt.average_state_dicts([tmp_path / "a.pt", tmp_path / "b.pt"])
    with pytest.raises(ckpt.CheckpointError, match="different configs"):
        ckpt.average_state_dicts([tmp_path / "a.pt", tmp_path / "c.pt"])
    avg = ckpt.average_state_dicts([tmp_path / "a.pt", tmp_path / "d.pt"])
    d = torch.load(tmp_path / "d.pt", weights_only=True)["model"]
    torch.testing.assert_close(avg["weight"], (small.weight.detach() + d["weight"]) / 2)


def test_checkpoint_of_another_architecture_is_refused_on_resume(corpus, tmp_path):
    """Even when config.yaml is gone, a checkpoint written with another config is not resumed."""
    train, dev, lang = corpus
    exp = tmp_path / "exp"
    Trainer(tiny_config(), train, dev, lang, exp).run(stop_after_steps=2)
    (exp / "config.yaml").unlink()
    (exp / "identity.yaml").unlink()
    conf = tiny_config()
    conf["model"]["encoder"]["hidden"] = 32
    with pytest.raises(TrainingError, match="another config"):
        Trainer(conf, train, dev, lang, exp).run()
