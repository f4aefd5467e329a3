import pytest
import torch
import torch.nn.functional as F

from parastyle.losses import IGNORE_INDEX, PrototypeBank, prototype_alignment_loss


def ema_loop(bank_state, emb, labels, m):
    """Slow reference of one EMA update: dict class -> (vector or None)."""
    out = dict(bank_state)
    for c in sorted(set(l for l in labels if l != IGNORE_INDEX)):
        vecs = [emb[i] / emb[i].norm() for i in range(len(labels)) if labels[i] == c]
        mu = sum(vecs) / len(vecs)
        mu = mu / mu.norm()
        if out.get(c) is None:
            out[c] = mu
        else:
            v = m * out[c] + (1 - m) * mu
            out[c] = v / v.norm()
    return out


def test_ema_update_matches_loop_and_flags_seen():
    g = torch.Generator().manual_seed(0)
    bank = PrototypeBank({"emotion": 4, "age": 2}, dim=3, momentum=0.9)
    state = {}
    for step in range(3):
        emb = torch.randn(6, 3, generator=g, dtype=torch.float32)
        labels = [0, 0, 2, IGNORE_INDEX, 2 if step else 0, 0]
        bank.update("emotion", emb, torch.tensor(labels))
        state = ema_loop(state, emb.double(), labels, 0.9)
    assert bank.seen("emotion").tolist() == [True, False, True, False]
    assert not bank.seen("age").any()
    for c, v in state.items():
        torch.testing.assert_close(bank.prototypes("emotion")[c].double(), v, atol=1e-6, rtol=1e-5)
    assert bank.prototypes("emotion")[1].abs().sum() == 0


def test_buffers_in_state_dict_and_unknown_only_batch_is_noop():
    bank = PrototypeBank({"gender": 2}, dim=4)
    assert set(bank.state_dict()) == {"proto_gender", "seen_gender"}
    bank.update("gender", torch.randn(3, 4), torch.full((3,), IGNORE_INDEX))
    assert not bank.seen("gender").any()
    with pytest.raises(ValueError, match="out of range"):
        bank.update("gender", torch.randn(1, 4), torch.tensor([5]))
    with pytest.raises(ValueError, match="out of range"):
        bank.update("gender", torch.randn(2, 4), torch.tensor([0, -3]))
    assert not bank.seen("gender").any()                  # a rejected batch changes nothing
    with pytest.raises(ValueError, match=r"expected emb \(B, 4\)"):
        bank.update("gender", torch.randn(2, 3), torch.tensor([0, 1]))
    with pytest.raises(RuntimeError, match="no prototype"):
        bank.nearest("gender", torch.randn(2, 4))


def test_alignment_loss_matches_loop():
    g = torch.Generator().manual_seed(1)
    protos = torch.randn(3, 5, generator=g)
    seen = torch.tensor([True, True, False])
    emb = torch.randn(6, 5, generator=g, requires_grad=True)
    labels = torch.tensor([0, 1, 2, IGNORE_INDEX, 1, 0])
    got = prototype_alignment_loss(emb, labels, protos, seen)
    terms = [1 - F.cosine_similarity(emb[i], protos[labels[i]], dim=0) for i in range(6)
             if labels[i] != IGNORE_INDEX and seen[labels[i]]]
    torch.testing.assert_close(got, sum(terms) / len(terms))
    got.backward()
    assert torch.isfinite(emb.grad).all() and emb.grad[2].abs().sum() == 0 and emb.grad[3].abs().sum() == 0


def test_alignment_loss_empty_is_zero():
    emb = torch.randn(1, 4, requires_grad=True)
    loss = prototype_alignment_loss(emb, torch.tensor([IGNORE_INDEX]), torch.randn(2, 4), torch.tensor([True, True]))
    assert loss.item() == 0.0
    loss.backward()
    loss = prototype_alignment_loss(emb, torch.tensor([1]), torch.randn(2, 4), torch.tensor([True, False]))
    assert loss.item() == 0.0


def test_first_batch_class_seen_once_aligns_exactly():
    # A class seen once in its first batch becomes that embedding's direction: loss 0 for that sample.
    bank = PrototypeBank({"f": 3}, dim=4)
    emb = torch.randn(1, 4)
    bank.update("f", emb, torch.tensor([2]))
    assert bank.alignment_loss("f", emb, torch.tensor([2])).item() == pytest.approx(0.0, abs=1e-6)


def test_nearest_skips_unseen_classes():
    bank = PrototypeBank({"f": 3}, dim=2)
    bank.update("f", torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 2]))
    pred = bank.nearest("f", torch.tensor([[0.9, 0.1], [-0.1, 1.0], [-1.0, -1.0]]))
    assert pred.tolist()[:2] == [0, 2] and pred[2].item() in (0, 2)
