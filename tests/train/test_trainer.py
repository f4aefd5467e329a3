"""Trainer: determinism, exact resume, checkpoint fallback, NaN message, averaging, done marker."""
from __future__ import annotations

import copy
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from parastyle.fileio import DataError
from parastyle.models import MODELS
from parastyle.train import checkpoint as ckpt
from parastyle.train.trainer import Trainer, TrainingError

from conftest import tiny_config


def _params(exp):
    return ckpt.load_checkpoint(Path(exp) / "checkpoints" / ckpt.checkpoint_name(6))["model"]


def test_exact_resume_and_determinism(corpus, tmp_path):
    train, dev, lang = corpus
    straight = Trainer(tiny_config(), train, dev, lang, tmp_path / "a")
    assert straight.run() == "done"
    assert [s for s, _ in straight.history] == [1, 2, 3, 4, 5, 6]

    # same seed and config -> same loss curve
    again = Trainer(tiny_config(), train, dev, lang, tmp_path / "b")
    again.run()
    assert again.history == straight.history

    # "kill" after 3 steps (3 batches/epoch: the stop lands mid-epoch on resume at step 2 checkpoints too)
    first = Trainer(tiny_config(), train, dev, lang, tmp_path / "c")
    assert first.run(stop_after_steps=3) == "stopped"
    assert not (tmp_path / "c" / "done").exists()
    assert first.history == straight.history[:3]
    resumed = Trainer(tiny_config(), train, dev, lang, tmp_path / "c")
    assert resumed.run() == "done"
    assert resumed.history == straight.history[3:]
    assert [s for s, _ in resumed.valid_history] == [4, 6]
    assert resumed.valid_history[-1][1] == straight.valid_history[-1][1]
    a, c = _params(tmp_path / "a"), _params(tmp_path / "c")
    assert a.keys() == c.keys() and all(torch.equal(a[k], c[k]) for k in a)
    # full training state is weights_only loadable and holds the resume bookkeeping
    state = torch.load(tmp_path / "c" / "checkpoints" / ckpt.checkpoint_name(6), weights_only=True)
    assert state["step"] == 6 and {"optimizer", "scheduler", "scaler", "rng", "sampler", "best"} <= set(state)


def test_model_average_done_marker_and_rerun(corpus, tmp_path, capsys):
    train, dev, lang = corpus
    exp = tmp_path / "exp"
    t = Trainer(tiny_config(), train, dev, lang, exp)
    t.run()
    best_steps = [int(s) for _, s in t.best]
    assert len(best_steps) == 2
    avg = torch.load(exp / "model.pt", weights_only=True)
    sds = [torch.load(exp / "checkpoints" / ckpt.checkpoint_name(s), weights_only=True)["model"] for s in best_steps]
    for k, v in avg["model"].items():
        if v.is_floating_point():
            torch.testing.assert_close(v, (sds[0][k] + sds[1][k]) / 2)
    # best by valid acc_emotion (mode max)
    vals = dict((s, r["acc_emotion"]) for s, r in t.valid_history)
    assert sorted(vals.values(), reverse=True)[:2] == sorted([vals[s] for s in best_steps], reverse=True)
    # checkpoints kept: last 2 plus best
    kept = {s for s, _ in ckpt.list_checkpoints(exp / "checkpoints")}
    assert kept == {4, 6} | set(best_steps)
    cfg = yaml.safe_load((exp / "config.yaml").read_text())
    assert cfg["optim"]["lr"] == 0.01 and cfg["_run"]["device"] == "cpu" and "torch" in cfg["_run"]["versions"]
    assert "git_commit" in cfg["_run"]
    assert list((exp / "tensorboard").iterdir())
    assert Trainer(tiny_config(), train, dev, lang, exp).run() == "already_done"
    assert "already trained" in capsys.readouterr().err


def test_truncated_checkpoint_falls_back(corpus, tmp_path, caplog):
    train, dev, lang = corpus
    straight = Trainer(tiny_config(), train, dev, lang, tmp_path / "a")
    straight.run()
    exp = tmp_path / "b"
    Trainer(tiny_config(), train, dev, lang, exp).run(stop_after_steps=4)
    bad = exp / "checkpoints" / ckpt.checkpoint_name(4)
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match="step00000004.pt"):
        ckpt.load_checkpoint(bad)
    with caplog.at_level(logging.WARNING):
        resumed = Trainer(tiny_config(), train, dev, lang, exp)
        resumed.run()
    assert "step00000004.pt" in caplog.text
    assert resumed.history == straight.history[2:]      # resumed from step 2
    a, b = _params(tmp_path / "a"), _params(exp)
    assert all(torch.equal(a[k], b[k]) for k in a)


class _NaNAfter(torch.nn.Module):
    """Test model: a linear probe whose loss becomes NaN at a given forward call."""

    def __init__(self, dim, nan_at):
        super().__init__()
        self.lin = torch.nn.Linear(dim, 1)
        self.calls, self.nan_at = 0, nan_at

    @classmethod
    def from_config(cls, conf, task):
        return cls(task.feat_dim, int(conf["nan_at"]))

    def forward(self, batch):
        if self.training:
            self.calls += 1
        loss = self.lin(batch["feats"]).pow(2).mean()
        if self.training and self.calls == self.nan_at:
            loss = loss * float("nan")
        return {"losses": {"mse": loss}, "metrics": {}}


if "test_nan_after" not in MODELS:
    MODELS.register("test_nan_after")(_NaNAfter)


def test_nan_loss_names_step_and_utterances(corpus, tmp_path):
    train, dev, lang = corpus
    conf = tiny_config()
    conf["model"] = {"name": "test_nan_after", "nan_at": 3}
    conf["valid"] = {"metric": "loss", "mode": "min", "patience": None}
    exp = tmp_path / "exp"
    t = Trainer(conf, train, dev, lang, exp)
    with pytest.raises(TrainingError) as ei:
        t.run()
    msg = str(ei.value)
    assert "step 3" in msg and "mse=nan" in msg
    utts = [u for u in Path(train, "utt2spk").read_text().split() if "-train" in u]
    assert any(u in msg for u in utts)
    # the step-2 checkpoint is intact and nothing newer was written
    assert [s for s, _ in ckpt.list_checkpoints(exp / "checkpoints")] == [2]
    ckpt.load_checkpoint(exp / "checkpoints" / ckpt.checkpoint_name(2))
    assert not (exp / "done").exists()


def test_early_stopping(corpus, tmp_path):
    train, dev, lang = corpus
    conf = tiny_config(max_steps=40, valid_interval=1, ckpt_interval=100)
    conf["optim"]["lr"] = 0.0           # nothing improves after the first validation
    conf["valid"].update(metric="loss", mode="min", patience=2)
    t = Trainer(conf, train, dev, lang, tmp_path / "exp")
    assert t.run() == "done"
    assert t.step == 3 and (tmp_path / "exp" / "done").exists()


def test_invalid_data_dir_refused(corpus, tmp_path):
    train, dev, lang = corpus
    lines = (train / "utt2gender").read_text().splitlines()
    (train / "utt2gender").write_text("\n".join(lines[::-1]) + "\n")   # unsorted
    with pytest.raises(DataError, match="utt2gender"):
        Trainer(tiny_config(), train, dev, lang, tmp_path / "exp").run()
    assert not (tmp_path / "exp" / "checkpoints").exists()


def test_fp16_amp_on_cpu_warns(corpus, tmp_path):
    train, dev, lang = corpus
    conf = tiny_config(amp="fp16", max_steps=2)
    t = Trainer(conf, train, dev, lang, tmp_path / "exp")
    with pytest.warns(UserWarning, match="amp"):
        t.run()
    assert t.amp_dtype is None


def test_bf16_amp_on_cpu_autocasts_where_the_cpu_has_bf16(corpus, tmp_path):
    from parastyle.train.trainer import cpu_has_bf16
    train, dev, lang = corpus
    conf = tiny_config(amp="bf16", max_steps=2)
    t = Trainer(conf, train, dev, lang, tmp_path / "exp")
    if not cpu_has_bf16():
        with pytest.warns(UserWarning, match="amp"):
            t.run()
        assert t.amp_dtype is None
        return
    seen = []
    real_setup = t._setup

    def setup_and_hook():                              # the model exists once _setup has run
        real_setup()
        for m in t.model.modules():
            if isinstance(m, torch.nn.Linear):
                m.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    t._setup = setup_and_hook
    t.run()
    assert torch.bfloat16 in seen                       # matrix products ran in bfloat16
    assert all(p.dtype == torch.float32 for p in t.model.parameters())   # master weights stay float32


def _bf16_cpu_with_times(monkeypatch, times):
    """Pretend a CPU with native bfloat16 whose measured forward/backward seconds are ``times``
    ({"none": s, "bf16": s}); the real timed passes still run (they draw dropout noise, write gradients
    and change buffers), so what ``_choose_amp`` must restore is really disturbed. Returns the calls."""
    import parastyle.train.trainer as tr
    monkeypatch.setattr(tr, "cpu_has_bf16", lambda: True)
    real = tr.Trainer._time_forward_backward
    calls = []

    def timed(self, batches, dtype):
        real(self, batches, dtype)
        calls.append(tr.AMP_NAMES[dtype])
        return times[tr.AMP_NAMES[dtype]]
    monkeypatch.setattr(tr.Trainer, "_time_forward_backward", timed)
    return calls


def _weights(exp, step):
    return ckpt.load_checkpoint(exp / "checkpoints" / ckpt.checkpoint_name(step))


@pytest.mark.parametrize("times, want", [({"none": 1.0, "bf16": 0.5}, "bf16"), ({"none": 1.0, "bf16": 0.95}, "none")],
                         ids=["bf16_faster", "bf16_not_10pc_faster"])
def test_amp_auto_takes_the_faster_precision_and_trains_as_if_it_was_given(corpus, tmp_path, monkeypatch, caplog,
                                                                          times, want):
    train, dev, lang = corpus
    conf = tiny_config(amp="auto", max_steps=4)
    conf["model"]["encoder"]["dropout"] = 0.3          # the timed passes draw dropout noise: it must be undone
    calls = _bf16_cpu_with_times(monkeypatch, times)
    with caplog.at_level(logging.INFO, logger="parastyle"):
        Trainer(conf, train, dev, lang, tmp_path / "auto").run()
    assert calls == ["none", "bf16"]
    assert f"-> {'bfloat16' if want == 'bf16' else 'float32'}" in caplog.text
    given = copy.deepcopy(conf)
    given["train"]["amp"] = want
    Trainer(given, train, dev, lang, tmp_path / "given").run()
    assert calls == ["none", "bf16"]                   # a given precision is not timed
    a, b = _weights(tmp_path / "auto", 4), _weights(tmp_path / "given", 4)
    assert a["amp"] == b["amp"] == want
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


class _RunningStats(torch.nn.Module):
    """BatchNorm running statistics: buffers that every training-mode forward (the timed ones too) moves."""

    def __init__(self, dim):
        super().__init__()
        self.norm = torch.nn.BatchNorm1d(dim)
        self.lin = torch.nn.Linear(dim, 1)

    @classmethod
    def from_config(cls, conf, task):
        return cls(task.feat_dim)

    def forward(self, batch):
        x = self.norm(batch["feats"][batch["mask"]])
        return {"losses": {"mse": self.lin(x).pow(2).mean()}, "metrics": {}}


def test_amp_auto_restores_the_buffers_the_timed_passes_moved(corpus, tmp_path, monkeypatch):
    if "test_running_stats" not in MODELS:
        MODELS.register("test_running_stats")(_RunningStats)
    train, dev, lang = corpus
    conf = tiny_config(amp="auto", max_steps=2)
    conf["model"] = {"name": "test_running_stats"}
    conf["valid"].update(metric="loss", mode="min")
    _bf16_cpu_with_times(monkeypatch, {"none": 1.0, "bf16": 2.0})
    Trainer(conf, train, dev, lang, tmp_path / "auto").run()
    given = copy.deepcopy(conf)
    given["train"]["amp"] = "none"
    Trainer(given, train, dev, lang, tmp_path / "given").run()
    a, b = _weights(tmp_path / "auto", 2)["model"], _weights(tmp_path / "given", 2)["model"]
    assert int(a["norm.num_batches_tracked"]) == 2
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_amp_auto_keeps_its_choice_on_resume_and_is_float32_without_bf16(corpus, tmp_path, monkeypatch):
    import parastyle.train.trainer as tr
    train, dev, lang = corpus
    conf = tiny_config(amp="auto", max_steps=6)
    calls = _bf16_cpu_with_times(monkeypatch, {"none": 1.0, "bf16": 0.5})
    assert Trainer(conf, train, dev, lang, tmp_path / "exp").run(stop_after_steps=2) == "stopped"
    assert calls == ["none", "bf16"]

    def no_timing(self, batches, dtype):
        raise AssertionError("a resumed run must not time the precisions again")
    monkeypatch.setattr(tr.Trainer, "_time_forward_backward", no_timing)
    resumed = Trainer(conf, train, dev, lang, tmp_path / "exp")
    resumed.run()
    assert resumed.amp_dtype is torch.bfloat16
    given = copy.deepcopy(conf)
    given["train"]["amp"] = "bf16"
    Trainer(given, train, dev, lang, tmp_path / "straight").run()
    a, b = _weights(tmp_path / "exp", 6), _weights(tmp_path / "straight", 6)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    monkeypatch.setattr(tr, "cpu_has_bf16", lambda: False)
    plain = Trainer(tiny_config(amp="auto", max_steps=2), train, dev, lang, tmp_path / "nobf16")
    plain.run()
    assert plain.amp_dtype is None and _weights(tmp_path / "nobf16", 2)["amp"] == "none"


def test_sigkill_and_resume(corpus, tmp_path, caplog):
    """A real SIGKILL of the training CLI; resuming finishes with the straight-run weights."""
    train, dev, lang = corpus
    # one thread in both runs, the straight one in this process and the killed CLI one: sums over two
    # threads may be ordered differently, and bitwise equality is what is tested
    conf = tiny_config(max_steps=150, valid_interval=50, ckpt_interval=10, log_interval=50, num_threads=1)
    cfg_path = tmp_path / "conf.yaml"
    cfg_path.write_text(yaml.safe_dump(conf))
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def cmd(exp):
        return [sys.executable, "-m", "parastyle.bin.train", "--config", str(cfg_path), "--train_data", str(train),
                "--valid_data", str(dev), "--lang_dir", str(lang), "--exp", str(exp)]

    straight = Trainer(copy.deepcopy(conf), train, dev, lang, tmp_path / "a")
    straight.run()
    exp = tmp_path / "b"
    proc = subprocess.Popen(cmd(exp), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(ckpt.list_checkpoints(exp / "checkpoints")) < 2 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if (exp / "done").exists():
        pytest.skip("training finished before the kill")
    with caplog.at_level(logging.INFO):
        assert Trainer(copy.deepcopy(conf), train, dev, lang, exp).run() == "done"
    assert "resumed from" in caplog.text
    a = torch.load(tmp_path / "a" / "checkpoints" / ckpt.checkpoint_name(150), weights_only=True)["model"]
    b = torch.load(exp / "checkpoints" / ckpt.checkpoint_name(150), weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
