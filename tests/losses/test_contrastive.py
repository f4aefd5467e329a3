import math

import pytest
import torch

from parastyle.losses import (IGNORE_INDEX, meta_pair_weights, meta_regularization_loss, supcon_loss,
                              symmetric_info_nce)


def cos(a, b):
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


def supcon_loop(emb, labels, tau):
    """Slow reference: SupCon over known labels, anchors without positives skipped."""
    idx = [i for i in range(len(labels)) if labels[i] != IGNORE_INDEX]
    terms = []
    for i in idx:
        pos = [p for p in idx if p != i and labels[p] == labels[i]]
        if not pos:
            continue
        denom = sum(math.exp(cos(emb[i], emb[k]) / tau) for k in idx if k != i)
        terms.append(-sum(math.log(math.exp(cos(emb[i], emb[p]) / tau) / denom) for p in pos) / len(pos))
    return sum(terms) / len(terms) if terms else 0.0


def meta_loop(emb, labels, tau):
    """Slow reference of the META regularisation (unknown labels never shared, denominator = #factors)."""
    F_ = len(labels)
    B = emb.shape[0]
    terms = []
    for i in range(B):
        w = {}
        for j in range(B):
            if j == i:
                continue
            shared = 0
            for y in labels.values():
                if y[i] != IGNORE_INDEX and y[j] != IGNORE_INDEX and y[i] == y[j]:
                    shared += 1
            w[j] = shared / F_
        tot = sum(w.values())
        if tot == 0:
            continue
        denom = sum(math.exp(cos(emb[i], emb[k]) / tau) for k in range(B) if k != i)
        terms.append(-sum(w[j] / tot * math.log(math.exp(cos(emb[i], emb[j]) / tau) / denom) for j in w))
    return sum(terms) / len(terms) if terms else 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_supcon_matches_loop(seed):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(9, 5, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 2, 1, IGNORE_INDEX, 0, 3, IGNORE_INDEX])  # class 2 and 3 seen once
    got = supcon_loss(emb, labels, tau=0.2)
    assert got.item() == pytest.approx(supcon_loop(emb, labels.tolist(), 0.2), rel=1e-9)


def test_supcon_unknown_rows_do_not_matter():
    g = torch.Generator().manual_seed(3)
    emb = torch.randn(6, 4, generator=g)
    labels = torch.tensor([0, 0, 1, 1, IGNORE_INDEX, IGNORE_INDEX])
    a = supcon_loss(emb, labels)
    emb2 = emb.clone()
    emb2[4:] = torch.randn(2, 4, generator=g) * 50
    torch.testing.assert_close(a, supcon_loss(emb2, labels))


@pytest.mark.parametrize("labels", [[IGNORE_INDEX] * 4, [0, 1, 2, 3], [5]])
def test_supcon_degenerate_batches_are_zero_not_nan(labels):
    emb = torch.randn(len(labels), 3, requires_grad=True)
    loss = supcon_loss(emb, torch.tensor(labels))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(emb.grad).all()


def test_supcon_gradient_matches_finite_differences_and_pulls_positives_together():
    # the analytic gradient equals a central finite-difference gradient of the loop reference
    g = torch.Generator().manual_seed(4)
    emb = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, IGNORE_INDEX])
    supcon_loss(emb, labels, tau=0.3).backward()
    eps = 1e-6
    num = torch.zeros_like(emb)
    for i in range(6):
        for d in range(3):
            hi, lo = emb.detach().clone(), emb.detach().clone()
            hi[i, d] += eps
            lo[i, d] -= eps
            num[i, d] = (supcon_loop(hi, labels.tolist(), 0.3) - supcon_loop(lo, labels.tolist(), 0.3)) / (2 * eps)
    torch.testing.assert_close(emb.grad, num, atol=1e-6, rtol=1e-5)
    assert float(emb.grad[5].abs().max()) == 0.0           # an unknown label gets no gradient
    # what a user relies on: minimising it makes every embedding's nearest neighbour share its label
    g = torch.Generator().manual_seed(5)
    emb = torch.randn(8, 6, generator=g).requires_grad_(True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    opt = torch.optim.SGD([emb], lr=0.5)
    for _ in range(60):
        opt.zero_grad()
        supcon_loss(emb, labels).backward()
        opt.step()
    x = torch.nn.functional.normalize(emb.detach(), dim=-1)
    sim = x @ x.t() - 3 * torch.eye(8)
    assert torch.equal(labels[sim.argmax(1)], labels)
    same = labels[:, None] == labels[None, :]
    off = ~torch.eye(8, dtype=torch.bool)
    assert float(sim[same & off].min()) > float(sim[~same].max())


def test_meta_pair_weights():
    labels = {"a": torch.tensor([0, 0, 1, IGNORE_INDEX]), "b": torch.tensor([2, 2, 2, 2])}
    w = meta_pair_weights(labels)
    expect = torch.tensor([[0, 1, .5, .5], [1, 0, .5, .5], [.5, .5, 0, .5], [.5, .5, .5, 0]])
    torch.testing.assert_close(w, expect)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_meta_matches_loop(seed):
    g = torch.Generator().manual_seed(seed)
    B = 10
    emb = torch.randn(B, 7, generator=g, dtype=torch.float64)
    labels = {f: torch.randint(0, 3, (B,), generator=g) for f in ["emotion", "age", "gender", "language"]}
    labels["age"][::3] = IGNORE_INDEX
    labels["language"][:] = IGNORE_INDEX       # a factor with every label unknown
    got = meta_regularization_loss(emb, labels, tau=0.3)
    ref = meta_loop(emb, {f: y.tolist() for f, y in labels.items()}, 0.3)
    assert got.item() == pytest.approx(ref, rel=1e-9)


def test_meta_edge_cases():
    # Batch of 1 and a batch where nobody shares anything -> 0, finite gradient.
    for labels in ({"a": torch.tensor([0])}, {"a": torch.tensor([0, 1, 2]), "b": torch.tensor([0, 1, IGNORE_INDEX])}):
        emb = torch.randn(len(labels["a"]), 4, requires_grad=True)
        loss = meta_regularization_loss(emb, labels)
        assert loss.item() == 0.0
        loss.backward()
        assert torch.isfinite(emb.grad).all()


def test_meta_with_one_factor_equals_supcon():
    emb = torch.randn(8, 5, dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 1, 2, 2, 3, 0])
    torch.testing.assert_close(meta_regularization_loss(emb, {"f": y}, 0.1), supcon_loss(emb, y, 0.1))


def info_nce_loop(a, b, tau, pos):
    B = a.shape[0]

    def side(x, y, p):
        tot = 0.0
        for i in range(B):
            denom = sum(math.exp(cos(x[i], y[k]) / tau) for k in range(B))
            ps = [j for j in range(B) if p[i][j]]
            tot += -sum(math.log(math.exp(cos(x[i], y[j]) / tau) / denom) for j in ps) / len(ps)
        return tot / B

    pt = [[pos[j][i] for j in range(B)] for i in range(B)]
    return 0.5 * (side(a, b, pos) + side(b, a, pt))


def test_symmetric_info_nce_matches_loop():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64)
    caps = ["x", "y", "x", "z", "y"]
    pos = torch.tensor([[ci == cj for cj in caps] for ci in caps])
    assert symmetric_info_nce(a, b, 0.1, pos).item() == pytest.approx(info_nce_loop(a, b, 0.1, pos.tolist()), rel=1e-9)
    eye = torch.eye(5, dtype=torch.bool)
    assert symmetric_info_nce(a, b, 0.1).item() == pytest.approx(info_nce_loop(a, b, 0.1, eye.tolist()), rel=1e-9)
    # Batch of 1: log(1) = 0.
    assert symmetric_info_nce(a[:1], b[:1], 0.1).item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        symmetric_info_nce(a, b, 0.1, torch.zeros(5, 5, dtype=torch.bool))


def test_low_precision_inputs_give_fp32_losses():
    emb = torch.randn(6, 4)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    ref = supcon_loss(emb, y)
    got = supcon_loss(emb.bfloat16(), y)
    assert got.dtype == torch.float32 and got.item() == pytest.approx(ref.item(), rel=0.05)
    assert meta_regularization_loss(emb.bfloat16(), {"f": y}).dtype == torch.float32
    assert symmetric_info_nce(emb.bfloat16(), emb.bfloat16(), 0.1).dtype == torch.float32
