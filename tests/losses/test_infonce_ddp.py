"""Global InfoNCE over 2 gloo ranks with *uneven* local batches equals one process on the global batch.

Local batches follow the training sampler's sharding ``batch[r::W]`` (5 rows -> 3 + 2) and a
contiguous 4 + 1 split. Checked: the gathered tensors (sizes, order, padding stripped), the loss
value on every rank, and the gradients of a tiny linear dual encoder + learnable logit scale after
DDP averaging (real ``DistributedDataParallel`` and a manual ``all_reduce(sum) / W``) against the
single-process full-batch gradients.
"""
import os

import pytest
import torch
import torch.distributed as dist
from torch import nn

from parastyle.losses.infonce import (LogitScale, gather_no_grad, gather_sizes, gather_with_grad,
                                      global_infonce_loss, infonce_loss)

from distributed_helpers import init_gloo, spawn_ranks

WORLD = 2
N, DA, DT, E = 5, 6, 7, 4


class DualLinear(nn.Module):
    """Tiny dual encoder: ``xa (B, DA) -> (B, E)``, ``xt (B, DT) -> (B, E)``, learnable scale."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.audio = nn.Linear(DA, E)
        self.text = nn.Linear(DT, E)
        self.scale = LogitScale(init_tau=0.2)

    def forward(self, xa, xt, ids=None):
        return global_infonce_loss(self.audio(xa), self.text(xt), self.scale(), ids)


def make_data():
    g = torch.Generator().manual_seed(3)
    xa, xt = torch.randn(N, DA, generator=g), torch.randn(N, DT, generator=g)
    ids = torch.tensor([0, 1, 2, 0, 1])     # rows 0/3 and 1/4 share a caption, across ranks for [r::2]
    return xa, xt, ids


# the two shardings: rank -> row indices of the global batch
SPLITS = {"interleaved": [[0, 2, 4], [1, 3]], "contiguous": [[0, 1, 2, 3], [4]]}


def single_process(use_ids):
    xa, xt, ids = make_data()
    model = DualLinear()
    loss = model(xa, xt, ids if use_ids else None)
    loss.backward()
    return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}



def _worker(rank, port, out_dir):
    init_gloo(rank, port, WORLD)
    try:
        xa, xt, ids = make_data()
        out = {}
        for split, rows in SPLITS.items():
            idx = torch.tensor(rows[rank])
            order = torch.tensor(sum(rows, []))            # global row order after gathering
            la, lt, lid = xa[idx], xt[idx], ids[idx]
            res = {"sizes": gather_sizes(len(idx), la.device),
                   "gathered_a": gather_no_grad(la), "gathered_ids": gather_no_grad(lid),
                   "order": order}
            x = la.clone().requires_grad_(True)
            gathered = gather_with_grad(x)
            (gathered ** 2).sum().backward()               # only the local slice carries gradient
            res["gather_grad"] = x.grad
            for use_ids in (False, True):
                # manual DDP-style averaging: all_reduce(sum) / W
                model = DualLinear()
                loss = model(la, lt, lid if use_ids else None)
                loss.backward()
                grads = {}
                for k, p in model.named_parameters():
                    dist.all_reduce(p.grad)
                    grads[k] = p.grad / WORLD
                # real DDP (averages in backward)
                ddp = nn.parallel.DistributedDataParallel(DualLinear())
                ddp_loss = ddp(la, lt, lid if use_ids else None)
                ddp_loss.backward()
                res[use_ids] = {"loss": loss.detach(), "grads": grads, "ddp_loss": ddp_loss.detach(),
                                "ddp_grads": {k: p.grad.clone() for k, p in ddp.module.named_parameters()}}
            out[split] = res
        torch.save(out, os.path.join(out_dir, f"{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("infonce_ddp")
    return spawn_ranks(_worker, out_dir, WORLD)


@pytest.mark.parametrize("split", list(SPLITS))
def test_uneven_gather_sizes_order_and_local_gradient(ranks, split):
    xa, _, ids = make_data()
    rows = SPLITS[split]
    for rank, out in enumerate(ranks):
        r = out[split]
        assert r["sizes"] == [len(rows[0]), len(rows[1])]
        torch.testing.assert_close(r["gathered_a"], xa[r["order"]], rtol=0, atol=0)   # padding stripped
        assert r["gathered_ids"].tolist() == ids[r["order"]].tolist()
        torch.testing.assert_close(r["gather_grad"], 2 * xa[torch.tensor(rows[rank])])


@pytest.mark.parametrize("use_ids", [False, True])
@pytest.mark.parametrize("split", list(SPLITS))
def test_uneven_ranks_loss_and_averaged_gradients_equal_single_process(ranks, split, use_ids):
    ref_loss, ref_grads = single_process(use_ids)
    if use_ids:   # the shared captions matter: the loss differs from the one-positive loss
        assert abs(ref_loss.item() - single_process(False)[0].item()) > 1e-3
    for out in ranks:
        r = out[split][use_ids]
        torch.testing.assert_close(r["loss"], ref_loss)
        torch.testing.assert_close(r["ddp_loss"], ref_loss)
        assert set(r["grads"]) == set(ref_grads) == set(r["ddp_grads"])
        for k, g in ref_grads.items():
            assert g.abs().sum() > 0, k
            torch.testing.assert_close(r["grads"][k], g, rtol=1e-5, atol=1e-6, msg=lambda m: f"{k}: {m}")
            torch.testing.assert_close(r["ddp_grads"][k], g, rtol=1e-5, atol=1e-6, msg=lambda m: f"{k}: {m}")


def test_single_process_path_is_plain_infonce():
    xa, xt, ids = make_data()
    a, t = torch.randn(N, E), torch.randn(N, E)
    pos = ids[:, None] == ids[None, :]
    torch.testing.assert_close(global_infonce_loss(a, t, torch.tensor(3.0), ids),
                               infonce_loss(a, t, torch.tensor(3.0), pos))
    assert gather_sizes(3, torch.device("cpu")) == [3]
    assert gather_with_grad(a) is a and gather_no_grad(ids) is ids
