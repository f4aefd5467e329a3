"""Acoustic model blocks and model: MAS vs a slow DP, length regulation, alignment targets,
padding invariance, style conditioning, deterministic sampling."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from parastyle.fileio import DataError
from parastyle.models.task import TaskInfo
from parastyle.models.tts import FastSpeechStyle
from parastyle.nn.tts_blocks import (ConvPostnet, MelPatchDiscriminator, StyleConditioner, alignment_from_durations,
                                     average_by_duration, gaussian_log_likelihood, length_regulate,
                                     monotonic_alignment, phone_position_features, random_segments,
                                     sequence_mask)


def slow_mas(score):
    """Brute-force DP over monotonic surjective paths: phone n covers frames [s_n, s_{n+1})."""
    n, t = score.shape
    best = {}
    neg = -1e30
    # q[i][j]: best score of aligning phones 0..i to frames 0..j with frame j on phone i
    q = np.full((n, t), neg)
    back = np.zeros((n, t), dtype=int)
    for j in range(t):
        for i in range(min(n, j + 1)):
            if j == 0:
                q[i, j] = score[0, 0] if i == 0 else neg
                continue
            stay = q[i, j - 1]
            move = q[i - 1, j - 1] if i > 0 else neg
            if stay >= move:
                q[i, j], back[i, j] = stay + score[i, j], 0
            else:
                q[i, j], back[i, j] = move + score[i, j], 1
    path = np.zeros((n, t))
    i = n - 1
    for j in range(t - 1, -1, -1):
        path[i, j] = 1
        if j > 0 and back[i, j] == 1:
            i -= 1
    assert i == 0
    return path, q[n - 1, t - 1]


def path_score(path, score):
    return float((path * score).sum())


def test_mas_matches_slow_dp():
    g = torch.Generator().manual_seed(0)
    for n, t in [(1, 4), (3, 3), (4, 9), (6, 17)]:
        score = torch.randn(1, n, t, generator=g)
        path = monotonic_alignment(score, torch.ones(1, n, dtype=torch.bool), torch.ones(1, t, dtype=torch.bool))[0]
        ref, best = slow_mas(score[0].numpy())
        assert path_score(path.numpy(), score[0].numpy()) == pytest.approx(best, abs=1e-4)
        np.testing.assert_array_equal(path.numpy(), ref)
        # monotonic, surjective, one phone per frame
        assert (path.sum(0) == 1).all() and (path.sum(1) >= 1).all()


def test_mas_respects_padding_and_refuses_too_few_frames():
    g = torch.Generator().manual_seed(1)
    score = torch.randn(2, 5, 12, generator=g)
    pm = sequence_mask(torch.tensor([5, 3]), 5)
    fm = sequence_mask(torch.tensor([12, 7]), 12)
    path = monotonic_alignment(score, pm, fm)
    ref, _ = slow_mas(score[1, :3, :7].numpy())
    np.testing.assert_array_equal(path[1, :3, :7].numpy(), ref)
    assert path[1, 3:].sum() == 0 and path[1, :, 7:].sum() == 0
    with pytest.raises(ValueError, match="frames for"):
        monotonic_alignment(score, pm, sequence_mask(torch.tensor([12, 2]), 12))


def test_gaussian_log_likelihood_against_loop():
    g = torch.Generator().manual_seed(2)
    y, mu = torch.randn(2, 6, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    out = gaussian_log_likelihood(y, mu)
    for b in range(2):
        for n in range(3):
            for t in range(6):
                ref = -0.5 * float(((y[b, t] - mu[b, n]) ** 2).sum()) - 2 * math.log(2 * math.pi)
                assert float(out[b, n, t]) == pytest.approx(ref, abs=1e-4)


def test_length_regulation():
    h = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    d = torch.tensor([[2, 0, 3], [1, 1, 0]])
    out, lens = length_regulate(h, d)
    assert lens.tolist() == [5, 2] and out.shape == (2, 5, 2)
    ref0 = [h[0, 0]] * 2 + [h[0, 2]] * 3
    torch.testing.assert_close(out[0], torch.stack(ref0))
    torch.testing.assert_close(out[1, :2], torch.stack([h[1, 0], h[1, 1]]))
    assert out[1, 2:].abs().sum() == 0


def test_average_by_duration_against_loop():
    g = torch.Generator().manual_seed(3)
    vals = torch.rand(2, 10, generator=g) * 100
    vals[0, 2:4] = 0.0                                   # unvoiced frames
    vals[1, 5:] = 0.0
    d = torch.tensor([[2, 2, 3, 3], [3, 2, 4, 0]])
    for ignore_zero in (False, True):
        out = average_by_duration(vals, d, ignore_zero=ignore_zero)
        for b in range(2):
            start = 0
            for n in range(4):
                seg = vals[b, start: start + int(d[b, n])].tolist()
                start += int(d[b, n])
                if ignore_zero:
                    seg = [v for v in seg if v != 0]
                ref = sum(seg) / len(seg) if seg else 0.0
                assert float(out[b, n]) == pytest.approx(ref, abs=1e-4)
    assert alignment_from_durations(d).sum(1).tolist() == [[2, 2, 3, 3], [3, 2, 4, 0]]


def test_style_conditioner_is_layernorm_then_linear():
    c = StyleConditioner(8, 4)
    x = torch.randn(3, 8)
    ref = c.proj.weight @ ((x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=False, keepdim=True) + 1e-5)).T
    torch.testing.assert_close(c(x), ref.T + c.proj.bias, atol=1e-5, rtol=1e-5)


def tiny_model(tmp_path, style_type="vector", speakers=None, **extra):
    lang = tmp_path / "lang"
    lang.mkdir(exist_ok=True)
    (lang / "phones.txt").write_text("\n".join(["<pad>", "<blank>", "<en>", "|", "a", "b", "c", "d"]) + "\n")
    task = TaskInfo(feat_dim=8, speakers=speakers or ["s1", "s2"], lang_dir=str(lang))
    conf = dict(hidden=16, filter_size=32, heads=2, encoder_layers=2, decoder_layers=1, kernel_size=3,
                dropout=0.1, cond_dim=8, variance_filter=16, mel_mean=0.0, mel_std=1.0,
                style={"type": style_type, "dim": 6}, **extra)
    torch.manual_seed(0)
    return FastSpeechStyle.from_config(conf, task)


def make_batch(lens_p, lens_t, seed=0, pad_p=None, pad_t=None, style_dim=6):
    g = torch.Generator().manual_seed(seed)
    b = len(lens_p)
    n, t = pad_p or max(lens_p), pad_t or max(lens_t)
    phones = torch.zeros(b, n, dtype=torch.long)
    feats = torch.zeros(b, t, 8)
    f0, en = torch.zeros(b, t), torch.zeros(b, t)
    for i, (lp, lt) in enumerate(zip(lens_p, lens_t)):
        phones[i, :lp] = torch.randint(2, 8, (lp,), generator=g)
        feats[i, :lt] = torch.randn(lt, 8, generator=g)
        f0[i, :lt] = torch.where(torch.rand(lt, generator=g) > 0.3, 100 + 100 * torch.rand(lt, generator=g), 0.0)
        en[i, :lt] = torch.rand(lt, generator=g) * 5
    fl = torch.tensor(lens_t)
    return {"utt_ids": [f"u{i}" for i in range(b)], "phones": phones, "phone_lens": torch.tensor(lens_p),
            "feats": feats, "feat_lens": fl, "mask": sequence_mask(fl, t), "f0": f0, "energy": en,
            "style": torch.randn(b, style_dim, generator=g), "speakers": ["s1"] * b, "labels": {}}


def _slice(batch, i, lp, lt):
    return {"utt_ids": [batch["utt_ids"][i]], "phones": batch["phones"][i:i + 1, :lp],
            "phone_lens": batch["phone_lens"][i:i + 1], "feats": batch["feats"][i:i + 1, :lt],
            "feat_lens": batch["feat_lens"][i:i + 1], "mask": batch["mask"][i:i + 1, :lt],
            "f0": batch["f0"][i:i + 1, :lt], "energy": batch["energy"][i:i + 1, :lt],
            "style": batch["style"][i:i + 1], "speakers": batch["speakers"][i:i + 1], "labels": {}}


FAST_OPTIONS = dict(decoder_residual=True, phone_position=True, postnet_layers=3, postnet_channels=12,
                    postnet_kernel=5)


REF_OPTIONS = dict(FAST_OPTIONS, reference_encoder={"dim": 4, "channels": 8, "layers": 2})


@pytest.mark.parametrize("options", [{}, FAST_OPTIONS, dict(FAST_OPTIONS, frame_variance=["pitch", "energy"]),
                                     REF_OPTIONS],
                         ids=["plain", "residual_position_postnet", "frame_variance", "reference_encoder"])
def test_padding_does_not_change_outputs(tmp_path, options):
    model = tiny_model(tmp_path, **options).eval()
    if model.postnet is not None:       # a trained postnet (its last conv starts at zero)
        torch.nn.init.normal_(model.postnet.convs[-1].weight, 0, 0.3)
    batch = make_batch([7, 4], [20, 11], pad_p=9, pad_t=25)
    # garbage in padded positions must not matter
    batch["feats"][1, 11:] = 50.0
    batch["f0"][1, 11:] = 300.0
    with torch.no_grad():
        full = model(batch)
        alone = model(_slice(batch, 1, 4, 11))
        d_full = model.align(batch)[1, :4]
        d_alone = model.align(_slice(batch, 1, 4, 11))[0]
        inf_full = model.infer(batch["phones"], batch["phone_lens"], style=batch["style"])
        inf_alone = model.infer(batch["phones"][1:, :4], batch["phone_lens"][1:], style=batch["style"][1:])
    assert d_full.tolist() == d_alone.tolist()
    n1 = int(inf_alone["mel_lens"][0])
    assert int(inf_full["mel_lens"][1]) == n1
    torch.testing.assert_close(inf_full["mel"][1, :n1], inf_alone["mel"][0, :n1], atol=1e-4, rtol=1e-4)
    assert inf_full["mel"][1, n1:].abs().sum() == 0
    # per-utterance loss of the padded batch = utterance-weighted mix; check the single one is finite
    assert all(torch.isfinite(v) for v in alone["losses"].values())
    assert all(torch.isfinite(v) for v in full["losses"].values())


def _train_60_steps(model, batch):
    """60 Adam steps on one batch -> (first loss, last loss, last output)."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        out = model(batch)
        loss = sum(out["losses"].values())
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return first, loss, out


def test_training_reduces_loss_and_mas_durations_cover_frames(tmp_path):
    model = tiny_model(tmp_path)
    batch = make_batch([6, 5], [18, 14], seed=4)
    d = model.align(batch)
    assert d.sum(1).tolist() == [18, 14] and (d[0] >= 1).all() and (d[1, :5] >= 1).all() and d[1, 5:].sum() == 0
    first, loss, out = _train_60_steps(model, batch)
    assert float(loss.detach()) < 0.7 * first
    assert set(out["losses"]) == {"mel", "prior", "duration", "pitch", "energy"}


def test_variance_targets_follow_alignment(tmp_path):
    model = tiny_model(tmp_path)
    f0 = torch.tensor([[0.0, 200.0, 200.0, 100.0, 0.0, 0.0]])
    en = torch.tensor([[1.0, 1.0, 3.0, 3.0, 3.0, 3.0]])
    d = torch.tensor([[3, 1, 2]])
    p, e = model.variance_targets(f0, en, d, torch.ones(1, 3, dtype=torch.bool))
    pm, ps = model.norm["pitch"]
    em, es = model.norm["energy"]
    assert float(p[0, 0]) == pytest.approx((math.log(200) - pm) / ps, abs=1e-5)
    assert float(p[0, 1]) == pytest.approx((math.log(100) - pm) / ps, abs=1e-5)
    assert float(p[0, 2]) == 0.0                                    # no voiced frame
    le = [math.log(x + 1e-4) for x in (1, 1, 3)]
    assert float(e[0, 0]) == pytest.approx((sum(le) / 3 - em) / es, abs=1e-5)


def test_sampling_is_deterministic_for_a_seed_and_style_matters(tmp_path):
    model = tiny_model(tmp_path).eval()
    batch = make_batch([6], [18], seed=5)

    def run(seed, style=None):
        g = torch.Generator().manual_seed(seed)
        return model.infer(batch["phones"], batch["phone_lens"], style=batch["style"] if style is None else style,
                           temperature_duration=0.5, temperature_pitch=0.5, generator=g)

    a, b, c = run(1), run(1), run(2)
    torch.testing.assert_close(a["mel"], b["mel"])
    assert a["durations"].tolist() == b["durations"].tolist()
    assert not torch.equal(a["pitch"], c["pitch"])
    # conditioning: with trained (non-identity) FiLM, another style gives another output
    for p in model.parameters():
        torch.nn.init.normal_(p, 0, 0.3) if p.dim() > 1 else None
    o1 = model.infer(batch["phones"], batch["phone_lens"], style=batch["style"], durations=torch.tensor([[3] * 6]))
    o2 = model.infer(batch["phones"], batch["phone_lens"], style=-batch["style"], durations=torch.tensor([[3] * 6]))
    assert o1["mel"].shape == o2["mel"].shape and not torch.allclose(o1["mel"], o2["mel"])


def test_speaker_table_and_bad_inputs(tmp_path):
    model = tiny_model(tmp_path, style_type="speaker", speakers=["s1", "s2"])
    batch = make_batch([5], [12], seed=6)
    del batch["style"]
    out = model(batch)
    assert torch.isfinite(sum(out["losses"].values()))
    batch["speakers"] = ["nobody"]
    with pytest.raises(DataError, match="nobody"):
        model(batch)
    vec = tiny_model(tmp_path)
    b2 = make_batch([5], [12], seed=6, style_dim=5)
    with pytest.raises(DataError, match="size 6"):
        vec(b2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="phones.txt"):
        FastSpeechStyle.from_config({"hidden": 16}, TaskInfo(feat_dim=8, lang_dir=str(tmp_path / "empty")))


def test_phone_position_features_against_loop():
    d = torch.tensor([[3, 1, 2, 0], [2, 2, 0, 0]])
    feats = phone_position_features(d, alignment_from_durations(d, 8))
    assert feats.shape == (2, 8, 2)
    for b in range(2):
        t = 0
        for n in range(4):
            for k in range(int(d[b, n])):
                assert float(feats[b, t, 0]) == pytest.approx((k + 0.5) / int(d[b, n]) - 0.5)
                assert float(feats[b, t, 1]) == pytest.approx(math.log(int(d[b, n])))
                t += 1
        assert feats[b, t:].abs().sum() == 0          # frames past the utterance
    torch.testing.assert_close(phone_position_features(d)[:, :6], feats[:, :6])


def test_conv_postnet_against_loop_and_padding():
    torch.manual_seed(1)
    net = ConvPostnet(4, 6, 3, kernel_size=3, dropout=0.0).eval()
    assert all(float(p.detach().abs().sum()) == 0 for p in net.convs[-1].parameters())   # starts at zero
    for p in net.parameters():
        torch.nn.init.normal_(p, 0, 0.5)
    x = torch.randn(1, 7, 4)
    mask = torch.ones(1, 7, dtype=torch.bool)
    # reference: explicit convolution sums with zero padding
    y = x[0].T.clone()                                           # (C, T)
    for i, conv in enumerate(net.convs):
        w, bias = conv.weight.detach(), conv.bias.detach()
        out = torch.zeros(w.shape[0], y.shape[1])
        for t in range(y.shape[1]):
            for j in range(3):
                s = t + j - 1
                if 0 <= s < y.shape[1]:
                    out[:, t] += w[:, :, j] @ y[:, s]
            out[:, t] += bias
        y = torch.tanh(out) if i < len(net.convs) - 1 else out
    with torch.no_grad():
        torch.testing.assert_close(net(x, mask)[0], y.T, atol=1e-5, rtol=1e-5)
        padded = torch.cat([x, torch.full((1, 3, 4), 9.0)], 1)
        pm = torch.tensor([[True] * 7 + [False] * 3])
        o = net(padded, pm)
        torch.testing.assert_close(o[0, :7], y.T, atol=1e-5, rtol=1e-5)
        assert o[0, 7:].abs().sum() == 0


def test_decoder_residual_adds_the_aligned_prior_means(tmp_path):
    model = tiny_model(tmp_path, decoder_residual=True).eval()
    torch.nn.init.zeros_(model.mel_out.weight)
    torch.nn.init.zeros_(model.mel_out.bias)
    batch = make_batch([5], [13], seed=2)
    d = torch.tensor([[3, 2, 4, 1, 3]])
    with torch.no_grad():
        out = model.infer(batch["phones"], batch["phone_lens"], style=batch["style"], durations=d)
        pm = torch.ones(1, 5, dtype=torch.bool)
        mu = model.mu(model.encode(batch["phones"], pm, model.condition(batch)))[0]
    ref = torch.cat([mu[n].expand(int(d[0, n]), -1) for n in range(5)])          # repeat by hand
    m, s = model.norm["mel"]
    torch.testing.assert_close(out["mel"][0], ref * s + m, atol=1e-5, rtol=1e-5)


def test_fast_options_train_and_report_postnet_loss(tmp_path):
    model = tiny_model(tmp_path, **FAST_OPTIONS)
    batch = make_batch([6, 5], [18, 14], seed=4)
    first, loss, out = _train_60_steps(model, batch)
    assert set(out["losses"]) == {"mel", "prior", "duration", "pitch", "energy", "postnet"}
    assert float(loss.detach()) < 0.7 * first
    # the reported mel_l1 is the postnet output's, in raw log-mel units
    assert float(out["metrics"]["mel_l1"]) == pytest.approx(float(out["losses"]["postnet"].detach()) * model.norm["mel"][1])


def test_alignment_scores_stay_float32_under_bf16_autocast(tmp_path):
    model = tiny_model(tmp_path)
    g = torch.Generator().manual_seed(3)
    y = torch.randn(2, 30, 80, generator=g) * 3
    mu = (y[:, ::3] + 0.01 * torch.randn(2, 10, 80, generator=g)).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lp = model._log_likelihood(y, mu)
    assert lp.dtype == torch.float32
    ref = -0.5 * ((y[:, None, :, :].double() - mu.double()[:, :, None, :]) ** 2).sum(-1) - 40 * math.log(2 * math.pi)
    torch.testing.assert_close(lp.double(), ref, atol=1e-2, rtol=1e-5)


def test_random_segments_against_slicing_and_range_check():
    x = torch.randn(3, 10, 4)
    lens, starts = torch.tensor([10, 7, 5]), torch.tensor([2, 3, 0])
    seg = random_segments(x, lens, starts, 4)
    for b in range(3):
        torch.testing.assert_close(seg[b], x[b, int(starts[b]):int(starts[b]) + 4])
    with pytest.raises(ValueError, match="leave utterances"):
        random_segments(x, lens, torch.tensor([2, 4, 0]), 4)        # 4 + 4 > 7 valid frames


def test_mel_patch_discriminator_shapes_and_features():
    d = MelPatchDiscriminator(channels=(4, 8, 8))
    scores, feats = d(torch.randn(2, 16, 8))
    # strides (1, 2), (2, 2), (1, 2): time 16 -> 16 -> 8 -> 8, frequency 8 -> 4 -> 2 -> 1
    assert [tuple(f.shape) for f in feats] == [(2, 4, 16, 4), (2, 8, 8, 2), (2, 8, 8, 1), (2, 1, 8, 1)]
    assert tuple(scores.shape) == (2, 8)
    torch.testing.assert_close(scores, feats[-1].flatten(1))


ADVERSARIAL = dict(adversarial={"weight": 0.5, "fm_weight": 3.0, "segment_frames": 8, "channels": [4, 8, 8]})


def test_adversarial_phases_losses_and_parameters(tmp_path):
    model = tiny_model(tmp_path, **FAST_OPTIONS, **ADVERSARIAL)
    plain = tiny_model(tmp_path, **FAST_OPTIONS)
    assert model.train_phases == ("discriminator", "generator") and not hasattr(plain, "train_phases")
    gp, dp = model.phase_parameters("generator"), model.phase_parameters("discriminator")
    assert {id(p) for p in gp}.isdisjoint({id(p) for p in dp})
    assert len(gp) + len(dp) == len(list(model.parameters())) and len(dp) == len(list(model.discriminator.parameters()))
    batch = make_batch([6, 5], [18, 11], seed=4)
    torch.manual_seed(3)
    out_d = model(batch, phase="discriminator")
    cache = out_d["cache"]
    y = batch["feats"]                                   # mel_mean 0, mel_std 1: normalised = raw
    assert tuple(cache["y"].shape) == (2, 8, 8)          # min(segment_frames 8, shortest utterance 11)
    for b, n in enumerate([18, 11]):                     # every segment is a window of its own valid frames
        hits = [s for s in range(n - 8 + 1) if torch.equal(cache["y"][b], y[b, s:s + 8])]
        assert len(hits) == 1
    with torch.no_grad():
        real, _ = model.discriminator(cache["y"])
        fake, _ = model.discriminator(cache["fake"])
    ref_d = torch.mean((1 - real) ** 2) + torch.mean(fake ** 2)
    torch.testing.assert_close(out_d["losses"]["d_loss"], ref_d)
    out_d["losses"]["d_loss"].backward()
    assert all(p.grad is None for p in gp)               # the generated mel is detached for the discriminator
    assert all(p.grad is not None for p in dp)
    model.zero_grad(set_to_none=True)
    out_g = model(batch, phase="generator", cache=cache)
    assert set(out_g["losses"]) == {"mel", "prior", "duration", "pitch", "energy", "postnet", "adv", "fm"}
    with torch.no_grad():
        fake, fake_f = model.discriminator(cache["fake"])
        _, real_f = model.discriminator(cache["y"])
    torch.testing.assert_close(out_g["losses"]["adv"], 0.5 * torch.mean((1 - fake) ** 2))
    fm = sum(torch.mean(torch.abs(r - f)) for r, f in zip(real_f, fake_f))
    torch.testing.assert_close(out_g["losses"]["fm"], 3.0 * fm)
    # validation (phase None): the reconstruction losses of the one-phase model
    with torch.no_grad():
        val = model(batch)
    assert set(val["losses"]) == {"mel", "prior", "duration", "pitch", "energy", "postnet"}
    with pytest.raises(ValueError, match="needs model.adversarial"):
        plain(batch, phase="generator")
    with pytest.raises(ValueError, match="needs the discriminator phase's cache"):
        model(batch, phase="generator")
    with pytest.raises(ValueError, match="unknown adversarial keys"):
        tiny_model(tmp_path, adversarial={"weigth": 1.0})


def test_delta_loss_against_loop(tmp_path):
    from parastyle.models.tts import _delta_l1
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(2, 6, 4, generator=g), torch.randn(2, 6, 4, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    total, count = 0.0, 0
    for b in range(2):
        n = int(mask[b].sum())
        for t in range(n - 1):
            for k in range(4):
                total += abs(float(x[b, t + 1, k] - x[b, t, k]) - float(y[b, t + 1, k] - y[b, t, k]))
                count += 1
    assert float(_delta_l1(x, y, mask)) == pytest.approx(total / count, rel=1e-5)
    # the model adds it (weighted) only when loss_weights.delta > 0
    model = tiny_model(tmp_path, loss_weights={"delta": 0.5}, **FAST_OPTIONS)
    out = model(make_batch([6, 5], [18, 14], seed=4))
    assert "delta" in out["losses"] and float(out["losses"]["delta"]) > 0
    assert "delta" not in tiny_model(tmp_path, **FAST_OPTIONS)(make_batch([6, 5], [18, 14], seed=4))["losses"]


def test_frame_variance_losses_and_decoder_inputs_against_loop(tmp_path):
    model = tiny_model(tmp_path, frame_variance=["pitch", "energy"],
                       loss_weights={"frame_pitch": 2.0, "voicing": 0.5, "frame_energy": 3.0}, **FAST_OPTIONS)
    lens = [18, 11]
    batch = make_batch([6, 5], lens, seed=4, pad_t=20)
    seen = {}
    model.frame_predictor.register_forward_hook(lambda m, i, o: seen.__setitem__("pred", o.detach()))
    model.frame_embed.register_forward_hook(lambda m, i, o: seen.__setitem__("inp", i[0].detach()))
    out = model(batch)
    pm, ps = model.norm["pitch"]
    em, es = model.norm["energy"]
    pred = seen["pred"]
    sq_p, n_p, bce, sq_e, n_t = 0.0, 0, 0.0, 0.0, 0
    for b, n in enumerate(lens):
        for t in range(20):
            f0, en = float(batch["f0"][b, t]), float(batch["energy"][b, t])
            voiced = t < n and f0 > 0
            lf0 = (math.log(f0) - pm) / ps if voiced else 0.0
            le = (math.log(en + 1e-4) - em) / es if t < n else 0.0
            # teacher forcing: the decoder's frame input is the reference's (log-F0, voiced, log-energy)
            assert seen["inp"][b, :, t].tolist() == pytest.approx([lf0, float(voiced), le], abs=1e-5)
            if t >= n:
                continue
            p_hat, v_hat, e_hat = (float(x) for x in pred[b, t])
            if voiced:
                sq_p += (p_hat - lf0) ** 2
                n_p += 1
            prob = 1 / (1 + math.exp(-v_hat))
            bce -= math.log(prob) if voiced else math.log(1 - prob)
            sq_e += (e_hat - le) ** 2
            n_t += 1
    assert float(out["losses"]["frame_pitch"]) == pytest.approx(2.0 * sq_p / n_p, rel=1e-4)
    assert float(out["losses"]["voicing"]) == pytest.approx(0.5 * bce / n_t, rel=1e-4)
    assert float(out["losses"]["frame_energy"]) == pytest.approx(3.0 * sq_e / n_t, rel=1e-4)
    # inference: the predictions, log-F0 zeroed where the voicing logit is not positive
    model.eval()
    with torch.no_grad():
        inf = model.infer(batch["phones"], batch["phone_lens"], style=batch["style"])
    pred, inp = seen["pred"], seen["inp"]
    for b in range(2):
        for t in range(int(inf["mel_lens"][b])):
            p_hat, v_hat, e_hat = (float(x) for x in pred[b, t])
            want = [p_hat if v_hat > 0 else 0.0, 1.0 if v_hat > 0 else 0.0, e_hat]
            assert inp[b, :, t].tolist() == pytest.approx(want, abs=1e-6)
    # pitch alone: two channels; bad option values are refused
    assert tiny_model(tmp_path, frame_variance=["pitch"]).frame_embed.in_channels == 2
    for bad in (["pitch", "f0"], ["energy", "energy"]):
        with pytest.raises(ValueError, match="frame_variance takes pitch and / or energy"):
            tiny_model(tmp_path, frame_variance=bad)


def test_reference_encoder_against_loop_and_padding():
    from parastyle.nn.tts_blocks import ReferenceEncoder
    torch.manual_seed(0)
    enc = ReferenceEncoder(6, channels=5, layers=2, dim=3)
    x = torch.randn(2, 12, 6)
    lens = [12, 7]
    x[1, 7:] = 40.0                                    # padding garbage
    got = enc(x, sequence_mask(torch.tensor(lens), 12))
    for i, n in enumerate(lens):
        y = x[i, :n].T                                 # (C, T): the utterance alone, zero-padded convolutions
        for conv in enc.convs:
            y = torch.relu(torch.stack([sum(conv.weight[o, c, k] * F.pad(y[c], (1, 1))[k:k + n]
                                            for c in range(y.shape[0]) for k in range(3)) + conv.bias[o]
                                        for o in range(conv.out_channels)]))
        ref = torch.tanh(enc.out.weight @ y.mean(1) + enc.out.bias)
        torch.testing.assert_close(got[i], ref, atol=1e-5, rtol=1e-5)


def test_reference_latent_prior_loss_and_inference(tmp_path):
    model = tiny_model(tmp_path, **REF_OPTIONS).eval()
    batch = make_batch([6, 5], [18, 14], seed=2)
    out = model(batch)
    # the prior loss by hand: the latent of the (normalised, masked) target mel vs the prior of the style
    y = batch["feats"] * batch["mask"].unsqueeze(-1)
    z = model.ref_encoder(y, batch["mask"])
    prior = model.ref_prior(model.conditioner(batch["style"]))
    torch.testing.assert_close(out["losses"]["ref_prior"], ((prior - z) ** 2).mean())
    assert "ref_prior" not in tiny_model(tmp_path, **FAST_OPTIONS)(batch)["losses"]
    ph, pl, st = batch["phones"], batch["phone_lens"], batch["style"]
    with torch.no_grad():
        torch.nn.init.normal_(model.ref_proj.weight, 0, 1.0)
        no_ref = model.infer(ph, pl, style=st)
        with_ref = model.infer(ph, pl, style=st, reference=batch["feats"], reference_lens=batch["feat_lens"])
        half = model.infer(ph, pl, style=st, reference=batch["feats"], reference_lens=batch["feat_lens"],
                           reference_weight=0.5)
        z_ref = model.ref_encoder(batch["feats"] * batch["mask"].unsqueeze(-1), batch["mask"])
        z_prior = model.ref_prior(model.conditioner(st))
        # the prior stands in without a reference: the same as a reference whose latent is the prior's;
        # weight 0.5: the same as a reference whose latent is half-way from the prior's to its own
        model.ref_encoder.forward = lambda x, m: z_prior
        as_prior = model.infer(ph, pl, style=st, reference=batch["feats"], reference_lens=batch["feat_lens"])
        model.ref_encoder.forward = lambda x, m: z_prior + 0.5 * (z_ref - z_prior)
        as_half = model.infer(ph, pl, style=st, reference=batch["feats"], reference_lens=batch["feat_lens"])
    torch.testing.assert_close(no_ref["mel"], as_prior["mel"])
    torch.testing.assert_close(half["mel"], as_half["mel"])
    assert not torch.allclose(no_ref["mel"], with_ref["mel"]) and not torch.allclose(half["mel"], with_ref["mel"])
    assert tiny_model(tmp_path, reference_encoder={"dim": 4, "weight": 0.25}).reference_weight == 0.25
    with pytest.raises(ValueError, match="no reference_encoder"):
        tiny_model(tmp_path).infer(ph, pl, style=st, reference=batch["feats"])
    with pytest.raises(DataError, match="reference log-mel must be"):
        model.infer(ph, pl, style=st, reference=batch["feats"][..., :5])
    with pytest.raises(ValueError, match="unknown reference_encoder keys"):
        tiny_model(tmp_path, reference_encoder={"size": 3})
