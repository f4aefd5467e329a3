"""HiFi-GAN blocks, losses, phases, Griffin-Lim and the load_vocoder seam."""
from __future__ import annotations

import math
from dataclasses import asdict

import pytest
import torch
import yaml

from parastyle.features.frontend import build_frontend
from parastyle.fileio import DataError
from parastyle.models.task import TaskInfo
from parastyle.models.vocoder import (GriffinLimVocoder, HiFiGAN, batch_logmel, load_vocoder)
from parastyle.nn.hifigan import (HiFiGANGenerator, MultiPeriodDiscriminator, MultiScaleDiscriminator,
                                  discriminator_loss, feature_matching_loss, generator_adversarial_loss)
from parastyle.train.checkpoint import save_checkpoint
from parastyle.train.config import save_config

TINY_G = dict(upsample_initial_channel=16, resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]])
TINY = dict(generator=TINY_G, mpd_periods=[2, 3], mpd_channels=[4, 8, 8, 8, 8], msd_scales=2,
            msd_channels=[8, 8, 16, 16, 16, 16, 16])


def _task():
    return TaskInfo(feat_dim=80, sample_rate=22050, frame_shift_s=256 / 22050)


def test_generator_output_is_frames_times_hop_paper_config():
    torch.manual_seed(0)
    g = HiFiGANGenerator()                               # the paper's V1: 512 ch, 8,8,2,2 / 16,16,4,4, 3,7,11
    assert g.hop_length == 256
    assert [m.stride[0] for m in g.ups] == [8, 8, 2, 2] and [m.kernel_size[0] for m in g.ups] == [16, 16, 4, 4]
    assert g.conv_pre.out_channels == 512
    with torch.no_grad():
        for t in (1, 3):
            assert g(torch.randn(1, 80, t)).shape == (1, 1, t * 256)


@pytest.mark.parametrize("rates,kernels", [((8, 8, 2, 2), (16, 16, 4, 4)), ((8, 8, 4), (16, 16, 8))])
def test_generator_output_length_and_range(rates, kernels):
    torch.manual_seed(0)
    g = HiFiGANGenerator(upsample_initial_channel=16, upsample_rates=rates, upsample_kernel_sizes=kernels,
                         resblock_kernel_sizes=[3, 5], resblock_dilation_sizes=[[1, 3], [1, 3]])
    with torch.no_grad():
        y = g(torch.randn(2, 80, 7))
    assert y.shape == (2, 1, 7 * 256)
    assert float(y.abs().max()) <= 1.0


def test_generator_rejects_misaligned_kernels():
    with pytest.raises(ValueError, match="kernel - rate even"):
        HiFiGANGenerator(upsample_rates=(8, 8, 2, 2), upsample_kernel_sizes=(15, 16, 4, 4))


def test_padded_frames_do_not_change_outputs():
    torch.manual_seed(0)
    m = HiFiGAN(**TINY).eval()
    mel = torch.randn(3, 11, 80)
    lens = torch.tensor([11, 6, 1])
    with torch.no_grad():
        batch = m.generate(mel, lens)
        for b in range(3):
            n = int(lens[b])
            alone = m.generate(mel[b: b + 1, :n], lens[b: b + 1])
            torch.testing.assert_close(batch[b, : n * 256], alone[0], atol=1e-6, rtol=0)
            assert float(batch[b, n * 256:].abs().sum()) == 0.0
        # garbage in the padded frames changes nothing
        mel2 = mel.clone()
        mel2[1, 6:] = 100.0
        torch.testing.assert_close(m.generate(mel2, lens), batch, atol=1e-6, rtol=0)


def _lsgan_reference(real, fake):
    d = 0.0
    for r, f in zip(real, fake):
        d += sum((1 - x) ** 2 for x in r.flatten().tolist()) / r.numel()
        d += sum(x ** 2 for x in f.flatten().tolist()) / f.numel()
    g = sum(sum((1 - x) ** 2 for x in f.flatten().tolist()) / f.numel() for f in fake)
    return d, g


def test_losses_against_loops():
    torch.manual_seed(1)
    real = [torch.randn(2, 5), torch.randn(2, 3)]
    fake = [torch.randn(2, 5), torch.randn(2, 3)]
    d_ref, g_ref = _lsgan_reference(real, fake)
    assert math.isclose(float(discriminator_loss(real, fake)), d_ref, rel_tol=1e-5)
    assert math.isclose(float(generator_adversarial_loss(fake)), g_ref, rel_tol=1e-5)
    fr = [[torch.randn(2, 3, 4), torch.randn(2, 1, 4)], [torch.randn(2, 6)]]
    fg = [[torch.randn(2, 3, 4), torch.randn(2, 1, 4)], [torch.randn(2, 6)]]
    ref = 0.0
    for dr, dg in zip(fr, fg):
        for a, b in zip(dr, dg):
            ref += sum(abs(x - y) for x, y in zip(a.flatten().tolist(), b.flatten().tolist())) / a.numel()
    assert math.isclose(float(feature_matching_loss(fr, fg)), ref, rel_tol=1e-5)


def test_discriminators_paper_plans():
    mpd = MultiPeriodDiscriminator()
    assert [d.period for d in mpd.discriminators] == [2, 3, 5, 7, 11]
    assert [c.out_channels for c in mpd.discriminators[0].convs] == [32, 128, 512, 1024, 1024]
    msd = MultiScaleDiscriminator(channels=(16, 16, 32, 32, 64, 64, 64))
    y = torch.randn(2, 1, 1000)
    scores, fmaps = msd(y)
    assert len(scores) == 3 and all(s.shape[0] == 2 for s in scores)
    assert len(fmaps[0]) == 8                        # 7 convs + post
    scores, fmaps = MultiPeriodDiscriminator(channels=(4, 4, 4, 4, 4))(torch.randn(2, 1, 1001))
    assert len(scores) == 5 and len(fmaps[4]) == 6


def test_batch_logmel_equals_frontend():
    fe = build_frontend({"type": "logmel"})
    wav = torch.randn(2, 3000) * 0.1
    out = batch_logmel(fe, wav)
    for b in range(2):
        torch.testing.assert_close(out[b], fe(wav[b]))


def _batch(m, b=2, t=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"utt_ids": [f"u{i}" for i in range(b)], "mel": torch.randn(b, t, 80, generator=g),
            "mel_lens": torch.full((b,), t), "wav": torch.randn(b, t * 256, generator=g) * 0.1}


def test_phases_losses_parameters_and_cache():
    torch.manual_seed(0)
    m = HiFiGAN(**TINY)
    assert m.train_phases == ("discriminator", "generator")
    gp, dp = m.phase_parameters("generator"), m.phase_parameters("discriminator")
    assert {id(p) for p in gp}.isdisjoint({id(p) for p in dp})
    assert len(gp) + len(dp) == len(list(m.parameters()))
    batch = _batch(m)
    out = m(batch, phase="discriminator")
    assert set(out["losses"]) == {"d_loss"}
    out["losses"]["d_loss"].backward()
    assert all(p.grad is None for p in gp)             # the generated wav is detached for D
    assert any(p.grad is not None for p in dp)
    m.zero_grad(set_to_none=True)
    out_g = m(batch, phase="generator", cache=out["cache"])
    assert set(out_g["losses"]) == {"g_adv", "g_fm", "g_mel"}
    sum(out_g["losses"].values()).backward()
    assert all(p.grad is not None for p in gp)
    # the mel term is 45 x the mean absolute log-mel difference of real and generated audio (the 8 input frames)
    fe = m.frontend
    with torch.no_grad():
        wav_hat = out["cache"]["wav_hat"]
        ref = sum(float((fe(batch["wav"][b])[:8] - fe(wav_hat[b])[:8]).abs().mean()) for b in range(2)) / 2
    assert math.isclose(float(out_g["losses"]["g_mel"].detach()), 45.0 * ref, rel_tol=1e-4)
    with pytest.raises(ValueError, match="unknown phase"):
        m(batch, phase="critic")


def test_validation_mel_l1_on_valid_frames():
    torch.manual_seed(0)
    m = HiFiGAN(**TINY).eval()
    batch = _batch(m, t=9)
    batch["mel_lens"] = torch.tensor([9, 5])
    batch["wav"][1, 5 * 256:] = 0.0
    with torch.no_grad():
        out = m(batch)
        wav_hat = m.generate(batch["mel"], batch["mel_lens"])
        fe = m.frontend
        tot, n = 0.0, 0
        for b, t in enumerate([9, 5]):
            a, h = batch_logmel(fe, batch["wav"][b:b + 1])[0], batch_logmel(fe, wav_hat[b:b + 1])[0]
            tot += float((a[:t] - h[:t]).abs().sum())
            n += t * 80
    assert math.isclose(float(out["metrics"]["mel_l1"]), tot / n, rel_tol=1e-5)


def test_from_config_checks_the_front_end():
    m = HiFiGAN.from_config(dict(TINY), _task())
    assert m.sample_rate == 22050 and m.hop_length == 256
    with pytest.raises(DataError, match="front-end"):
        HiFiGAN.from_config(dict(TINY), TaskInfo(feat_dim=80, sample_rate=16000, frame_shift_s=0.016))
    with pytest.raises(ValueError, match="hop"):
        HiFiGAN(frontend={"type": "logmel", "hop_length": 200}, generator=TINY_G)


def test_griffin_lim_length_padding_and_reconstruction():
    fe = build_frontend({"type": "logmel"})
    t = torch.arange(22050) / 22050.0
    wav = 0.3 * torch.sin(2 * math.pi * 220 * t) + 0.2 * torch.sin(2 * math.pi * 660 * t)
    mel = fe(wav)
    voc = load_vocoder("griffin_lim")
    assert voc.sample_rate == 22050 and voc.hop_length == 256
    n = mel.shape[0]
    batch = torch.stack([mel, torch.cat([mel[:40], torch.zeros(n - 40, 80)])])
    out = voc(batch, torch.tensor([n, 40]))
    assert out.shape == (2, n * 256)
    assert float(out.abs().max()) <= 1.0
    assert float(out[1, 40 * 256:].abs().max()) == 0.0
    rec = fe(out[0])[:n]
    noise = fe(torch.randn_like(wav) * 0.1)[:n]
    assert float((rec - mel).abs().mean()) < 0.5 * float((noise - mel).abs().mean())
    # the inverse filterbank is the least-squares inverse of the front-end's own filterbank
    fb = fe.mel.mel_scale.fb
    spec = torch.rand(fb.shape[0], 5)
    lin = voc.linear_spectrogram(torch.log(fb.T @ spec).T)
    torch.testing.assert_close(fb.T @ lin, fb.T @ spec, atol=5e-3, rtol=1e-2)   # a few clamped bins


def _fake_exp(tmp_path, model_conf, name="voc"):
    exp = tmp_path / name
    exp.mkdir()
    save_config(exp / "config.yaml", {"model": model_conf, "data": {"feats": False}}, {"train_data": "x"})
    with open(exp / "task.yaml", "w") as f:
        yaml.safe_dump(asdict(_task()), f)
    return exp


def test_load_vocoder_exp_and_refusals(tmp_path):
    torch.manual_seed(0)
    conf = {"name": "hifigan", **TINY}
    exp = _fake_exp(tmp_path, conf)
    m = HiFiGAN(**TINY)
    save_checkpoint(exp / "model.pt", {"model": m.state_dict()})
    voc = load_vocoder(str(exp))
    mel = torch.randn(1, 4, 80)
    with torch.no_grad():
        torch.testing.assert_close(voc(mel, torch.tensor([4])), m.eval().generate(mel).clamp(-1, 1))
    with pytest.raises(DataError, match="another front-end"):
        load_vocoder(str(exp), frontend={"type": "logmel", "f_max": 8000.0})
    other = _fake_exp(tmp_path, {"name": "multitask_ce"}, "judge")
    with pytest.raises(DataError, match="not a vocoder"):
        load_vocoder(str(other))
    with pytest.raises(DataError, match="neither 'griffin_lim' nor an exp dir"):
        load_vocoder(str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match=r"\(B, T, 80\)"):
        voc(torch.randn(1, 4, 40))


def _train_config():
    from parastyle.train.config import load_config
    conf = load_config(None)
    conf["model"] = {"name": "hifigan", **TINY}
    conf["data"].update({"dataset": "vocoder", "feats": False, "frontend": {"type": "logmel"}, "factors": [],
                         "max_frames_per_utt": 8, "max_frames": None, "batch_size": 2, "valid_max_frames": 400})
    adam = {"name": "adamw", "lr": 2.0e-4, "betas": [0.8, 0.99], "eps": 1.0e-9, "weight_decay": 0.0}
    conf["optim"] = {"generator": dict(adam), "discriminator": dict(adam)}
    conf["scheduler"] = {"name": "constant", "warmup_steps": 0, "min_lr_ratio": 0.0}
    conf["train"].update({"max_steps": 4, "valid_interval": 2, "ckpt_interval": 1, "log_interval": 1,
                          "device": "cpu", "progress": False, "grad_clip": None, "keep_last": 5})
    conf["valid"] = {"metric": "mel_l1", "mode": "min", "patience": None}
    return conf


def test_trains_with_phases_resumes_exactly_and_loads(tmp_path, make_data_dir_fixture):
    from parastyle.train.trainer import Trainer
    d = make_data_dir_fixture(sample_rate=22050, num_spk=2, utts_per_spk=2, lang_dir=tmp_path / "lang")
    lang = tmp_path / "lang"
    full = Trainer(_train_config(), d, d, lang, tmp_path / "full")
    assert full.run() == "done"
    part = Trainer(_train_config(), d, d, lang, tmp_path / "part")
    assert part.run(stop_after_steps=3) == "stopped"
    resumed = Trainer(_train_config(), d, d, lang, tmp_path / "part")
    assert resumed.run() == "done"
    from parastyle.train.checkpoint import checkpoint_name, load_checkpoint
    a = load_checkpoint(tmp_path / "full" / "checkpoints" / checkpoint_name(4))["model"]
    b = load_checkpoint(tmp_path / "part" / "checkpoints" / checkpoint_name(4))["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    voc = load_vocoder(str(tmp_path / "full"))
    out = voc(torch.randn(2, 5, 80), torch.tensor([5, 3]))
    assert out.shape == (2, 5 * 256) and float(out[1, 3 * 256:].abs().sum()) == 0.0
