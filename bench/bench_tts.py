"""Synthesis speed on CPU: real-time factor of the acoustic model and of each vocoder, and of the two together.

    tools/venv/bin/python bench/bench_tts.py [--threads 2] [--seconds 3] [--repeats 5]
        [--tts_conf egs/synth/tts1/conf/train_tts.yaml | --tts_exp exp/tts] [--vocoder_exp exp/vocoder ...]

* acoustic model: ``fastspeech_style.infer`` of one utterance (the recipe's CPU size from ``--tts_conf``
  with random weights, or a trained ``--tts_exp``); the phone count gives ``--seconds`` of speech at
  ``--frames_per_phone`` frames per phone, passed as durations so that a random model yields a
  realistic length (a trained exp predicts its own durations unless ``--fixed_durations``);
* vocoders on the same mel length: Griffin-Lim (32 iterations, torchaudio), HiFi-GAN at the recipe's
  CPU size (``egs/synth/tts1/conf/train_vocoder.yaml``) and at the paper's V1 size (512 channels),
  random weights (speed does not depend on them), plus any trained ``--vocoder_exp``.

RTF = median wall time of ``--repeats`` runs after one warm-up / seconds of audio produced; RTF(cpu)
uses the process CPU time instead (with ``--threads 1`` the figure a loaded shared machine still
measures faithfully). Printed, never asserted. The issue's target: acoustic model + neural vocoder RTF <= 0.05 on 2 cores.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _median_time(fn, repeats: int):
    """``(median wall s, median process CPU s)``; on a shared machine the CPU time of a 1-thread run
    is the figure that does not depend on the other processes."""
    fn()
    ts, cs = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    return statistics.median(ts), statistics.median(cs)


def recipe_acoustic_model(tts_conf, num_phones: int, style_dim: int):
    """``fastspeech_style`` at the size of a recipe config's ``model`` section, random weights (seed 0)."""
    from parastyle.models.tts import FastSpeechStyle
    conf = yaml.safe_load(open(tts_conf, encoding="utf-8"))["model"]
    conf = {k: v for k, v in conf.items() if k not in ("name", "style")}
    torch.manual_seed(0)
    return FastSpeechStyle(num_phones=num_phones, style_type="vector", style_dim=style_dim, **conf)


def _acoustic(args, frames: int):
    """``(callable -> mel (1, T, 80), lengths, name)``."""
    if args.tts_exp:
        from parastyle.train.checkpoint import load_model_from_exp
        model, _, _ = load_model_from_exp(args.tts_exp)
        name = f"exp {args.tts_exp}"
    else:
        model = recipe_acoustic_model(args.tts_conf, num_phones=120, style_dim=768)
        name = f"fastspeech_style ({Path(args.tts_conf).name}, random weights)"
    model.eval()
    n = max(1, frames // args.frames_per_phone)
    phones = torch.randint(1, 100, (1, n))
    lens = torch.tensor([n])
    style = torch.randn(1, getattr(model, "style_dim", 768)) if getattr(model, "style_type", "vector") == "vector" else None
    spk = None if style is not None else [model.speakers[0]]
    dur = torch.full((1, n), args.frames_per_phone) if (not args.tts_exp or args.fixed_durations) else None

    def run():
        with torch.no_grad():
            return model.infer(phones, lens, style=style, speakers=spk, durations=dur)
    return run, name


def _vocoders(args):
    from parastyle.models.vocoder import HiFiGAN, NeuralVocoder, load_vocoder
    out = [("griffin_lim (32 iterations)", load_vocoder("griffin_lim"))]
    conf = yaml.safe_load(open(ROOT / "egs/synth/tts1/conf/train_vocoder.yaml", encoding="utf-8"))["model"]
    conf = {k: v for k, v in conf.items() if k != "name"}
    torch.manual_seed(0)
    out.append(("hifigan CPU size (train_vocoder.yaml)", NeuralVocoder(HiFiGAN(**conf), "hifigan-cpu")))
    if not args.skip_v1:
        out.append(("hifigan V1 (paper, 512 ch)", NeuralVocoder(HiFiGAN(), "hifigan-v1")))
    for exp in args.vocoder_exp:
        out.append((f"exp {exp}", load_vocoder(exp)))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--frames_per_phone", type=int, default=6)
    ap.add_argument("--tts_conf", default=str(ROOT / "egs/synth/tts1/conf/train_tts.yaml"))
    ap.add_argument("--tts_exp", default=None)
    ap.add_argument("--fixed_durations", action="store_true")
    ap.add_argument("--vocoder_exp", action="append", default=[])
    ap.add_argument("--skip_v1", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sr, hop = 22050, 256
    frames = int(round(args.seconds * sr / hop))
    print(f"# bench_tts: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} thread(s), {args.seconds:.1f} s utterance ({frames} frames), median of {args.repeats}")
    rows = []
    run_am, am_name = _acoustic(args, frames)
    out = run_am()
    t_frames = int(out["mel_lens"][0])
    audio_s = t_frames * hop / sr
    t_am = _median_time(run_am, args.repeats)
    rows.append((am_name, t_am, audio_s))
    mel = out["mel"][:, :t_frames]
    lens = torch.tensor([t_frames])
    for name, voc in _vocoders(args):
        t = _median_time(lambda: voc(mel, lens), args.repeats)
        rows.append((name, t, audio_s))
    print(f"{'component':48s} {'wall s':>8s} {'cpu s':>8s} {'audio s':>8s} {'RTF':>8s} {'RTF(cpu)':>8s}")
    for name, (t, c), a in rows:
        print(f"{name:48s} {t:8.3f} {c:8.3f} {a:8.2f} {t / a:8.4f} {c / a:8.4f}")
    for name, (t, c), a in rows[1:]:
        tt, cc = t_am[0] + t, t_am[1] + c
        print(f"{'acoustic + ' + name:48s} {tt:8.3f} {cc:8.3f} {a:8.2f} {tt / a:8.4f} {cc / a:8.4f}")


if __name__ == "__main__":
    main()
