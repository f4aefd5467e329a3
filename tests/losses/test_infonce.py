"""Symmetric InfoNCE: loop reference, learnable capped scale, global batch over 2 gloo ranks."""
import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from parastyle.losses.infonce import LogitScale, gather_with_grad, global_infonce_loss, infonce_loss

from distributed_helpers import free_port


def loop_reference(a, t, scale, positives):
    n = a.shape[0]
    cos = [[float(torch.dot(a[i], t[j]) / (a[i].norm() * t[j].norm())) for j in range(n)] for i in range(n)]
    s = [[scale * c for c in row] for row in cos]
    a2t = 0.0
    for i in range(n):
        lse = math.log(sum(math.exp(s[i][k]) for k in range(n)))
        pos = [j for j in range(n) if positives[i][j]]
        a2t += -sum(s[i][j] - lse for j in pos) / len(pos)
    t2a = 0.0
    for j in range(n):
        lse = math.log(sum(math.exp(s[k][j]) for k in range(n)))
        pos = [i for i in range(n) if positives[i][j]]
        t2a += -sum(s[i][j] - lse for i in pos) / len(pos)
    return 0.5 * (a2t / n + t2a / n)


def test_matches_loop_reference_identity_and_shared_captions():
    g = torch.Generator().manual_seed(0)
    a, t = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    eye = torch.eye(6, dtype=torch.bool)
    got = infonce_loss(a, t, torch.tensor(1 / 0.07), eye)
    assert got.item() == pytest.approx(loop_reference(a, t, 1 / 0.07, eye.tolist()), rel=1e-5)
    assert infonce_loss(a, t, torch.tensor(1 / 0.07)).item() == pytest.approx(got.item())
    ids = torch.tensor([0, 1, 0, 2, 1, 3])
    pos = ids[:, None] == ids[None, :]
    got = infonce_loss(a, t, torch.tensor(3.0), pos)
    assert got.item() == pytest.approx(loop_reference(a, t, 3.0, pos.tolist()), rel=1e-5)
    with pytest.raises(ValueError, match="diagonal"):
        infonce_loss(a, t, torch.tensor(1.0), torch.zeros(6, 6, dtype=torch.bool))


def test_perfect_alignment_gives_lower_loss():
    a = torch.eye(4)
    assert infonce_loss(a, a, torch.tensor(10.0)) < infonce_loss(a, a.flip(0), torch.tensor(10.0))


def test_logit_scale_init_cap_and_gradient():
    ls = LogitScale(0.07, 100.0)
    assert ls().item() == pytest.approx(1 / 0.07, rel=1e-6)
    a = torch.randn(4, 3)
    loss = infonce_loss(a, a + 0.1 * torch.randn(4, 3), ls())
    loss.backward()
    assert ls.log_scale.grad is not None and ls.log_scale.grad.item() != 0.0
    with torch.no_grad():
        ls.log_scale.fill_(math.log(500.0))
    assert ls().item() == pytest.approx(100.0)
    with pytest.raises(ValueError):
        LogitScale(0.001, 100.0)



def _worker(rank, world, port, a, t, ids, scale, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        b = a.shape[0] // world
        la = a[rank * b:(rank + 1) * b].clone().requires_grad_(True)
        lt = t[rank * b:(rank + 1) * b].clone().requires_grad_(True)
        assert gather_with_grad(la).shape == a.shape
        loss = global_infonce_loss(la, lt, torch.tensor(scale), ids[rank * b:(rank + 1) * b])
        loss.backward()
        torch.save({"loss": loss.detach(), "ga": la.grad, "gt": lt.grad}, os.path.join(out_dir, f"{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_equal_one_process(tmp_path):
    g = torch.Generator().manual_seed(1)
    a, t = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    ids = torch.tensor([0, 1, 2, 3, 0, 4, 5, 1])   # shared captions across the two ranks
    scale = 5.0
    mp.spawn(_worker, args=(2, free_port(), a, t, ids, scale, str(tmp_path)), nprocs=2, join=True)
    fa, ft = a.clone().requires_grad_(True), t.clone().requires_grad_(True)
    ref = global_infonce_loss(fa, ft, torch.tensor(scale), ids)   # not distributed: whole batch
    ref.backward()
    for rank in range(2):
        r = torch.load(tmp_path / f"{rank}.pt")
        assert r["loss"].item() == pytest.approx(ref.item(), rel=1e-6)
        # each rank's gradient on its own slice is W = 2 times the single-process gradient of that
        # slice, so that DDP's gradient averaging over ranks gives the single-process gradient
        torch.testing.assert_close(r["ga"], 2 * fa.grad[rank * 4:(rank + 1) * 4])
        torch.testing.assert_close(r["gt"], 2 * ft.grad[rank * 4:(rank + 1) * 4])
