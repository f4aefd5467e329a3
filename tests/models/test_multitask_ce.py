"""Multi-task CE model and the TDNN encoder: loss vs a per-utterance loop, ignore index, padding invariance."""
from __future__ import annotations

import math

import torch

from parastyle.data import IGNORE_INDEX
from parastyle.models import build_model
from parastyle.models.task import TaskInfo
from parastyle.nn.encoders import build_encoder
from parastyle.nn.pooling import lengths_to_mask


def _task():
    return TaskInfo(feat_dim=5, factors={"emotion": ["a", "b", "c"], "gender": ["f", "m"]})


def _batch(lens, labels):
    torch.manual_seed(0)
    lens = torch.tensor(lens)
    feats = torch.randn(len(lens), int(lens.max()), 5)
    mask = lengths_to_mask(lens)
    feats = feats * mask.unsqueeze(-1)
    return {"utt_ids": [f"u{i}" for i in range(len(lens))], "feats": feats, "feat_lens": lens, "mask": mask,
            "labels": {k: torch.tensor(v) for k, v in labels.items()}}


def test_tdnn_padding_does_not_change_output():
    enc = build_encoder({"name": "tdnn", "hidden": 8, "kernel_sizes": [3, 5], "dilations": [2, 1],
                         "output_dim": 4}, 5).eval()
    x = torch.randn(1, 7, 5)
    alone = enc(x, torch.ones(1, 7, dtype=torch.bool))
    padded = torch.cat([x, 100 * torch.randn(1, 9, 5)], dim=1)
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[:, :7] = True
    torch.testing.assert_close(enc(padded, mask), alone)
    h, m = enc.forward_frames(padded, mask)
    assert h.shape == (1, 16, 8) and torch.equal(m, mask) and (h[:, 7:] == 0).all()


def test_loss_against_loop_reference_with_ignore_index():
    model = build_model({"name": "multitask_ce", "encoder": {"name": "tdnn", "hidden": 8, "output_dim": 6},
                         "loss_weights": {"gender": 0.5}}, _task()).eval()
    batch = _batch([6, 4, 9, 3], {"emotion": [0, IGNORE_INDEX, 2, 1], "gender": [1, 0, 0, 1]})
    out = model(batch)
    logits = model.logits(batch)
    for f, w in (("emotion", 1.0), ("gender", 0.5)):
        terms = []
        for i, y in enumerate(batch["labels"][f].tolist()):
            if y == IGNORE_INDEX:
                continue
            z = logits[f][i]
            terms.append(-(z[y] - torch.logsumexp(z, 0)))
        ref = w * sum(terms) / len(terms)
        torch.testing.assert_close(out["losses"][f"ce_{f}"], ref)
        known = batch["labels"][f] != IGNORE_INDEX
        acc = (logits[f].argmax(-1)[known] == batch["labels"][f][known]).float().mean()
        assert math.isclose(float(out["metrics"][f"acc_{f}"]), float(acc))
    pred = model.predict(batch)
    assert pred["emotion"].shape == (4,) and pred["gender"].dtype == torch.long


def test_factor_without_labels_gives_zero_loss_and_gradient_path():
    model = build_model({"name": "multitask_ce", "encoder": {"name": "tdnn", "hidden": 8, "output_dim": 6}}, _task())
    batch = _batch([5, 3], {"emotion": [IGNORE_INDEX, IGNORE_INDEX], "gender": [0, 1]})
    out = model(batch)
    assert out["losses"]["ce_emotion"].item() == 0.0 and "acc_emotion" not in out["metrics"]
    sum(out["losses"].values()).backward()
    assert model.heads["emotion"].weight.grad is not None


def test_learns_separable_toy_task():
    torch.manual_seed(0)
    model = build_model({"name": "multitask_ce", "encoder": {"name": "tdnn", "hidden": 8, "output_dim": 8,
                                                               "dropout": 0.0}}, _task())
    lens = torch.randint(4, 9, (24,))
    y_e = torch.arange(24) % 3
    y_g = (torch.arange(24) // 3) % 2
    feats = torch.randn(24, 8, 5) * 0.3
    feats[torch.arange(24), :, y_e] += 1.0
    feats[torch.arange(24), :, 3 + y_g] += 1.0
    mask = lengths_to_mask(lens, 8)
    batch = {"utt_ids": [str(i) for i in range(24)], "feats": feats * mask.unsqueeze(-1), "mask": mask,
             "feat_lens": lens, "labels": {"emotion": y_e, "gender": y_g}}
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(40):
        loss = sum(model(batch)["losses"].values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    pred = model.predict(batch)
    assert (pred["emotion"] == y_e).float().mean() > 0.9 and (pred["gender"] == y_g).float().mean() > 0.9
