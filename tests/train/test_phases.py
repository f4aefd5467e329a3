"""Multi-optimizer ("phased") training: a toy GAN trained by the Trainer against a hand-written loop,
exact resume of every optimizer/scheduler/RNG, per-phase clipping, and the refused configurations."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from parastyle.models import MODELS
from parastyle.train import checkpoint as ckpt
from parastyle.train.build import build_dataloader, build_task_info
from parastyle.train.config import ConfigError, load_config
from parastyle.train.trainer import Trainer, TrainingError

from conftest import make_datadir, tiny_config
from distributed_helpers import train_on_two_ranks

Z = 4


class ToyGAN(torch.nn.Module):
    """Generator: noise -> a fake utterance-mean feature vector; discriminator: real (mean-pooled
    features) vs fake. The generator's noise comes from the global torch RNG (resume must restore it);
    validation uses a fixed private generator."""

    train_phases = ("discriminator", "generator")

    def __init__(self, dim, hidden=8, overlap=False, orphan=False, batch_noise=False):
        super().__init__()
        self.batch_noise = batch_noise           # noise taken from the batch: no RNG (DDP comparison)
        self.gen = torch.nn.Sequential(torch.nn.Linear(Z, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, dim))
        self.disc = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))
        self.overlap = overlap
        if orphan:
            self.extra = torch.nn.Parameter(torch.zeros(1))

    @classmethod
    def from_config(cls, conf, task):
        return cls(task.feat_dim, overlap=bool(conf.get("overlap")), orphan=bool(conf.get("orphan")),
                   batch_noise=bool(conf.get("batch_noise")))

    def phase_parameters(self, phase):
        if phase == "generator":
            return list(self.gen.parameters()) + (list(self.disc.parameters())[:1] if self.overlap else [])
        return list(self.disc.parameters())

    @staticmethod
    def real(batch):
        m = batch["mask"].unsqueeze(-1).float()
        return (batch["feats"] * m).sum(1) / m.sum(1)

    def forward(self, batch, phase=None, cache=None):
        real = self.real(batch)
        b = real.shape[0]
        if phase is None:
            z = torch.randn(b, Z, generator=torch.Generator().manual_seed(0))
            fake = self.gen(z)
            return {"losses": {"mean_l1": (fake.mean(0) - real.mean(0)).abs().mean()}, "metrics": {}}
        if phase == "discriminator":
            z = real[:, :Z].flip(1) if self.batch_noise else torch.randn(b, Z)
            fake = self.gen(z)
            d_loss = F.softplus(-self.disc(real)).mean() + F.softplus(self.disc(fake.detach())).mean()
            return {"losses": {"d_loss": d_loss}, "metrics": {"d_real": self.disc(real).mean()},
                    "cache": {"fake": fake}}
        fake = cache["fake"]                       # still attached to the generator graph
        g_adv = F.softplus(-self.disc(fake)).mean()
        g_fm = (fake - real).pow(2).mean()
        return {"losses": {"g_adv": g_adv, "g_fm": g_fm}, "metrics": {}}


if "test_toy_gan" not in MODELS:
    MODELS.register("test_toy_gan")(ToyGAN)

LR_D, LR_G, CLIP = 0.02, 0.01, 0.05


def gan_config(**train):
    conf = tiny_config(**train)
    conf["model"] = {"name": "test_toy_gan"}
    conf["optim"] = {"discriminator": {"name": "adamw", "lr": LR_D, "betas": [0.8, 0.99], "eps": 1e-9,
                                       "weight_decay": 0.01},
                     "generator": {"name": "adam", "lr": LR_G, "betas": [0.5, 0.9], "eps": 1e-8,
                                   "weight_decay": 0.0}}
    conf["scheduler"] = {"discriminator": {"name": "constant", "warmup_steps": 2, "min_lr_ratio": 0.0},
                         "generator": {"name": "constant", "warmup_steps": 0, "min_lr_ratio": 0.0}}
    conf["train"]["grad_clip"] = CLIP
    conf["valid"] = {"metric": "mean_l1", "mode": "min", "patience": None}
    return conf


def reference_run(conf, train, lang, steps, joint_clip=False):
    """The phase contract written out by hand: for each step and phase in order, forward, backward,
    clip that phase's parameters, step its optimizer, zero every gradient, pass the cache on."""
    seed = int(conf["train"]["seed"])
    task = build_task_info(conf, train, lang)
    torch.manual_seed(seed)
    model = ToyGAN(task.feat_dim)
    torch.manual_seed(seed + 1)
    oc = conf["optim"]
    # the fused update, as the trainer's default optim.fused=auto picks on the CPU (tests/train/test_optim.py
    # checks that update against AdamW written out); bitwise equality needs the same kernel
    opts = {"discriminator": torch.optim.AdamW(model.disc.parameters(), lr=LR_D, betas=(0.8, 0.99), eps=1e-9,
                                               weight_decay=0.01, fused=True),
            "generator": torch.optim.Adam(model.gen.parameters(), lr=LR_G, betas=(0.5, 0.9), eps=1e-8, fused=True)}
    assert oc["discriminator"]["lr"] == LR_D and oc["generator"]["lr"] == LR_G
    loader = build_dataloader(conf, train, task=task, train=True)
    sampler, dataset = loader.batch_sampler, loader.dataset
    model.train()
    step, epoch, losses = 0, 0, []
    while step < steps:
        sampler.load_state_dict({"epoch": epoch, "position": 0})
        dataset.set_epoch(epoch)
        for batch in loader:
            opts["discriminator"].param_groups[0]["lr"] = LR_D * min(1.0, (step + 1) / 2)
            opts["generator"].param_groups[0]["lr"] = LR_G
            cache, total_step = None, 0.0
            for phase in ("discriminator", "generator"):
                out = model(batch, phase=phase, cache=cache)
                total = sum(out["losses"].values())
                total.backward()
                params = model.parameters() if joint_clip else opts[phase].param_groups[0]["params"]
                torch.nn.utils.clip_grad_norm_(list(params), CLIP)
                opts[phase].step()
                model.zero_grad(set_to_none=True)
                cache = out.get("cache")
                total_step += float(total.detach())
            step += 1
            losses.append((step, total_step))
            if step == steps:
                break
        epoch += 1
    return model, losses


def _ckpt(exp, step):
    return ckpt.load_checkpoint(Path(exp) / "checkpoints" / ckpt.checkpoint_name(step))


def test_phased_training_matches_hand_written_loop_and_resumes_exactly(corpus, tmp_path):
    train, dev, lang = corpus
    straight = Trainer(gan_config(), train, dev, lang, tmp_path / "a")
    assert straight.run() == "done"
    ref, ref_losses = reference_run(gan_config(), train, lang, 6)
    a = _ckpt(tmp_path / "a", 6)
    for k, v in ref.state_dict().items():
        assert torch.equal(a["model"][k], v), k
    assert [s for s, _ in straight.history] == [s for s, _ in ref_losses]
    for (_, x), (_, y) in zip(straight.history, ref_losses):
        assert x == pytest.approx(y, rel=1e-6)
    # clipping over all parameters (the discriminator receives gradients in the generator phase) differs
    joint, _ = reference_run(gan_config(), train, lang, 6, joint_clip=True)
    assert not all(torch.equal(joint.state_dict()[k], v) for k, v in ref.state_dict().items())
    # every phase's optimizer and scheduler is in the checkpoint
    assert set(a["optimizer"]) == set(a["scheduler"]) == {"discriminator", "generator"}
    assert a["scheduler"]["discriminator"]["last_epoch"] == 6
    assert set(a["optimizer"]["generator"]["state"]) and set(a["optimizer"]["discriminator"]["state"])
    # validation used phase None; best-K by valid.metric; model.pt written
    assert [s for s, _ in straight.valid_history] == [2, 4, 6]
    assert all(set(r) == {"loss", "mean_l1"} for _, r in straight.valid_history)
    assert (tmp_path / "a" / "model.pt").is_file()
    log = (tmp_path / "a" / "train.log").read_text()
    assert "d_loss=" in log and "g_adv=" in log and "g_fm=" in log and "lr_discriminator" in log

    # stop after 3 steps (mid-epoch), resume: bitwise the straight run (model, both optimizers, schedulers)
    first = Trainer(gan_config(), train, dev, lang, tmp_path / "c")
    assert first.run(stop_after_steps=3) == "stopped"
    resumed = Trainer(gan_config(), train, dev, lang, tmp_path / "c")
    assert resumed.run() == "done"
    assert first.history + resumed.history == straight.history
    c = _ckpt(tmp_path / "c", 6)

    def same(x, y, where):
        if torch.is_tensor(x):
            assert torch.equal(x, y), where
        elif isinstance(x, dict):
            assert x.keys() == y.keys(), where
            for k in x:
                same(x[k], y[k], f"{where}.{k}")
        elif isinstance(x, (list, tuple)):
            assert len(x) == len(y), where
            for i, (u, v) in enumerate(zip(x, y)):
                same(u, v, f"{where}[{i}]")
        else:
            assert x == y, where

    for key in ("model", "optimizer", "scheduler", "rng", "sampler", "best"):
        same(a[key], c[key], key)


def test_phase_config_errors(corpus, tmp_path):
    train, dev, lang = corpus
    conf = gan_config(accum_grad=2)
    with pytest.raises(ConfigError, match="accum_grad"):
        Trainer(conf, train, dev, lang, tmp_path / "e1").run()
    conf = gan_config()
    conf["optim"] = {"name": "adam", "lr": 1e-3, "weight_decay": 0.0, "betas": [0.9, 0.999], "eps": 1e-8}
    with pytest.raises(ConfigError, match="mapping phase"):
        Trainer(conf, train, dev, lang, tmp_path / "e2").run()
    conf = gan_config()
    del conf["optim"]["generator"]
    with pytest.raises(ConfigError, match=r"missing: \['generator'\]"):
        Trainer(conf, train, dev, lang, tmp_path / "e3").run()
    conf = gan_config()
    conf["model"]["overlap"] = True
    with pytest.raises(TrainingError, match="disjoint"):
        Trainer(conf, train, dev, lang, tmp_path / "e4").run()
    conf = gan_config()
    conf["model"]["orphan"] = True
    with pytest.raises(TrainingError, match="extra"):
        Trainer(conf, train, dev, lang, tmp_path / "e5").run()
    # a single-optimizer model with a phased optim
    conf = tiny_config()
    conf["optim"] = copy.deepcopy(gan_config()["optim"])
    with pytest.raises(ConfigError, match="no train_phases"):
        Trainer(conf, train, dev, lang, tmp_path / "e6").run()


def test_one_scheduler_for_every_phase(corpus, tmp_path):
    train, dev, lang = corpus
    conf = gan_config(max_steps=3)
    conf["scheduler"] = {"name": "warmup_cosine", "warmup_steps": 1, "min_lr_ratio": 0.0}
    t = Trainer(conf, train, dev, lang, tmp_path / "exp")
    t.run()
    # after 3 updates both phases are at p = (3 - 1) / (3 - 1) = 1 -> lr 0
    for phase, base in (("discriminator", LR_D), ("generator", LR_G)):
        lr = t.optimizers[phase].param_groups[0]["lr"]
        assert lr == pytest.approx(base * 0.5 * (1 + math.cos(math.pi)), abs=1e-12)
    # step 1 of 3 -> p = 0 -> full lr
    assert t.history and len(t.history) == 3


def test_phased_yaml_config(tmp_path):
    p = tmp_path / "gan.yaml"
    p.write_text(yaml.safe_dump({
        "model": {"name": "test_toy_gan"},
        "optim": {"generator": {"name": "adamw", "lr": 2.0e-4, "betas": [0.8, 0.99], "eps": 1.0e-9},
                  "discriminator": {"lr": 1.0e-4}},
        "scheduler": {"name": "constant"}}))
    conf = load_config(p, ["--optim.discriminator.lr", "3e-4"])
    assert conf["optim"]["generator"] == {"name": "adamw", "lr": 2.0e-4, "weight_decay": 0.0,
                                          "betas": [0.8, 0.99], "eps": 1.0e-9, "fused": "auto"}
    assert conf["optim"]["discriminator"]["lr"] == pytest.approx(3e-4)
    assert conf["optim"]["discriminator"]["name"] == "adam"       # the defaults fill each phase
    assert conf["scheduler"] == {"name": "constant", "warmup_steps": 0, "warmup_fraction": None, "min_lr_ratio": 0.0}
    with pytest.raises(ConfigError, match="optim.lr"):
        load_config(p, ["--optim.lr", "1e-3"])
    with pytest.raises(ConfigError, match="optim.generator.lrr"):
        load_config(p, ["--optim.generator.lrr", "1e-3"])
    p.write_text(yaml.safe_dump({"model": {"name": "x"}, "optim": {"lr": 1e-3, "generator": {"lr": 1e-3}}}))
    with pytest.raises(ConfigError, match="mixes"):
        load_config(p)


def test_phased_two_gloo_ranks_match_one_process(tmp_path):
    """Two CPU processes (each half of every global batch, phase gradients averaged over ranks)
    end with the weights of one process at the same global batch."""
    train = make_datadir(tmp_path / "data", "train", n=24)
    dev = make_datadir(tmp_path / "data", "dev", n=7, seed=1)
    lang = tmp_path / "data" / "lang"

    def conf():
        c = gan_config(max_steps=4, valid_interval=2, ckpt_interval=2)
        c["model"]["batch_noise"] = True
        c["data"].update(max_frames=None, batch_size=6)
        return c

    Trainer(conf(), train, dev, lang, tmp_path / "single").run()
    train_on_two_ranks(conf(), train, dev, lang, tmp_path / "ddp")
    a, b = _ckpt(tmp_path / "single", 4), _ckpt(tmp_path / "ddp", 4)
    assert b["world_size"] == 2
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-4, atol=1e-5)
    for phase in ("discriminator", "generator"):
        for i, st in a["optimizer"][phase]["state"].items():
            torch.testing.assert_close(st["exp_avg"], b["optimizer"][phase]["state"][i]["exp_avg"],
                                       rtol=1e-4, atol=1e-6)
    assert (tmp_path / "ddp" / "done").exists()
