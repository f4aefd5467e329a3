"""Training-step time of the recipe's acoustic model in float32 and under bfloat16 autocast on this CPU.

    tools/venv/bin/python bench/bench_train_precision.py [--threads 2] [--steps 30]
        [--tts_conf egs/synth/tts1/conf/train_tts.yaml]

Random batches shaped like the recipe's (``data.max_frames`` frames of 80-bin log-mel per batch in
utterances of 150-450 frames, 4 frames per phone, a new shape every step as in length-bucketed
training); both phases of the adversarial model (discriminator, generator) with their AdamW
optimizers. Median seconds per step after two warm-up steps. bfloat16 needs a CPU with native bf16
arithmetic (AVX-512 BF16 / AMX); whether it is faster depends on the CPU, which is what
``train.amp: auto`` measures at the start of a run. Printed, never asserted.
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


def random_batch(g: torch.Generator, max_frames: int, style_dim: int, num_phones: int):
    lens = []
    while True:
        t = int(torch.randint(150, 451, (1,), generator=g))
        if sum(lens) + t > max_frames and lens:
            break
        lens.append(t)
    b, tmax = len(lens), max(lens)
    plens = [t // 4 for t in lens]
    nmax = max(plens)
    phones = torch.zeros(b, nmax, dtype=torch.long)
    feats, f0, energy = torch.zeros(b, tmax, 80), torch.zeros(b, tmax), torch.zeros(b, tmax)
    for i, (t, n) in enumerate(zip(lens, plens)):
        phones[i, :n] = torch.randint(2, num_phones, (n,), generator=g)
        feats[i, :t] = -6.0 + 2.9 * torch.randn(t, 80, generator=g)
        f0[i, :t] = torch.where(torch.rand(t, generator=g) > 0.3, 100 + 150 * torch.rand(t, generator=g), 0.0)
        energy[i, :t] = 5 * torch.rand(t, generator=g)
    flens = torch.tensor(lens)
    return {"utt_ids": [f"u{i}" for i in range(b)], "phones": phones, "phone_lens": torch.tensor(plens),
            "feats": feats, "feat_lens": flens, "mask": torch.arange(tmax)[None] < flens[:, None],
            "f0": f0, "energy": energy, "style": torch.randn(b, style_dim, generator=g), "labels": {}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tts_conf", default=str(ROOT / "egs/synth/tts1/conf/train_tts.yaml"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--style_dim", type=int, default=256)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from bench_tts import recipe_acoustic_model        # bench/ is the script's directory
    from parastyle.train.trainer import cpu_has_bf16
    conf = yaml.safe_load(Path(args.tts_conf).read_text())
    max_frames = int(conf["data"]["max_frames"])
    print(f"{platform.processor() or platform.machine()}, {args.threads} thread(s), torch {torch.__version__}, "
          f"native bf16: {cpu_has_bf16()}; {args.steps} steps of {max_frames} frames")
    for name, dtype in (("float32", None), ("bfloat16", torch.bfloat16)):
        model = recipe_acoustic_model(args.tts_conf, num_phones=100, style_dim=args.style_dim).train()
        phases = getattr(model, "train_phases", (None,))
        opts = {ph: torch.optim.AdamW(model.phase_parameters(ph) if ph else model.parameters(), lr=1e-4)
                for ph in phases}
        g = torch.Generator().manual_seed(1)
        times = []
        for step in range(args.steps + 2):
            batch = random_batch(g, max_frames, args.style_dim, 100)
            t0 = time.perf_counter()
            cache = None
            for ph in phases:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
                    out = model(batch, phase=ph, cache=cache) if ph else model(batch)
                sum(out["losses"].values()).backward()
                opts[ph].step()
                model.zero_grad(set_to_none=True)
                cache = out.get("cache")
            if step >= 2:
                times.append(time.perf_counter() - t0)
        print(f"{name:9s} {statistics.median(times):.3f} s/step (median; min {min(times):.3f}, max {max(times):.3f})")


if __name__ == "__main__":
    main()
