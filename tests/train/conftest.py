"""Fixtures: a tiny fabricated Kaldi data dir with kaldiio features and label vocabularies."""
from __future__ import annotations

from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from parastyle.fileio import write_kv, write_list

EMOTIONS = ["angry", "happy", "neutral"]
GENDERS = ["female", "male"]


def make_datadir(root, name="train", n=24, dim=6, seed=0, min_len=8, max_len=30, unlabelled_emotion=(),
                 lang=True):
    """Write ``root/<name>`` (utt2spk, spk2utt, feats.scp, utt2num_frames, utt2emotion, utt2gender,
    utt2caption) and ``root/lang/{emotion,gender}.txt``. Features carry the labels as mean shifts,
    so a tiny model learns them. Utterances in ``unlabelled_emotion`` (indices) have no emotion line."""
    root = Path(root)
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    feats, utt2spk, emo, gen, nf, cap = {}, {}, {}, {}, {}, {}
    for i in range(n):
        spk = f"{name}spk{i % 4}"
        utt = f"{spk}-{name}{i:03d}"
        e, g = i % 3, (i % 4) // 2
        t = int(rng.randint(min_len, max_len + 1))
        x = rng.randn(t, dim).astype(np.float32) * 0.5
        x[:, e] += 1.5
        x[:, 3 + g] += 1.5
        feats[utt] = x
        utt2spk[utt] = spk
        if i not in unlabelled_emotion:
            emo[utt] = EMOTIONS[e]
        gen[utt] = GENDERS[g]
        nf[utt] = str(t)
        cap[utt] = f"a {GENDERS[g]} voice sounding {EMOTIONS[e]}"
    keys = sorted(feats)
    kaldiio.save_ark(str(d / "feats.ark"), {k: feats[k] for k in keys}, scp=str(d / "feats.scp"))
    write_kv(d / "utt2spk", utt2spk)
    spk2utt = {}
    for u in keys:
        spk2utt.setdefault(utt2spk[u], []).append(u)
    write_kv(d / "spk2utt", {s: " ".join(us) for s, us in spk2utt.items()})
    write_kv(d / "utt2emotion", emo)
    write_kv(d / "utt2gender", gen)
    write_kv(d / "utt2num_frames", nf)
    write_kv(d / "utt2caption", cap)
    if lang:
        write_list(root / "lang" / "emotion.txt", EMOTIONS)
        write_list(root / "lang" / "gender.txt", GENDERS)
    return d


def tiny_config(**train):
    """A small multitask_ce config as loaded by load_config (dict)."""
    from parastyle.train.config import load_config
    over = [("model", {"name": "multitask_ce",
                       "encoder": {"name": "tdnn", "hidden": 16, "kernel_sizes": [3, 3], "dilations": [1, 2],
                                   "output_dim": 16, "dropout": 0.1}}),
            ("data.max_frames", 200), ("optim.lr", 0.01), ("scheduler.name", "warmup_cosine"),
            ("scheduler.warmup_steps", 2), ("train.max_steps", 6), ("train.log_interval", 2),
            ("train.valid_interval", 2), ("train.ckpt_interval", 2), ("train.keep_last", 2),
            ("train.average_best", 2), ("train.progress", False), ("valid.metric", "acc_emotion"),
            ("valid.mode", "max")]
    over += [(f"train.{k}", v) for k, v in train.items()]
    return load_config(None, over)


class OrderedValid(torch.nn.Module):
    """Validation metric = number of validation batches seen so far (a buffer, so it survives resume):
    with mode min the earliest validation is the best one."""

    def __init__(self, dim):
        super().__init__()
        self.lin = torch.nn.Linear(dim, 2)
        self.register_buffer("seen", torch.zeros(()))

    @classmethod
    def from_config(cls, conf, task):
        return cls(task.feat_dim)

    def forward(self, batch):
        loss = self.lin(batch["feats"]).pow(2).mean()
        if self.training:
            return {"losses": {"mse": loss}, "metrics": {}}
        self.seen += 1
        return {"losses": {"mse": loss}, "metrics": {"order": self.seen.clone()}}


def ordered_config(**train):
    """tiny_config with the OrderedValid model (valid.metric ``order``, mode min, no warm-up)."""
    from parastyle.models import MODELS
    if "test_ordered" not in MODELS:
        MODELS.register("test_ordered")(OrderedValid)
    conf = tiny_config(**train)
    conf["model"] = {"name": "test_ordered"}
    conf["valid"].update(metric="order", mode="min")
    conf["scheduler"]["warmup_steps"] = 0
    return conf


@pytest.fixture
def corpus(tmp_path):
    """``(train_dir, dev_dir, lang_dir)`` of a tiny labelled corpus with features."""
    train = make_datadir(tmp_path / "data", "train", n=24, unlabelled_emotion=(5, 11))
    dev = make_datadir(tmp_path / "data", "dev", n=9, seed=1)
    return train, dev, tmp_path / "data" / "lang"
