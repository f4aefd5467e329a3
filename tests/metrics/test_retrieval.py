"""Retrieval metrics against a brute-force computation with sorted lists."""
import statistics

import pytest
import torch

from parastyle.metrics.retrieval import (audio_to_text_ranks, cosine_similarity_matrix, retrieval_metrics,
                                         text_to_audio_ranks, unique_captions)


def brute_force(sim, cap_idx):
    n, c = len(sim), len(sim[0])
    a2t = []
    for i in range(n):
        # sort captions by similarity, the correct one placed after every equal competitor
        order = sorted(range(c), key=lambda j: (-sim[i][j], j == cap_idx[i]))
        a2t.append(order.index(cap_idx[i]) + 1)
    t2a = []
    for j in range(c):
        order = sorted(range(n), key=lambda k: (-sim[k][j], cap_idx[k] == j))
        t2a.append(min(order.index(k) + 1 for k in range(n) if cap_idx[k] == j))
    return a2t, t2a


def test_unique_captions():
    uniq, idx = unique_captions(["b", "a", "b", "c", "a"])
    assert uniq == ["b", "a", "c"] and idx.tolist() == [0, 1, 0, 2, 1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranks_and_metrics_vs_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    n, c, d = 23, 7, 4
    cap_idx = torch.cat([torch.arange(c), torch.randint(c, (n - c,), generator=g)])
    a, t = torch.randn(n, d, generator=g), torch.randn(c, d, generator=g)
    a[:5] = t[cap_idx[:5]] * 2.0    # some clips point exactly at their caption
    sim = cosine_similarity_matrix(a, t)
    ref_a2t, ref_t2a = brute_force(sim.tolist(), cap_idx.tolist())
    assert audio_to_text_ranks(sim, cap_idx).tolist() == ref_a2t
    assert text_to_audio_ranks(sim, cap_idx).tolist() == ref_t2a
    m = retrieval_metrics(a, t, cap_idx)
    for prefix, ranks in (("a2t", ref_a2t), ("t2a", ref_t2a)):
        for k in (1, 5, 10):
            assert m[f"{prefix}_R@{k}"] == pytest.approx(sum(r <= k for r in ranks) / len(ranks))
        assert m[f"{prefix}_median_rank"] == pytest.approx(statistics.median(ranks))
        assert m[f"{prefix}_mean_rank"] == pytest.approx(statistics.mean(ranks))
    assert m["num_clips"] == n and m["num_captions"] == c and m["a2t_R@5_random"] == pytest.approx(5 / 7)


def test_ties_count_against_the_correct_item():
    sim = torch.zeros(4, 3)
    cap_idx = torch.tensor([0, 1, 2, 0])
    assert audio_to_text_ranks(sim, cap_idx).tolist() == [3, 3, 3, 3]
    # caption 0 has 2 clips among 4: 2 negatives tie with it -> rank 3
    assert text_to_audio_ranks(sim, cap_idx).tolist() == [3, 4, 4]


def test_perfect_embeddings_and_caption_without_clip():
    t = torch.eye(3)
    cap_idx = torch.tensor([0, 1, 2, 2, 1])
    m = retrieval_metrics(t[cap_idx], t, cap_idx)
    assert m["a2t_R@1"] == 1.0 and m["t2a_R@1"] == 1.0 and m["a2t_median_rank"] == 1.0
    with pytest.raises(ValueError, match="no clip"):
        text_to_audio_ranks(torch.zeros(2, 3), torch.tensor([0, 1]))
