import pytest
import torch

from parastyle.nn.attention_pooling import AttentionPooling


def test_masked_weights_and_reference():
    torch.manual_seed(0)
    pool = AttentionPooling(6)
    x = torch.randn(3, 7, 6)
    lens = [7, 4, 1]
    mask = torch.arange(7)[None] < torch.tensor(lens)[:, None]
    pooled, w = pool(x, mask)
    assert pooled.shape == (3, 6) and w.shape == (3, 7)
    assert (w[~mask] == 0).all()
    assert torch.allclose(w.sum(1), torch.ones(3))
    q = pool.query.detach()
    for b, n in enumerate(lens):   # reference on the unpadded sequence
        s = torch.stack([x[b, t] @ q / 6 ** 0.5 for t in range(n)])
        a = torch.softmax(s, 0)
        ref = sum(a[t] * x[b, t] for t in range(n))
        assert torch.allclose(pooled[b], ref, atol=1e-6)
        assert torch.allclose(w[b, :n], a, atol=1e-6)
    assert w[2, 0].item() == pytest.approx(1.0)


def test_padding_values_do_not_change_output():
    torch.manual_seed(1)
    pool = AttentionPooling(4)
    x = torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    p1, w1 = pool(x, mask)
    x2 = x.clone()
    x2[0, 3:] = 1e4
    p2, w2 = pool(x2, mask)
    assert torch.allclose(p1, p2) and torch.allclose(w1, w2)
    # same as the utterance alone without padding
    p3, _ = pool(x[:1, :3], mask[:1, :3])
    assert torch.allclose(p1[0], p3[0], atol=1e-6)


def test_empty_sequence_is_an_error():
    pool = AttentionPooling(3)
    with pytest.raises(ValueError, match="no valid frame"):
        pool(torch.randn(2, 4, 3), torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool))
