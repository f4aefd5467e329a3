import pytest
import torch

from parastyle.nn.layer_weights import LayerWeighting


def test_uniform_init_is_mean_and_weights_learnable():
    torch.manual_seed(0)
    layers = [torch.randn(2, 3, 4) for _ in range(5)]
    lw = LayerWeighting(5)
    assert torch.allclose(lw.weights(), torch.full((5,), 0.2))
    assert torch.allclose(lw(layers), torch.stack(layers).mean(0), atol=1e-6)
    with torch.no_grad():
        lw.logits.copy_(torch.tensor([0.0, 1.0, 2.0, 0.0, -1.0]))
    w = torch.softmax(torch.tensor([0.0, 1.0, 2.0, 0.0, -1.0]), 0)
    ref = sum(w[i] * layers[i] for i in range(5))
    assert torch.allclose(lw(layers), ref, atol=1e-6)
    assert torch.allclose(lw(torch.stack(layers)), ref, atol=1e-6)
    lw(layers).sum().backward()
    assert lw.logits.grad is not None


def test_fixed_layer():
    layers = [torch.full((1, 2, 3), float(i)) for i in range(4)]
    lw = LayerWeighting(4, fixed_layer=2)
    assert list(lw.parameters()) == []
    assert torch.equal(lw(layers), layers[2])
    assert torch.equal(lw.weights(), torch.tensor([0.0, 0.0, 1.0, 0.0]))
    assert torch.equal(LayerWeighting(4, fixed_layer=-1)(layers), layers[3])
    with pytest.raises(ValueError):
        LayerWeighting(4, fixed_layer=4)
    with pytest.raises(ValueError, match="expected 4 layers"):
        lw(layers[:3])
