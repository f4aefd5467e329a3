"""train.num_threads, train.init_from (+ init_keys / init_exclude), "early stop" only when patience ran
out, and checkpoint averaging after train.average_min_step."""
from __future__ import annotations

import logging

import pytest
import torch
import yaml

from parastyle.models import MODELS
from parastyle.train import checkpoint as ckpt
from parastyle.train.distributed import DistInfo, default_num_threads
from parastyle.train.trainer import Trainer, TrainingError

from conftest import ordered_config, tiny_config


# ---------------------------------------------------------------------- threads
def test_default_num_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3, 5, 7})
    assert default_num_threads(DistInfo())[0] == 6
    assert default_num_threads(DistInfo(rank=1, world_size=4, local_rank=1))[0] == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")                   # 2 of the 4 ranks on this node
    assert default_num_threads(DistInfo(rank=1, world_size=4, local_rank=1))[0] == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert default_num_threads(DistInfo()) == (2, "OMP_NUM_THREADS")


class _Threads(torch.nn.Module):
    """Records torch's intra-op thread count seen in training forwards."""

    def __init__(self, dim):
        super().__init__()
        self.lin = torch.nn.Linear(dim, 1)
        self.seen = set()

    @classmethod
    def from_config(cls, conf, task):
        return cls(task.feat_dim)

    def forward(self, batch):
        self.seen.add(torch.get_num_threads())
        return {"losses": {"mse": self.lin(batch["feats"]).pow(2).mean()}, "metrics": {}}


if "test_threads" not in MODELS:
    MODELS.register("test_threads")(_Threads)


def test_num_threads_set_logged_saved_and_restored(corpus, tmp_path):
    train, dev, lang = corpus
    conf = tiny_config(num_threads=2, max_steps=2)
    conf["model"] = {"name": "test_threads"}
    conf["valid"].update(metric="loss", mode="min")
    before = torch.get_num_threads()
    t = Trainer(conf, train, dev, lang, tmp_path / "exp")
    t.run()
    assert t.model.seen == {2}
    assert torch.get_num_threads() == before
    run = yaml.safe_load((tmp_path / "exp" / "config.yaml").read_text())["_run"]
    assert run["num_threads"] == 2 and run["num_workers"] == 0 and run["device"] == "cpu"
    assert "device cpu, 2 intra-op thread(s)" in (tmp_path / "exp" / "train.log").read_text()
    bad = tiny_config(num_threads=0)
    with pytest.raises(ValueError, match="train.num_threads"):
        Trainer(bad, train, dev, lang, tmp_path / "bad").run()


# ---------------------------------------------------------------------- init_from
def _state(exp, step):
    return ckpt.load_checkpoint(exp / "checkpoints" / ckpt.checkpoint_name(step))["model"]


def test_init_from_another_exp_with_key_filters(corpus, tmp_path, caplog):
    train, dev, lang = corpus
    src = tmp_path / "src"
    Trainer(tiny_config(), train, dev, lang, src).run()
    source = torch.load(src / "model.pt", weights_only=True)["model"]
    fresh = tiny_config(max_steps=2)
    fresh["optim"]["lr"] = 0.0                       # weights stay what initialisation made them
    Trainer(fresh, train, dev, lang, tmp_path / "fresh").run()
    random_init = _state(tmp_path / "fresh", 2)

    conf = tiny_config(max_steps=2, init_from=str(src), init_exclude=r"^heads\.gender\.")
    conf["optim"]["lr"] = 0.0
    with caplog.at_level(logging.INFO):
        Trainer(conf, train, dev, lang, tmp_path / "ft").run()
    got = _state(tmp_path / "ft", 2)
    for k, v in got.items():
        want = random_init[k] if k.startswith("heads.gender.") else source[k]
        assert torch.equal(v, want), k
    assert any(not torch.equal(source[k], random_init[k]) for k in source if k.startswith("encoder."))
    n_loaded = sum(not k.startswith("heads.gender.") for k in source)
    assert f"{n_loaded} tensor(s) loaded, 2 skipped by init_keys/init_exclude" in caplog.text
    run = yaml.safe_load((tmp_path / "ft" / "config.yaml").read_text())["_run"]
    assert run["init_from"]["loaded"] == n_loaded and run["init_from"]["path"] == str((src / "model.pt").resolve())

    # init_keys selects; a head of another size is reported as shape-mismatched, the rest loads
    conf = tiny_config(max_steps=2, init_from=str(src / "model.pt"), init_keys=[r"^encoder\.", r"^heads\."])
    conf["model"]["encoder"]["output_dim"] = 8
    conf["optim"]["lr"] = 0.0
    caplog.clear()
    with caplog.at_level(logging.INFO):
        Trainer(conf, train, dev, lang, tmp_path / "ft2").run()
    assert "shape-mismatched" in caplog.text and "heads.emotion.weight (3, 16) vs (3, 8)" in caplog.text
    got = _state(tmp_path / "ft2", 2)
    same_shape = [k for k in got if got[k].shape == source[k].shape]
    assert len(same_shape) >= 2 and len(same_shape) < len(got)
    for k in same_shape:
        assert torch.equal(got[k], source[k]), k

    # nothing matches: an error
    conf = tiny_config(max_steps=2, init_from=str(src), init_keys="^no_such_module")
    with pytest.raises(ckpt.CheckpointError, match="no tensor of .* fits the model"):
        Trainer(conf, train, dev, lang, tmp_path / "ft3").run()
    # an unfinished source exp
    conf = tiny_config(max_steps=2, init_from=str(tmp_path / "nothing"))
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ckpt.CheckpointError, match="has its training finished"):
        Trainer(conf, train, dev, lang, tmp_path / "ft4").run()


def test_init_from_not_applied_when_resuming(corpus, tmp_path, caplog):
    train, dev, lang = corpus
    src = tmp_path / "src"
    Trainer(tiny_config(), train, dev, lang, src).run()
    conf = lambda: tiny_config(init_from=str(src))  # noqa: E731
    straight = Trainer(conf(), train, dev, lang, tmp_path / "a")
    straight.run()
    Trainer(conf(), train, dev, lang, tmp_path / "b").run(stop_after_steps=3)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        resumed = Trainer(conf(), train, dev, lang, tmp_path / "b")
        resumed.run()
    assert "initialised from" not in caplog.text and "resumed from" in caplog.text
    a, b = _state(tmp_path / "a", 6), _state(tmp_path / "b", 6)
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------- early stop, averaging
def test_early_stop_logged_only_when_patience_ran_out(corpus, tmp_path):
    train, dev, lang = corpus
    conf = ordered_config(max_steps=6)               # every validation is worse than the first
    conf["valid"]["patience"] = 5
    Trainer(conf, train, dev, lang, tmp_path / "a").run()
    log = (tmp_path / "a" / "train.log").read_text()
    assert "early stop" not in log and "reached the last step (6)" in log
    conf["valid"]["patience"] = 2
    t = Trainer(conf, train, dev, lang, tmp_path / "b")
    t.run()
    assert t.step == 6 and "early stop at step 6" in (tmp_path / "b" / "train.log").read_text()
    conf = ordered_config(max_steps=20)
    conf["valid"]["patience"] = 2
    t = Trainer(conf, train, dev, lang, tmp_path / "c")
    t.run()
    log = (tmp_path / "c" / "train.log").read_text()
    assert t.step == 6 and "early stop at step 6" in log and "reached the last step" not in log


@pytest.mark.parametrize("warmup,min_step,want", [(0, None, [2, 4]), (3, None, [4, 6]), (0, 5, [6]), (3, 0, [2, 4])])
def test_average_best_after_min_step(corpus, tmp_path, warmup, min_step, want):
    """Earlier validations are better (test_ordered): the best K after the minimum step are averaged."""
    train, dev, lang = corpus
    conf = ordered_config(max_steps=6, keep_last=1, average_min_step=min_step)
    conf["scheduler"]["warmup_steps"] = warmup
    Trainer(conf, train, dev, lang, tmp_path / "exp").run()
    assert torch.load(tmp_path / "exp" / "model.pt", weights_only=True)["averaged_steps"] == want
    run = yaml.safe_load((tmp_path / "exp" / "config.yaml").read_text())["_run"]
    assert run["average_min_step"] == (warmup if min_step is None else min_step)


class _SometimesTerm(torch.nn.Module):
    """A loss term produced on every other training batch only (like ``loss_<task>`` of a model trained
    with one task per batch), with a known value 2.0."""

    def __init__(self, dim):
        super().__init__()
        self.lin = torch.nn.Linear(dim, 2)
        self.calls = 0

    @classmethod
    def from_config(cls, conf, task):
        return cls(task.feat_dim)

    def forward(self, batch):
        losses = {"mse": self.lin(batch["feats"]).pow(2).mean()}
        if self.training:
            self.calls += 1
            if self.calls % 2 == 1:
                losses["sometimes"] = losses["mse"] * 0 + 2.0
        return {"losses": losses, "metrics": {}}


def test_logged_term_is_the_mean_over_the_batches_that_produced_it(corpus, tmp_path):
    from parastyle.models import MODELS
    if "test_sometimes" not in MODELS:
        MODELS.register("test_sometimes")(_SometimesTerm)
    train, dev, lang = corpus
    conf = ordered_config(max_steps=4, log_interval=2, valid_interval=100, ckpt_interval=100)
    conf["model"] = {"name": "test_sometimes"}
    conf["valid"].update(metric="mse", mode="min")
    Trainer(conf, train, None, lang, tmp_path / "exp").run()
    lines = [l for l in (tmp_path / "exp" / "train.log").read_text().splitlines() if " sometimes=" in l]
    assert len(lines) == 2                       # steps 2 and 4: one of the two batches had the term
    for line in lines:
        assert " sometimes=2.0000 " in line, line
