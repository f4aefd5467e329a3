"""Benchmark the four ParaMETA backbones at the paper's sizes: parameters (both conventions), training
step time and utterances/s, inference real-time factor, next to the figures measured for the authors' code.

    tools/venv/bin/python bench/bench_backbones.py [--threads 2] [--backbones cnn,lstm,qformer,transformer]
        [--batch_size 32] [--frames 400] [--steps 5] [--device cpu|cuda] [--compile] [--ragged]

For each backbone the full ParaMETA model (``parastyle.models.parameta.ParaMETA``, default sizes:
backbone ending in the 768-d META embedding, 4 x 192-d subspace projections, prototypes, SupCon per
subspace, META regularisation and prototype alignment; ``use_text: false``, as the figures of the
authors' code below) is built for 80-bin log-mel input (22,050 Hz, hop 256: 400 frames = 4.64 s):

* parameters: **paper** convention = speech side + the text side's Linear(768, 768) of a 768-d sentence
  encoder (all-mpnet-base-v2, the paper's totals); **parastyle** = speech side + the text projections
  of the bundled 384-d all-MiniLM-L6-v2 (what a parastyle ParaMETA model trains); encoder alone;
* training step: forward + backward + Adam step on a batch of ``batch_size`` x ``frames`` x 80 with
  padding masks passed (all frames valid unless ``--ragged``: then lengths uniform in
  [frames/2, frames]); median over ``--steps`` steps after two warm-up steps; utt/s = batch / step;
* inference RTF: ``model.embed`` of one ``frames``-frame utterance, median wall time / audio duration.

``--versus_previous`` (for a loaded machine, where wall times of 2 threads mean little): each backbone
is timed against the network parastyle registered under its name before (``transformer_wide``,
``bilstm``, ``qformer_small``, ``cnn1d``; their step times were measured in the same interleaved run as
the authors' figures) in one process, steps interleaved, by the process CPU time per step; the
authors'-machine estimate of a step is that earlier figure x the measured ratio.

``--exp EXP --train_data DIR``: the pure model step rate at a recipe's batches, to set beside the
trainer's ``utts/s`` in ``EXP/train.log``: the exp's model (its saved config) takes ``--steps``
forward + backward + optimizer steps on training batches of that config, loaded beforehand (data
loading not timed; captions already in the frozen text encoder's cache, as from the second epoch on);
prints utt/s by wall time and the process CPU seconds per step.

The same code path runs whatever the mask holds (no all-valid shortcut). Figures are printed,
never asserted. ``--threads`` defaults to 2 (the machine of the reference figures has 2 cores).
Each backbone runs in its own process (allocator and thread-pool state never carry over).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

# Measured for the authors' released code (one process, interleaved with parastyle, 2 threads, batch
# 32 x 80 x 400 frames, forward + backward + Adam of the full ParaMETA model) on a 2-core x86-64 machine.
AUTHORS = {"transformer": {"step_s": 0.205, "rtf": 0.0015}, "lstm": {"step_s": 0.232, "rtf": 0.0051},
           "qformer": {"step_s": 0.856, "rtf": 0.0029}, "cnn": {"step_s": 3.42, "rtf": 0.0046}}
# parastyle's earlier networks under these names, measured in the same run as AUTHORS (step seconds)
PREVIOUS = {"transformer": ("transformer_wide", 1.412), "lstm": ("bilstm", 10.57), "qformer": ("qformer_small", 0.082),
            "cnn": ("cnn1d", 0.294)}
PAPER_M = {"transformer": 1.86, "lstm": 3.77, "cnn": 1.94, "qformer": 2.38}
FACTORS = {"emotion": [f"e{i}" for i in range(7)], "age": [f"a{i}" for i in range(5)],
           "gender": ["female", "male"], "language": ["chinese", "english"]}
HOP_S = 256 / 22050
MINILM_DIM = 384


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def build(name: str, device):
    from parastyle.models.parameta import ParaMETA

    return ParaMETA(feat_dim=80, factors=FACTORS, encoder={"name": name}, use_text=False).to(device)


def batch_of(B: int, T: int, device, seed: int = 0, ragged: bool = False):
    g = torch.Generator().manual_seed(seed)
    labels = {f: torch.randint(0, len(v), (B,), generator=g).to(device) for f, v in FACTORS.items()}
    lens = torch.randint(T // 2, T + 1, (B,), generator=g) if ragged else torch.full((B,), T)
    mask = torch.arange(T)[None] < lens[:, None]
    return {"feats": torch.randn(B, T, 80, generator=g).to(device), "mask": mask.to(device), "labels": labels}


def autocast(device, amp: str):
    """``--amp bf16``: the trainer's ``train.amp=bf16`` (autocast of matrix products to bfloat16)."""
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def train_step_time(model, device, batch_size: int, frames: int, steps: int, ragged: bool, amp: str = "none"):
    from parastyle.train.optim import build_optimizer

    model.train()
    opt = build_optimizer(model.parameters(), {"name": "adam", "lr": 1e-4})   # the trainer's: fused when it can
    batches = [batch_of(batch_size, frames, device, seed=s, ragged=ragged) for s in range(steps + 2)]

    def step(b):
        with autocast(device, amp):
            out = model(b)
        opt.zero_grad(set_to_none=True)
        sum(out["losses"].values()).backward()
        opt.step()

    for b in batches[:2]:                                       # warm-up
        step(b)
    _sync(device)
    times = []
    for b in batches[2:]:
        t0 = time.perf_counter()
        step(b)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@torch.no_grad()
def inference_rtf(model, device, frames: int, repeats: int):
    model.eval()
    batch = batch_of(1, frames, device)
    for _ in range(3):
        model.embed(batch)
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.embed(batch)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / (frames * HOP_S)


def versus_previous(name: str, args) -> str:
    """CPU seconds per training step of ``name`` and of its predecessor, interleaved in this process."""
    device = torch.device("cpu")
    prev, prev_ref = PREVIOUS[name]
    models = {}
    for n in (name, prev):
        torch.manual_seed(0)
        m = build(n, device).train()
        models[n] = (m, torch.optim.Adam(m.parameters(), lr=1e-4))
    batches = [batch_of(args.batch_size, args.frames, device, seed=s, ragged=args.ragged) for s in range(2)]
    times = {name: [], prev: []}
    for it in range(args.steps + 1):
        for n, (m, opt) in models.items():
            t0 = time.process_time()
            out = m(batches[it % 2])
            opt.zero_grad(set_to_none=True)
            sum(out["losses"].values()).backward()
            opt.step()
            if it:                                              # the first round warms up
                times[n].append(time.process_time() - t0)
    new, old = statistics.median(times[name]), statistics.median(times[prev])
    est = prev_ref * new / old
    ref = AUTHORS[name]["step_s"]
    return (f"| {name} | {prev} | {new:.3f} | {old:.3f} | {new / old:.3f} | {prev_ref} s | {est:.3f} s | "
            f"{ref} s | {ref / est:.2f}x |")


VERSUS_HEADER = ("| backbone | earlier network | CPU s/step | earlier CPU s/step | ratio | earlier step (reference run) "
                 "| estimated step | authors' step | estimated speed vs authors |\n|---|---|---|---|---|---|---|---|---|")


def exp_step_rate(args) -> None:
    from pathlib import Path

    from parastyle.models import build_model
    from parastyle.train.build import build_dataloader, build_task_info
    from parastyle.train.config import read_saved_config
    from parastyle.train.optim import build_optimizer

    exp = Path(args.exp)
    config = read_saved_config(exp / "config.yaml")
    task = build_task_info(config, args.train_data, args.lang_dir)
    torch.manual_seed(0)
    model = build_model(config["model"], task).train()
    opt = build_optimizer([p for p in model.parameters() if p.requires_grad], config["optim"])
    loader = build_dataloader(config, args.train_data, task=task, train=True, num_workers=0)
    batches = []
    for b in loader:
        batches.append(b)
        if len(batches) == args.steps + 2:
            break
    if getattr(model, "text_encoder", None) is not None:     # the frozen encoder's cache, warm as after epoch 1
        with torch.no_grad():
            for b in batches:
                if "captions" in b:
                    model.text_encoder(list(b["captions"]))
    amp = config["train"].get("amp") or "none"                 # as the trainer ran it (bf16: autocast)
    walls, cpus, n = [], [], 0
    for i, b in enumerate(batches):
        t0, c0 = time.perf_counter(), time.process_time()
        with autocast(torch.device("cpu"), "bf16" if amp == "bf16" else "none"):
            out = model(b)
        opt.zero_grad(set_to_none=True)
        sum(out["losses"].values()).backward()
        opt.step()
        if i >= 2:                                              # two warm-up steps (text-embedding cache)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            n += len(b["utt_ids"])
    print(f"{exp}: {len(walls)} steps, {n / len(walls):.1f} utterances per batch; pure model step: "
          f"{n / sum(walls):.1f} utt/s (wall), {statistics.mean(cpus):.3f} CPU s per step, "
          f"{torch.get_num_threads()} thread(s), amp {amp}")


def row(name: str, args) -> str:
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build(name, device)
    counts = model.parameter_counts(text_dim=768)
    parastyle_total = model.parameter_counts(text_dim=MINILM_DIM)["paper"]
    if args.compile:
        model.encoder = torch.compile(model.encoder, dynamic=False)
    rtf = inference_rtf(model, device, args.frames, args.repeats)   # float32 (--amp is training's)
    step = train_step_time(model, device, args.batch_size, args.frames, args.steps, args.ragged, args.amp)
    ref = AUTHORS.get(name)
    same_shape = args.batch_size == 32 and args.frames == 400 and device.type == "cpu" and not args.ragged
    speed = f"{ref['step_s'] / step:.2f}x" if ref and same_shape else "-"
    rtf_ratio = f"{rtf / ref['rtf']:.2f}" if ref and same_shape else "-"
    return (f"| {name} | {counts['paper'] / 1e6:.3f}M ({PAPER_M.get(name, float('nan')):.2f}M, "
            f"{100 * (counts['paper'] / 1e6 / PAPER_M[name] - 1):+.1f} %) | {parastyle_total / 1e6:.3f}M | "
            f"{counts['encoder'] / 1e6:.3f}M | {ref['step_s'] if ref else '-'} s | {step:.3f} s | "
            f"{args.batch_size / step:.1f} | {speed} | {ref['rtf'] if ref else '-'} | {rtf:.4f} | {rtf_ratio} |")


HEADER = ("| backbone | params, paper convention (paper, diff) | params, parastyle (384-d MiniLM) | encoder "
          "| authors' step | parastyle step | parastyle utt/s | speed vs authors | authors' RTF | parastyle RTF "
          "| RTF ratio |\n|---|---|---|---|---|---|---|---|---|---|---|")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--backbones", default="transformer,lstm,qformer,cnn")
    p.add_argument("--frames", type=int, default=400)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--steps", type=int, default=5, help="timed training steps (after 2 warm-up steps)")
    p.add_argument("--repeats", type=int, default=10, help="timed inference calls")
    p.add_argument("--compile", action="store_true", help="torch.compile the encoder (optional)")
    p.add_argument("--amp", choices=["none", "bf16"], default="none",
                   help="bf16: training steps autocast to bfloat16 as train.amp=bf16 (CPUs with native bf16, or a GPU); "
                        "inference stays float32")
    p.add_argument("--ragged", action="store_true", help="random lengths in [frames/2, frames] (padding in the batch)")
    p.add_argument("--versus_previous", action="store_true",
                   help="time each backbone against parastyle's earlier network of that name (CPU time, interleaved)")
    p.add_argument("--exp", default=None, help="time the model of this exp dir on its training batches")
    p.add_argument("--train_data", default=None, help="with --exp: the training data dir")
    p.add_argument("--lang_dir", default=None, help="with --exp: data/lang (default: beside --train_data)")
    p.add_argument("--row_only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.exp:
        if not args.train_data:
            p.error("--exp needs --train_data")
        if args.lang_dir is None:
            args.lang_dir = os.path.join(os.path.dirname(os.path.abspath(args.train_data)), "lang")
        exp_step_rate(args)
        return 0
    names = [n for n in args.backbones.split(",") if n]
    if not args.row_only:
        dev = torch.device(args.device)
        where = (torch.cuda.get_device_name(dev) if dev.type == "cuda"
                 else f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), "
                      f"{torch.get_num_threads()} torch thread(s)")
        try:
            load = " ".join(open("/proc/loadavg").read().split()[:3])
        except OSError:
            load = "?"
        print(f"device: {args.device} ({where}); torch {torch.__version__}; load average before: {load}")
        print(f"training: batch {args.batch_size} x {args.frames} frames x 80"
              f"{' (ragged lengths)' if args.ragged else ''}, forward + backward + Adam, median of {args.steps} steps; "
              f"inference: 1 x {args.frames} frames ({args.frames * HOP_S:.2f} s)"
              f"{'; encoder torch.compile-d' if args.compile else ''}"
              f"{'; autocast bfloat16 (train.amp=bf16)' if args.amp == 'bf16' else '; float32'}\n")
        if args.versus_previous:
            print(f"CPU time per step, {args.steps} interleaved steps each (after one warm-up round)\n")
        print(VERSUS_HEADER if args.versus_previous else HEADER, flush=True)
        script = os.path.abspath(__file__)
        base = list(sys.argv[1:] if argv is None else argv)
        for name in names:
            out = subprocess.run([sys.executable, script, *base, "--backbones", name, "--row_only"], check=True,
                                 capture_output=True, text=True).stdout
            print(out.strip(), flush=True)
        return 0
    for name in names:
        print(versus_previous(name, args) if args.versus_previous else row(name, args), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
