"""Tag BCE through paraphrase templates."""
import json
import math

import pytest
import torch

from parastyle.fileio import DataError
from parastyle.losses.tagging import TagParaphrases, tag_bce_loss, tag_logits

PARA = {"shrill": ["A shrill voice.", "The pitch is piercing.", "Very high and sharp."],
        "deep": ["A deep voice.", "Low, resonant speech."],
        "fast": ["Rapid speech."]}


def test_from_json_validation(tmp_path):
    p = tmp_path / "tags.json"
    p.write_text(json.dumps(PARA))
    tp = TagParaphrases.from_json(p)
    assert tp.tags == ["shrill", "deep", "fast"] and len(tp) == 3
    p.write_text(json.dumps({"shrill": []}))
    with pytest.raises(DataError, match="shrill"):
        TagParaphrases.from_json(p)
    p.write_text('{"a": ["x"],\n "b": }')
    with pytest.raises(DataError, match=r"tags.json:2"):
        TagParaphrases.from_json(p)
    with pytest.raises(DataError, match="not found"):
        TagParaphrases.from_json(tmp_path / "missing.json")


def test_sample_one_per_tag_reproducible_and_covering():
    tp = TagParaphrases(PARA)
    s1 = tp.sample(torch.Generator().manual_seed(0))
    s2 = tp.sample(torch.Generator().manual_seed(0))
    assert s1 == s2 and len(s1) == 3
    for tag, text in zip(tp.tags, s1):
        assert text in PARA[tag]
    g = torch.Generator().manual_seed(1)
    seen = {tp.sample(g)[0] for _ in range(60)}
    assert seen == set(PARA["shrill"])   # every paraphrase gets drawn


def test_multi_hot_and_unknown_tag():
    tp = TagParaphrases(PARA)
    y = tp.multi_hot([["deep"], ["shrill", "fast"], []])
    assert y.tolist() == [[0, 1, 0], [1, 0, 1], [0, 0, 0]]
    with pytest.raises(DataError, match="utt7.*'angry'"):
        tp.multi_hot([["angry"]], utt_ids=["utt7"])
    assert tp.multi_hot([["angry", "deep"]], ignore_unknown=True).tolist() == [[0, 1, 0]]


def test_bce_matches_loop_reference():
    """Logits are the plain cosine (no scale, no bias), as in ParaSpeechCLAP: a loop reference."""
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(4, 5, generator=g), torch.randn(3, 5, generator=g)
    y = torch.tensor([[1, 0, 0], [0, 1, 1], [0, 0, 0], [1, 1, 1]], dtype=torch.float)
    ref = 0.0
    for b in range(4):
        for m in range(3):
            z = float(torch.dot(s[b], t[m]) / (s[b].norm() * t[m].norm()))
            p = 1 / (1 + math.exp(-z))
            yy = float(y[b, m])
            ref += -(yy * math.log(p) + (1 - yy) * math.log(1 - p))
    ref /= 12
    assert tag_bce_loss(s, t, y).item() == pytest.approx(ref, rel=1e-5)
    z = tag_logits(s, t)
    assert float(z.abs().max()) <= 1.0 + 1e-6          # a cosine: no logit scale
    torch.testing.assert_close(tag_logits(3.0 * s, 0.5 * t), z)
    with pytest.raises(ValueError, match="targets"):
        tag_bce_loss(s, t, y[:, :2])
