"""DDP on CPU (gloo, 2 processes) equals one process at the same global batch, both with processes
started here and through the real torchrun launcher."""
from __future__ import annotations

import os
import subprocess
import sys

import torch
import yaml

from parastyle.train import checkpoint as ckpt

from conftest import make_datadir, tiny_config
from distributed_helpers import train_on_two_ranks


def _conf():
    conf = tiny_config(max_steps=4, valid_interval=2, ckpt_interval=2)
    conf["model"]["encoder"]["dropout"] = 0.0
    conf["data"].update(max_frames=None, batch_size=6)
    conf["valid"].update(metric="loss", mode="min")
    return conf


def test_ddp_gloo_matches_single_process(tmp_path):
    train = make_datadir(tmp_path / "data", "train", n=24)
    dev = make_datadir(tmp_path / "data", "dev", n=7, seed=1)
    lang = tmp_path / "data" / "lang"
    from parastyle.train.trainer import Trainer
    single = Trainer(_conf(), train, dev, lang, tmp_path / "single")
    single.run()
    train_on_two_ranks(_conf(), train, dev, lang, tmp_path / "ddp")
    a = torch.load(tmp_path / "single" / "checkpoints" / ckpt.checkpoint_name(4), weights_only=True)
    b = torch.load(tmp_path / "ddp" / "checkpoints" / ckpt.checkpoint_name(4), weights_only=True)
    assert b["world_size"] == 2 and len(b["rng"]) == 2
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-4, atol=1e-5)
    assert (tmp_path / "ddp" / "done").exists() and (tmp_path / "ddp" / "model.pt").exists()
    # validation is sharded over ranks and reduced: same best-K bookkeeping
    assert [s for _, s in a["best"]] == [s for _, s in b["best"]]
    for (va, _), (vb, _) in zip(a["best"], b["best"]):
        assert abs(va - vb) < 1e-5


def test_torchrun_cli_two_cpu_processes(tmp_path):
    """``torchrun --standalone --nproc_per_node 2 -m parastyle.bin.train`` (what stage 4 runs with
    ngpu > 1) on CPU ends with the weights of a single process at the same global batch."""
    train = make_datadir(tmp_path / "data", "train", n=24)
    dev = make_datadir(tmp_path / "data", "dev", n=7, seed=1)
    lang = tmp_path / "data" / "lang"
    from parastyle.train.trainer import Trainer
    Trainer(_conf(), train, dev, lang, tmp_path / "single").run()
    cfg = tmp_path / "conf.yaml"
    cfg.write_text(yaml.safe_dump(_conf()))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "parastyle.bin.train", "--config", str(cfg), "--train_data", str(train),
                        "--valid_data", str(dev), "--lang_dir", str(lang), "--exp", str(tmp_path / "ddp")],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    a = torch.load(tmp_path / "single" / "checkpoints" / ckpt.checkpoint_name(4), weights_only=True)
    b = torch.load(tmp_path / "ddp" / "checkpoints" / ckpt.checkpoint_name(4), weights_only=True)
    assert b["world_size"] == 2
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-4, atol=1e-5)
    assert (tmp_path / "ddp" / "done").exists()
