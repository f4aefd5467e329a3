"""Trainer safety: non-finite inputs named by utterance, checkpoint recovery (fallback, all bad, orphan
.tmp, model.pt without sidecar), file modes under the umask, and the exp-dir lock."""
from __future__ import annotations

import logging
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from parastyle.fileio import DirLock, LockedError, atomic_write, write_kv
from parastyle.models import MODELS
from parastyle.train import checkpoint as ckpt
from parastyle.train.trainer import Trainer, TrainingError

from conftest import ordered_config, tiny_config


# ---------------------------------------------------------------------- non-finite inputs
def _poison(data_dir: Path, utt: str, value=float("nan")):
    """Rewrite data_dir's features with one NaN/inf frame value in ``utt``."""
    feats = {k: np.array(v) for k, v in kaldiio.load_scp(str(data_dir / "feats.scp")).items()}
    feats[utt][1, 2] = value
    kaldiio.save_ark(str(data_dir / "feats2.ark"), feats, scp=str(data_dir / "feats.scp"))


def test_nonfinite_features_name_the_utterance(corpus, tmp_path):
    train, dev, lang = corpus
    utts = sorted(Path(train, "utt2spk").read_text().split()[::2])
    bad = utts[7]
    _poison(train, bad)
    with pytest.raises(TrainingError) as ei:
        Trainer(tiny_config(), train, dev, lang, tmp_path / "exp").run()
    msg = str(ei.value)
    assert "non-finite input" in msg and bad in msg and "feats" in msg
    # only the offending utterance is named, not the rest of its batch
    assert [u for u in utts if u in msg] == [bad]


class _Diverge(torch.nn.Module):
    """A model whose loss is NaN on its third training forward, with finite inputs."""

    def __init__(self, dim):
        super().__init__()
        self.lin = torch.nn.Linear(dim, 1)
        self.calls = 0

    @classmethod
    def from_config(cls, conf, task):
        return cls(task.feat_dim)

    def forward(self, batch):
        self.calls += self.training
        loss = self.lin(batch["feats"]).pow(2).mean()
        if self.training and self.calls == 3:
            loss = loss * float("inf") * 0
        return {"losses": {"mse": loss}, "metrics": {}}


if "test_diverge" not in MODELS:
    MODELS.register("test_diverge")(_Diverge)


def test_finite_inputs_say_so_and_list_the_batch(corpus, tmp_path):
    train, dev, lang = corpus
    conf = tiny_config()
    conf["model"] = {"name": "test_diverge"}
    conf["valid"].update(metric="loss", mode="min")
    with pytest.raises(TrainingError) as ei:
        Trainer(conf, train, dev, lang, tmp_path / "exp").run()
    msg = str(ei.value)
    assert "step 3" in msg and "every input of the batch is finite" in msg and "batch utterances: [" in msg


# ---------------------------------------------------------------------- checkpoint recovery
def _weights(path):
    return ckpt.load_checkpoint(path)["model"]


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_bad_best_checkpoint_falls_back_to_next_valid(corpus, tmp_path, caplog, damage):
    train, dev, lang = corpus
    exp = tmp_path / "exp"
    Trainer(ordered_config(), train, dev, lang, exp).run(stop_after_steps=4)
    best = exp / "checkpoints" / ckpt.checkpoint_name(2)          # the best (earliest) validation
    if damage == "corrupt":
        best.write_bytes(best.read_bytes()[:100])
    else:
        ckpt.remove_checkpoint(best)
    with caplog.at_level(logging.WARNING):
        t = Trainer(ordered_config(), train, dev, lang, exp)
        assert t.run() == "done"
    assert [int(s) for _, s in t.best] == [2, 4]                   # step 2 is still the best validation
    avg = torch.load(exp / "model.pt", weights_only=True)
    assert avg["averaged_steps"] == [4, 6]                        # next best valid ones
    a, b = _weights(exp / "checkpoints" / ckpt.checkpoint_name(4)), _weights(exp / "checkpoints" / ckpt.checkpoint_name(6))
    for k, v in avg["model"].items():
        if v.is_floating_point():
            torch.testing.assert_close(v, (a[k] + b[k]) / 2)
    assert "step00000002.pt" in caplog.text


def test_every_checkpoint_bad_is_an_error_not_a_restart(corpus, tmp_path):
    train, dev, lang = corpus
    exp = tmp_path / "exp"
    Trainer(tiny_config(), train, dev, lang, exp).run(stop_after_steps=4)
    for _, p in ckpt.list_checkpoints(exp / "checkpoints"):
        p.write_bytes(b"garbage")
    with pytest.raises(TrainingError) as ei:
        Trainer(tiny_config(), train, dev, lang, exp).run()
    assert "none of the 2 checkpoint(s) is usable" in str(ei.value) and "step00000004.pt" in str(ei.value)
    assert not (exp / "done").exists()
    # the CLI exits non-zero
    import yaml
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config()))
    from parastyle.bin.train import main
    rc = main(["--config", str(cfg), "--train_data", str(train), "--valid_data", str(dev), "--lang_dir", str(lang),
               "--exp", str(exp)])
    assert rc == 1 and not (exp / "done").exists()


def test_orphan_tmp_files_removed_on_start(corpus, tmp_path):
    train, dev, lang = corpus
    exp = tmp_path / "exp"
    Trainer(tiny_config(), train, dev, lang, exp).run(stop_after_steps=2)
    orphans = [exp / "checkpoints" / ".step00000004.pt.k2j3.tmp", exp / ".config.yaml.x9.tmp"]
    for p in orphans:
        p.write_bytes(b"half written")
    keep = exp / "notes.tmp"                      # not an atomic_write temporary: kept
    keep.write_text("mine")
    assert Trainer(tiny_config(), train, dev, lang, exp).run() == "done"
    assert not any(p.exists() for p in orphans) and keep.read_text() == "mine"


def test_model_pt_without_sidecar_says_how_to_verify_or_recreate(corpus, tmp_path):
    train, dev, lang = corpus
    exp = tmp_path / "exp"
    Trainer(tiny_config(), train, dev, lang, exp).run()
    original = (exp / "model.pt").read_bytes()
    (exp / "model.pt.sha256").unlink()
    with pytest.raises(ckpt.CheckpointError) as ei:
        ckpt.load_model_from_exp(exp)
    msg = str(ei.value)
    assert "sha256sum" in msg and f"remove {exp}/done and {exp}/model.pt" in msg
    # following the message re-creates the same model.pt without training further
    (exp / "done").unlink()
    (exp / "model.pt").unlink()
    t = Trainer(tiny_config(), train, dev, lang, exp)
    assert t.run() == "done" and t.history == []
    assert (exp / "model.pt").read_bytes() == original
    ckpt.load_model_from_exp(exp)


# ---------------------------------------------------------------------- file modes
@pytest.fixture
def umask():
    old = os.umask(0o022)
    os.umask(old)

    def set_(m):
        os.umask(m)
    yield set_
    os.umask(old)


def _mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_written_files_respect_the_umask(corpus, tmp_path, umask):
    for mask, want in ((0o022, 0o644), (0o002, 0o664), (0o077, 0o600)):
        umask(mask)
        p = tmp_path / f"f{mask:o}.txt"
        with atomic_write(p) as f:
            f.write("x\n")
        assert _mode(p) == want, (oct(mask), oct(_mode(p)))
        write_kv(tmp_path / f"kv{mask:o}", {"a": "1"})
        assert _mode(tmp_path / f"kv{mask:o}") == want
        ckpt.save_checkpoint(tmp_path / f"c{mask:o}.pt", {"x": torch.zeros(1)})
        assert _mode(tmp_path / f"c{mask:o}.pt") == want and _mode(tmp_path / f"c{mask:o}.pt.sha256") == want
    umask(0o022)
    train, dev, lang = corpus
    exp = tmp_path / "exp"
    Trainer(tiny_config(max_steps=2), train, dev, lang, exp).run()
    for name in ("config.yaml", "task.yaml", "identity.yaml", "model.pt", "model.pt.sha256", "done",
                 "checkpoints/step00000002.pt"):
        assert _mode(exp / name) == 0o644, name


# ---------------------------------------------------------------------- exp lock
HOLD = """
import sys, time
from parastyle.fileio import DirLock
lock = DirLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_second_trainer_on_the_same_exp_is_refused(corpus, tmp_path):
    train, dev, lang = corpus
    exp = tmp_path / "exp"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(exp)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(TrainingError) as ei:
            Trainer(tiny_config(), train, dev, lang, exp).run()
        assert ".lock" in str(ei.value) and f"pid {holder.pid}" in str(ei.value)
        assert not (exp / "checkpoints").exists() and not (exp / "config.yaml").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the dead holder's lock file is still there but does not block
    assert (exp / ".lock").exists()
    assert Trainer(tiny_config(max_steps=2), train, dev, lang, exp).run() == "done"
    # and the lock is released after a run: it can be taken again
    with DirLock(exp):
        with pytest.raises(LockedError):
            DirLock(exp).acquire()


def test_locked_exp_refused_on_every_rank(tmp_path):
    """Two gloo ranks on a locked exp: rank 0 finds the lock and every rank stops with its error."""
    import torch.multiprocessing as mp
    from conftest import make_datadir
    from distributed_helpers import train_on_two_ranks
    train = make_datadir(tmp_path / "data", "train", n=24)
    dev = make_datadir(tmp_path / "data", "dev", n=7, seed=1)
    exp = tmp_path / "exp"
    with DirLock(exp):
        with pytest.raises(mp.ProcessRaisedException, match="locked by another process"):
            train_on_two_ranks(tiny_config(max_steps=2), train, dev, tmp_path / "data" / "lang", exp)
    assert not (exp / "checkpoints").exists()
