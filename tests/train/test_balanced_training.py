"""Training with ``data.sampler.name: class_balanced``: trains, resumes exactly, balances tags, DDP, errors."""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest
import torch

from parastyle.data.balanced_sampler import ClassBalancedBatchSampler
from parastyle.data.samplers import LengthBucketBatchSampler
from parastyle.fileio import DataError, read_kv, write_kv, write_list
from parastyle.train import build
from parastyle.train import checkpoint as ckpt
from parastyle.train.config import ConfigError, load_config
from parastyle.train.trainer import Trainer

from conftest import make_datadir, tiny_config
from distributed_helpers import train_on_two_ranks

RARE = (3, 17)      # the only utterances tagged "shrill"


def _tags_of(index: int):
    tags = ["shrill"] if index in RARE else ["breathy"]
    if index % 4 == 0:
        tags.append("deep")
    return tags


def add_tags(data_dir: Path, lang_dir: Path, skip=()):
    """utt2tags (breathy on 22 utterances, deep on 6, shrill on 2) and lang/tags.txt."""
    utts = sorted(read_kv(data_dir / "utt2spk"))
    write_kv(data_dir / "utt2tags", {u: " ".join(_tags_of(int(u[-3:]))) for u in utts if int(u[-3:]) not in skip})
    write_list(lang_dir / "tags.txt", ["breathy", "deep", "shrill"])
    return {u: _tags_of(int(u[-3:])) for u in utts}


@pytest.fixture
def tagged(tmp_path):
    train = make_datadir(tmp_path / "data", "train", n=24, unlabelled_emotion=(5, 11))
    dev = make_datadir(tmp_path / "data", "dev", n=9, seed=1)
    lang = tmp_path / "data" / "lang"
    tags = add_tags(train, lang)
    add_tags(dev, lang)
    return train, dev, lang, tags


def balanced_config(**train):
    conf = tiny_config(**train)
    conf["data"].update(max_frames=None, batch_size=6)
    conf["data"]["sampler"].update(name="class_balanced", num_batches=4)
    return conf


def _params(exp, step=6):
    return ckpt.load_checkpoint(Path(exp) / "checkpoints" / ckpt.checkpoint_name(step))["model"]


def test_config_key_and_validation(tmp_path):
    conf = load_config(None, [("model", {"name": "multitask_ce"})])
    assert conf["data"]["sampler"] == {"name": "length_bucket", "power": 1.0, "reduce": "mean",
                                       "num_batches": None, "untagged": "error",
                                       "weights": None}
    conf = load_config(None, ["--model.name", "multitask_ce", "--data.sampler.name", "class_balanced",
                              "--data.sampler.power", "0.5"])
    assert conf["data"]["sampler"]["name"] == "class_balanced" and conf["data"]["sampler"]["power"] == 0.5
    for key, value, match in (("name", "balanced", "data.sampler.name"), ("reduce", "sum", "data.sampler.reduce"),
                              ("untagged", "drop", "data.sampler.untagged"), ("power", "-1", "data.sampler.power"),
                              ("num_batches", "0", "data.sampler.num_batches")):
        with pytest.raises(ConfigError, match=match):
            load_config(None, ["--model.name", "multitask_ce", f"--data.sampler.{key}", value])
    with pytest.raises(ConfigError, match="data.sampler.weights"):
        load_config(None, ["--model.name", "multitask_ce", "--data.sampler.weights", "1"])


def test_loaders_train_balanced_evaluate_in_length_order(tagged):
    train, dev, lang, tags = tagged
    conf = balanced_config()
    tl = build.build_dataloader(conf, train, lang_dir=lang, train=True)
    assert isinstance(tl.batch_sampler, ClassBalancedBatchSampler)
    assert tl.batch_sampler.num_batches() == 4 and tl.batch_sampler.batch_size == 6
    # the sampler's tags are the dataset's, in dataset index order
    assert tl.batch_sampler.tag_counts == Counter({"breathy": 22, "deep": 6, "shrill": 2})
    batch = next(iter(tl))
    assert len(batch["utt_ids"]) == 6 and [tags[u] for u in batch["utt_ids"]] == batch["tags"]
    vl = build.build_dataloader(conf, dev, lang_dir=lang, train=False)
    assert isinstance(vl.batch_sampler, LengthBucketBatchSampler) and not vl.batch_sampler.shuffle
    seen = [u for b in vl for u in b["utt_ids"]]
    assert sorted(seen) == sorted(read_kv(dev / "utt2spk"))       # every utterance once
    # the default stays length buckets
    assert isinstance(build.build_dataloader(tiny_config(), train, lang_dir=lang, train=True).batch_sampler,
                      LengthBucketBatchSampler)


def test_trains_resumes_exactly_and_balances_tags(tagged, tmp_path, monkeypatch):
    train, dev, lang, tags = tagged
    fed = []     # utterances of every batch built (training and validation), in order

    def recording_collate(items):
        fed.append([it["utt_id"] for it in items])
        return collate(items)

    collate = build.collate_batch
    monkeypatch.setattr(build, "collate_batch", recording_collate)

    # (a) trains: 6 steps over 4 batches per epoch (crosses an epoch boundary)
    straight = Trainer(balanced_config(), train, dev, lang, tmp_path / "a")
    assert straight.run() == "done"
    assert [s for s, _ in straight.history] == [1, 2, 3, 4, 5, 6]
    assert all(torch.isfinite(torch.tensor(loss)) for _, loss in straight.history)
    train_batches = [b for b in fed if all("-train" in u for u in b)]
    assert len(train_batches) == 6 and all(len(b) == len(set(b)) == 6 for b in train_batches)
    # the batches are the sampler's: epoch 0 batches 0..3, then epoch 1 batches 0..1
    s = straight.train_loader.batch_sampler
    assert train_batches == [[straight.train_loader.dataset.utts[i] for i in b]
                             for b in s.global_batches(0) + s.global_batches(1)[:2]]

    # (b) exact resume: killed mid-epoch (step 3) and at the epoch boundary (step 4)
    for k in (3, 4):
        exp = tmp_path / f"stop{k}"
        first = Trainer(balanced_config(), train, dev, lang, exp)
        assert first.run(stop_after_steps=k) == "stopped"
        assert first.history == straight.history[:k]
        state = ckpt.load_checkpoint(exp / "checkpoints" / ckpt.checkpoint_name(k))
        assert state["sampler"] == {"epoch": 0, "position": k}
        resumed = Trainer(balanced_config(), train, dev, lang, exp)
        assert resumed.run() == "done"
        assert resumed.history == straight.history[k:]
        assert resumed.valid_history[-1][1] == straight.valid_history[-1][1]
        a, b = _params(tmp_path / "a"), _params(exp)
        assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)

    # (c) brute-force tag counts: the sampled batches are flatter than the data and favour the rare tag
    data = Counter(m for t in tags.values() for m in t)
    drawn = Counter(m for b in train_batches for u in b for m in tags[u])
    share = lambda c: {m: v / sum(c.values()) for m, v in c.items()}
    spread = lambda c: max(c.values()) / min(c.values())
    assert set(drawn) == set(data) == {"breathy", "deep", "shrill"}
    assert spread(drawn) < 0.5 * spread(data)
    assert share(drawn)["shrill"] > 2 * share(data)["shrill"]


def test_untagged_utterances(tmp_path, caplog):
    train = make_datadir(tmp_path / "data", "train", n=24)
    dev = make_datadir(tmp_path / "data", "dev", n=9, seed=1)
    lang = tmp_path / "data" / "lang"
    add_tags(dev, lang)
    # no utt2tags at all
    with pytest.raises(DataError, match=r"train/utt2tags: file not found.*class_balanced"):
        Trainer(balanced_config(), train, dev, lang, tmp_path / "e0").run()
    # utterances 7 and 8 without a tags line: named and counted, refused by default
    add_tags(train, lang, skip=(7, 8))
    with pytest.raises(DataError) as ei:
        Trainer(balanced_config(), train, dev, lang, tmp_path / "e1").run()
    msg = str(ei.value)
    assert "utt2tags" in msg and "2 of 24" in msg and "trainspk3-train007" in msg and "trainspk0-train008" in msg
    assert "untagged: own_class" in msg
    assert not (tmp_path / "e1" / "checkpoints").exists()
    # own_class: they form the pseudo-tag class <none>, and the count is logged
    conf = balanced_config(max_steps=2)
    conf["data"]["sampler"]["untagged"] = "own_class"
    with caplog.at_level(logging.WARNING, logger="parastyle"):
        assert Trainer(conf, train, dev, lang, tmp_path / "ok").run() == "done"
    assert "2 of 24 utterance(s) without tags" in caplog.text and "<none>" in caplog.text


def test_frame_budget_and_batch_size_required(tagged, tmp_path):
    train, dev, lang, _ = tagged
    conf = balanced_config()
    conf["data"]["max_frames"] = 200
    with pytest.raises(ConfigError, match="data.max_frames: null"):
        build.build_dataloader(conf, train, lang_dir=lang, train=True)
    conf = balanced_config()
    conf["data"]["batch_size"] = None
    with pytest.raises(ConfigError, match="data.batch_size"):
        build.build_dataloader(conf, train, lang_dir=lang, train=True)
    conf = balanced_config()
    conf["data"]["batch_size"] = 25
    with pytest.raises(DataError, match=r"train: cannot build the class-balanced sampler over 24 utterance"):
        build.build_dataloader(conf, train, lang_dir=lang, train=True)


def _ddp_conf():
    conf = balanced_config(max_steps=4, valid_interval=2, ckpt_interval=2)
    conf["model"]["encoder"]["dropout"] = 0.0
    conf["valid"].update(metric="loss", mode="min")
    return conf


def test_ddp_class_balanced_matches_single_process(tmp_path):
    """Each rank trains on its half of the same global batch: 2 processes == 1 process."""
    train = make_datadir(tmp_path / "data", "train", n=24)
    dev = make_datadir(tmp_path / "data", "dev", n=8, seed=1)
    lang = tmp_path / "data" / "lang"
    add_tags(train, lang)
    add_tags(dev, lang)
    Trainer(_ddp_conf(), train, dev, lang, tmp_path / "single").run()
    train_on_two_ranks(_ddp_conf(), train, dev, lang, tmp_path / "ddp")
    a = torch.load(tmp_path / "single" / "checkpoints" / ckpt.checkpoint_name(4), weights_only=True)
    b = torch.load(tmp_path / "ddp" / "checkpoints" / ckpt.checkpoint_name(4), weights_only=True)
    assert b["world_size"] == 2 and b["sampler"] == a["sampler"] == {"epoch": 0, "position": 4}
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-4, atol=1e-5)
