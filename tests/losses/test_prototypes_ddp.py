"""PrototypeBank over 2 gloo ranks with different (uneven) local data equals one process fed the
concatenated batch, on both ranks: the bank alone and inside a DDP-wrapped ParaMETA (whose buffers
DDP broadcasts from rank 0 at every forward)."""
import os

import pytest
import torch
import torch.distributed as dist
from torch import nn

from parastyle.losses import IGNORE_INDEX, PrototypeBank

from distributed_helpers import init_gloo, spawn_ranks

WORLD = 2
X = IGNORE_INDEX
# global batches (5 rows); rank r gets rows r::2 (3 + 2 rows, like LengthBucketBatchSampler)
STEPS = [
    {"emo": [0, 1, 0, 2, X], "age": [0, 1, 1, 0, 1]},
    {"emo": [3, X, 3, X, 0], "age": [X, X, X, X, X]},     # rank 1: no known label at all
    {"emo": [1, 1, 0, 0, 2], "age": [1, X, 0, X, 1]},     # rank 1: no known age
]
FACTORS = {"emo": 4, "age": 2}
DIM = 3
PM_FACTORS = {"emo": ["a", "b", "c", "d"], "age": ["young", "old"]}
ENC = {"name": "transformer_wide", "d_model": 8, "nhead": 2, "dim_feedforward": 16, "num_layers": 1, "dropout": 0.0}


def bank_batches():
    g = torch.Generator().manual_seed(0)
    return [({f: torch.randn(5, DIM, generator=g) for f in FACTORS},
             {f: torch.tensor(s[f]) for f in FACTORS}) for s in STEPS]


def ema_loop(emb_steps, m):
    """Slow reference: ``{factor: {class: unit vector}}`` after the EMA updates on full batches."""
    state = {f: {} for f in FACTORS}
    for emb, labels in emb_steps:
        for f in FACTORS:
            y = labels[f].tolist()
            for c in sorted(set(v for v in y if v != X)):
                vecs = [emb[f][i].double() / emb[f][i].double().norm() for i in range(len(y)) if y[i] == c]
                mu = sum(vecs) / len(vecs)
                mu = mu / mu.norm()
                old = state[f].get(c)
                v = mu if old is None else m * old + (1 - m) * mu
                state[f][c] = v / v.norm()
    return state


def parameta_batches():
    g = torch.Generator().manual_seed(1)
    out = []
    for s in STEPS:
        lens = torch.tensor([6, 4, 5, 3, 6])
        mask = torch.arange(6)[None] < lens[:, None]
        feats = torch.randn(5, 6, 4, generator=g) * mask.unsqueeze(-1)
        out.append({"utt_ids": [f"u{i}" for i in range(5)], "feats": feats, "feat_lens": lens, "mask": mask,
                    "labels": {f: torch.tensor(s[f]) for f in PM_FACTORS}})
    return out


def shard(batch, rank):
    idx = torch.arange(rank, 5, WORLD)
    out = {k: v[idx] for k, v in batch.items() if torch.is_tensor(v)}
    out["utt_ids"] = [batch["utt_ids"][i] for i in idx.tolist()]
    out["labels"] = {f: v[idx] for f, v in batch["labels"].items()}
    return out


def make_parameta():
    from parastyle.models import build_model
    from parastyle.models.task import TaskInfo

    torch.manual_seed(0)
    return build_model({"name": "parameta", "encoder": ENC, "meta_dim": 8, "subspace_dim": DIM, "tau": 0.2,
                        "momentum": 0.5, "use_text": False}, TaskInfo(feat_dim=4, factors=PM_FACTORS))


def run_parameta(model, batches):
    model.train()
    for b in batches:
        sum(model(b)["losses"].values()).backward()    # forward + backward, no optimizer step
    return {k: v.clone() for k, v in (model.module if hasattr(model, "module") else model).prototypes.state_dict().items()}



def _worker(rank, port, out_dir):
    init_gloo(rank, port, WORLD)
    try:
        out = {}
        bank = PrototypeBank(FACTORS, DIM, momentum=0.7)
        for emb, labels in bank_batches():
            for f in FACTORS:
                bank.update(f, emb[f][rank::WORLD], labels[f][rank::WORLD])
        out["bank"] = {k: v.clone() for k, v in bank.state_dict().items()}
        # a bad label on rank 1 only: both ranks raise (no rank left waiting in a collective)
        try:
            bank.update("emo", torch.randn(2, DIM), torch.tensor([0, 9 if rank else 1]))
            out["raised"] = False
        except ValueError as e:
            out["raised"] = "out of range" in str(e)
        ddp = nn.parallel.DistributedDataParallel(make_parameta())
        out["parameta"] = run_parameta(ddp, [shard(b, rank) for b in parameta_batches()])
        torch.save(out, os.path.join(out_dir, f"{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("proto_ddp")
    return spawn_ranks(_worker, out_dir, WORLD)


def test_bank_two_ranks_equal_single_process_on_concatenated_batch(ranks):
    single = PrototypeBank(FACTORS, DIM, momentum=0.7)
    for emb, labels in bank_batches():
        for f in FACTORS:
            single.update(f, emb[f], labels[f])
    ref = ema_loop(bank_batches(), 0.7)
    for out in ranks:
        for k, v in single.state_dict().items():
            torch.testing.assert_close(out["bank"][k], v, rtol=1e-5, atol=1e-6)
        for f in FACTORS:
            assert out["bank"][f"seen_{f}"].tolist() == [c in ref[f] for c in range(FACTORS[f])]
            for c, v in ref[f].items():
                torch.testing.assert_close(out["bank"][f"proto_{f}"][c].double(), v, rtol=1e-5, atol=1e-6)
    for k in ranks[0]["bank"]:
        torch.testing.assert_close(ranks[0]["bank"][k], ranks[1]["bank"][k], rtol=0, atol=0)
    # emo class 3 only ever appears in rank 0's data: rank 1 still has its prototype
    assert ranks[1]["bank"]["seen_emo"][3] and ranks[0]["bank"]["seen_age"].all()


def test_bank_out_of_range_label_on_one_rank_raises_on_every_rank(ranks):
    assert [out["raised"] for out in ranks] == [True, True]


def test_ddp_parameta_prototypes_equal_single_process(ranks):
    single = run_parameta(make_parameta(), parameta_batches())
    assert single["seen_emo"].all() and single["seen_age"].all()
    for out in ranks:
        for k, v in single.items():
            torch.testing.assert_close(out["parameta"][k], v, rtol=1e-4, atol=1e-5)
