"""The generic trainer: every model of the toolkit is trained here.

Model interface: ``out = model(batch)`` returns ``{"losses": {name: scalar tensor},
"metrics": {name: number}}``; the trainer sums the losses, back-propagates, logs every term and
metric, validates, checkpoints and resumes. Optional hook: ``model.on_step(step, total_steps)``
is called before each optimizer step (``step`` = updates already made).

Multi-optimizer models (the GAN vocoder, the acoustic model with ``model.adversarial``) declare the phases of one
training step and their disjoint parameter sets::

    train_phases = ("discriminator", "generator")     # update order inside one step
    def phase_parameters(self, phase) -> list of nn.Parameter
    def forward(self, batch, phase=None, cache=None) -> {"losses", "metrics", "cache" (optional)}

``optim`` is then a mapping phase -> optimizer conf and ``scheduler`` one conf (for each phase)
or a mapping phase -> conf. One step runs, for each phase in order: ``out = model(batch,
phase=p, cache=<previous phase's out["cache"]>)``, backward of the sum of ``out["losses"]``,
clipping (``train.grad_clip``) of that phase's parameters, a step of that phase's optimizer
only, then every gradient is zeroed; each phase's scheduler steps once per step. Validation
calls ``model(batch)`` (phase None) in eval mode. ``train.accum_grad`` must be 1. Checkpoints
hold every phase's optimizer and scheduler; resume is exact.

Exp dir layout::

    config.yaml       resolved config + ``_run`` (git commit, versions, device, data paths)
    task.yaml         TaskInfo (feature dim, factor vocabularies, ...)
    checkpoints/      step<N>.pt (+ .sha256): full training state, weights_only-loadable
    tensorboard/      scalars: train/<loss term>, train/loss, train/lr, train/utts_per_s, valid/<name>
    train.log         log
    identity.yaml     what the exp was trained on (:mod:`parastyle.train.identity`)
    .lock             flock-ed while a trainer runs: a second trainer on the exp is refused
    model.pt          average of the best ``train.average_best`` checkpoints (by ``valid.metric``) at
                      steps >= ``train.average_min_step``
    done              written last; rerunning a finished exp does nothing (after checking that the
                      data and config are the ones it was trained with)
"""
from __future__ import annotations

import logging
import math
import random
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
import yaml

from parastyle.data.collate import move_batch
from parastyle.fileio import DataError, DirLock, LockedError, atomic_write, remove_orphan_tmp
from parastyle.models import build_model
from parastyle.train import checkpoint as ckpt
from parastyle.train.build import build_dataloader, build_task_info
from parastyle.train.config import (ConfigError, config_differences, config_hash, environment_info, is_phased,
                                    save_config)
from parastyle.train.distributed import (DistInfo, all_reduce_sum, barrier, broadcast_object, default_num_threads,
                                         init_distributed)
from parastyle.train.identity import IDENTITY_FILE, check_exp_identity, exp_identity, write_identity
from parastyle.train.optim import build_optimizer, build_scheduler, warmup_steps_of

logger = logging.getLogger("parastyle.train")


class TrainingError(RuntimeError):
    """Training cannot continue (non-finite loss, bad validation metric name, ...)."""


def check_data_dir(path, use_feats: bool, lang_dir=None) -> None:
    """Refuse a data dir that fails ``parastyle.data.datadir.validate_data_dir`` (labels checked against ``lang_dir``)."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: data dir not found")
    try:
        from parastyle.data.datadir import validate_data_dir
    except ImportError:
        validate_data_dir = None
    if validate_data_dir is None:
        if not (path / "utt2spk").is_file():
            raise DataError(f"{path}: not a valid data dir: utt2spk missing")
        return
    problems = validate_data_dir(str(path), no_feats=not use_feats, no_wav=use_feats, no_text=True,
                                 lang_dir=str(lang_dir) if lang_dir is not None else None)
    if problems:
        listing = "\n  ".join(problems[:20]) + (f"\n  ... ({len(problems) - 20} more)" if len(problems) > 20 else "")
        raise DataError(f"{path}: data dir failed validation ({len(problems)} problem(s)); fix it "
                        f"(utils/fix_data_dir.sh, utils/validate_data_dir.sh) before training:\n  {listing}")


AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
AMP_NAMES = {v: k for k, v in AMP_DTYPES.items()}


def cpu_has_bf16() -> bool:
    """True when this CPU does bfloat16 arithmetic natively (AVX-512 BF16 or AMX), so that
    ``train.amp=bf16`` autocasts matrix products to bfloat16 on the CPU too (faster there for
    recurrent layers; see bench/bench_backbones.py)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _resolve_device(config: Dict[str, Any], info: DistInfo) -> torch.device:
    want = config["train"].get("device", "auto")
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError("train.device is cuda but no GPU is available")
        return torch.device("cuda", info.local_rank)
    return torch.device(want)


def _accumulate(acc: Dict[str, List[float]], name: str, value: float) -> None:
    """Add ``value`` to the running ``[sum, count]`` of ``name``: each logged term is the mean over the
    batches that produced it (a task-sampled model logs ``loss_<task>`` only on that task's batches)."""
    entry = acc.setdefault(name, [0.0, 0])
    entry[0] += value
    entry[1] += 1


def _scalar(v) -> float:
    return float(v.detach().float().item()) if torch.is_tensor(v) else float(v)


def nonfinite_inputs(batch: Dict[str, Any]) -> Dict[str, List[str]]:
    """``{batch key: [utterance ids]}`` of the utterances whose floating-point inputs hold NaN/inf.

    Every floating tensor of the batch whose first dimension is the batch size is checked row by row.
    """
    utts = list(batch.get("utt_ids") or [])
    out: Dict[str, List[str]] = {}
    for key, v in batch.items():
        if not torch.is_tensor(v) or not v.is_floating_point() or v.dim() == 0 or v.shape[0] != len(utts):
            continue
        bad = ~torch.isfinite(v.detach().reshape(v.shape[0], -1)).all(dim=1)
        if bool(bad.any()):
            out[key] = [utts[i] for i in torch.nonzero(bad).flatten().tolist()]
    return out


class Trainer:
    """Train ``config["model"]`` on ``train_data``, validating on ``valid_data``, into ``exp_dir``.

    Args:
        config: resolved config (see :mod:`parastyle.train.config`).
        train_data, valid_data: Kaldi data dirs (valid may be None: no validation, no early stop).
        lang_dir: directory with ``<factor>.txt`` label vocabularies.
        exp_dir: output directory; an existing one with checkpoints is resumed.
    """

    def __init__(self, config: Dict[str, Any], train_data, valid_data, lang_dir, exp_dir,
                 dist_info: Optional[DistInfo] = None):
        self.config = config
        self.tc = config["train"]
        self.train_data, self.lang_dir = Path(train_data), Path(lang_dir)
        self.valid_data = Path(valid_data) if valid_data else None
        self.exp_dir = Path(exp_dir)
        self.ckpt_dir = self.exp_dir / "checkpoints"
        self.history: List[tuple] = []          # (step, total training loss of the step)
        self.valid_history: List[tuple] = []    # (step, {name: value})
        self._log_handler = None
        self._tb = None
        pre_device = config["train"].get("device", "auto")
        dev_type = "cuda" if (pre_device == "cuda" or (pre_device == "auto" and torch.cuda.is_available())) else "cpu"
        self.dist = dist_info or init_distributed(dev_type)
        self.device = _resolve_device(config, self.dist)

    # ------------------------------------------------------------------ setup
    def _setup_logging(self) -> None:
        if self.dist.is_main:
            self.exp_dir.mkdir(parents=True, exist_ok=True)
            h = logging.FileHandler(self.exp_dir / "train.log")
            h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logging.getLogger("parastyle").addHandler(h)
            if logging.getLogger("parastyle").level == logging.NOTSET:
                logging.getLogger("parastyle").setLevel(logging.INFO)
            self._log_handler = h

    def _teardown(self) -> None:
        if self._log_handler is not None:
            logging.getLogger("parastyle").removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if getattr(self, "_saved_threads", None):
            torch.set_num_threads(self._saved_threads)
            self._saved_threads = None

    def _setup(self) -> None:
        config, tc = self.config, self.tc
        use_feats = bool(config["data"]["feats"])
        check_data_dir(self.train_data, use_feats, self.lang_dir)
        if self.valid_data is not None:
            check_data_dir(self.valid_data, use_feats, self.lang_dir)
        self._set_threads()
        self.task = build_task_info(config, self.train_data, self.lang_dir)

        amp = tc.get("amp") or "none"
        self.amp_auto = False
        if amp == "auto":
            if self.device.type == "cuda":
                amp = "bf16" if torch.cuda.is_bf16_supported() else "none"
            elif cpu_has_bf16():
                # float32 until measured: _choose_amp times both on the first batch (or resume restores the choice)
                amp, self.amp_auto = "none", True
            else:
                amp = "none"
                logger.info("train.amp=auto: float32 (this CPU has no native bfloat16 arithmetic)")
        elif amp != "none" and self.device.type != "cuda" and not (amp == "bf16" and cpu_has_bf16()):
            warnings.warn(f"train.amp={amp} needs a GPU (bf16: or a CPU with native bfloat16 arithmetic); "
                          f"training in float32 on {self.device}")
            logger.warning("train.amp=%s disabled on %s", amp, self.device)
            amp = "none"
        self.amp_dtype = AMP_DTYPES[amp]

        seed = int(tc["seed"])
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        model = build_model(config["model"], self.task).to(self.device)
        self.model = model
        self.phases = self._model_phases(model)
        if self.dist.enabled and self.phases is None:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        elif self.dist.enabled:
            # Phased models are not wrapped in DDP: a phase's backward may run through the previous
            # phase's cache (e.g. the generated waveform), which DDP's per-forward reduction cannot
            # follow. Rank 0's weights are broadcast once and each phase's gradients are averaged over
            # ranks explicitly (_allreduce_grads) before clipping and the optimizer step.
            for t in model.state_dict().values():
                torch.distributed.broadcast(t, src=0)
            self.ddp = model
        else:
            self.ddp = model
        # training randomness (dropout, ...) differs per rank, reproducibly
        random.seed(seed + 1 + self.dist.rank)
        np.random.seed(seed + 1 + self.dist.rank)
        torch.manual_seed(seed + 1 + self.dist.rank)

        self.train_loader = build_dataloader(config, self.train_data, task=self.task, train=True,
                                             rank=self.dist.rank, world_size=self.dist.world_size)
        self.valid_loader = (build_dataloader(config, self.valid_data, task=self.task, train=False,
                                              rank=self.dist.rank, world_size=self.dist.world_size)
                             if self.valid_data is not None else None)
        sampler = self.train_loader.batch_sampler
        if sampler.num_batches() == 0:
            raise DataError(f"{self.train_data}: no training batch (too few utterances for "
                            f"{self.dist.world_size} process(es)?)")
        self.accum = int(tc["accum_grad"])
        if tc.get("max_steps") is not None:
            self.total_steps = int(tc["max_steps"])
        else:
            self.total_steps = int(math.ceil(float(tc["max_epochs"]) * sampler.num_batches() / self.accum))
        self._build_optimizers()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

        self.step = 0
        self.epoch = 0
        self.position = 0
        self.best: List[List[float]] = []    # [[value, step]] best first, at most average_best, step >= min_step
        self.validations: List[List[float]] = []   # [[value, step]] of every validation, in order
        self.best_value: Optional[float] = None
        self.bad_validations = 0
        self.saved_steps: List[int] = []
        self.average_min_step = self._average_min_step()
        self.config_hash = config_hash(config)

        resumed = self._resume()
        self.init_report = None if resumed else self._init_from()
        if self.dist.is_main:
            run = environment_info(str(self.device))
            run.update({"train_data": str(self.train_data.resolve()), "lang_dir": str(self.lang_dir.resolve()),
                        "valid_data": str(self.valid_data.resolve()) if self.valid_data else None,
                        "world_size": self.dist.world_size, "total_steps": self.total_steps,
                        **self.threads_info, "average_min_step": self.average_min_step})
            if self.init_report is not None:
                run["init_from"] = self.init_report
            save_config(self.exp_dir / "config.yaml", config, run)
            with atomic_write(self.exp_dir / "task.yaml") as f:
                yaml.safe_dump(asdict(self.task), f, sort_keys=False)
            write_identity(self.exp_dir, self._current_identity())
        barrier(self.dist)

    # ------------------------------------------------------------------ threads
    def _set_threads(self) -> None:
        """Set torch's CPU threads from ``train.num_threads`` (default: see :func:`default_num_threads`)."""
        self._saved_threads = torch.get_num_threads()
        want = self.tc.get("num_threads")
        if want is None:
            n, source = default_num_threads(self.dist)
        else:
            if isinstance(want, bool) or not isinstance(want, int) or want < 1:
                raise ConfigError(f"train.num_threads must be null or an integer >= 1, got {want!r}")
            n, source = int(want), "train.num_threads"
        torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:  # only allowed before the first inter-op parallel work of the process
            pass
        workers = int(self.config["data"].get("num_workers") or 0)
        self.threads_info = {"num_threads": torch.get_num_threads(), "num_threads_from": source,
                             "num_interop_threads": torch.get_num_interop_threads(), "num_workers": workers}
        logger.info("device %s, %d intra-op thread(s) (%s), %d inter-op, %d data-loader worker(s)", self.device,
                    self.threads_info["num_threads"], source, self.threads_info["num_interop_threads"], workers)

    # ------------------------------------------------------------------ init_from
    def _init_from(self) -> Optional[Dict[str, Any]]:
        src = self.tc.get("init_from")
        if not src:
            return None
        report = ckpt.init_model_from(self.model, src, self.tc.get("init_keys"), self.tc.get("init_exclude"))
        logger.info("initialised from %s: %d tensor(s) loaded, %d skipped by init_keys/init_exclude, %d not in "
                    "this model, %d shape-mismatched %s, %d of the model's left as initialised",
                    report["path"], len(report["loaded"]), len(report["filtered"]), len(report["unexpected"]),
                    len(report["shape_mismatch"]), report["shape_mismatch"][:10], len(report["not_initialised"]))
        if report["not_initialised"]:
            logger.info("not initialised from %s: %s", report["path"], report["not_initialised"][:20])
        return {"path": report["path"], "sha256": report["sha256"], "loaded": len(report["loaded"]),
                "shape_mismatch": report["shape_mismatch"], "not_initialised": len(report["not_initialised"])}

    def _average_min_step(self) -> int:
        v = self.tc.get("average_min_step")
        if v is not None:
            return int(v)
        confs = (list(self.config["scheduler"].values()) if is_phased(self.config["scheduler"], "scheduler")
                 else [self.config["scheduler"]])
        return max(warmup_steps_of(c, self.total_steps) for c in confs)

    # ------------------------------------------------------------------ optimizers (one, or one per phase)
    def _model_phases(self, model) -> Optional[tuple]:
        """The model's ``train_phases`` (checked), or None for a single-optimizer model."""
        phases = getattr(model, "train_phases", None)
        name = self.config["model"]["name"]
        if phases is None:
            if is_phased(self.config["optim"], "optim"):
                raise ConfigError(f"optim is a mapping phase -> conf ({', '.join(self.config['optim'])}) but model "
                                  f"{name!r} has no train_phases: give one optimizer conf")
            if is_phased(self.config["scheduler"], "scheduler"):
                raise ConfigError(f"scheduler is a mapping phase -> conf but model {name!r} has no train_phases: "
                                  f"give one scheduler conf")
            return None
        phases = tuple(phases)
        if not phases or len(set(phases)) != len(phases) or not all(isinstance(p, str) and p for p in phases):
            raise TrainingError(f"model {name!r}: train_phases must be distinct non-empty names, got {phases!r}")
        if not hasattr(model, "phase_parameters"):
            raise TrainingError(f"model {name!r} declares train_phases {phases} but no phase_parameters(phase)")
        if int(self.tc["accum_grad"]) != 1:
            raise ConfigError(f"train.accum_grad is {self.tc['accum_grad']} but model {name!r} trains in phases "
                              f"{phases}: gradient accumulation is not supported with several optimizers; "
                              f"set train.accum_grad: 1 (raise data.max_frames / data.batch_size instead)")
        for sec in ("optim", "scheduler"):
            conf = self.config[sec]
            if not is_phased(conf, sec):
                if sec == "optim":
                    raise ConfigError(f"model {name!r} trains in phases {phases}: optim must be a mapping phase -> "
                                      f"optimizer conf, e.g. optim: {{{phases[0]}: {{name: adamw, lr: 2.0e-4}}, ...}}")
                continue
            missing, extra = [p for p in phases if p not in conf], [p for p in conf if p not in phases]
            if missing or extra:
                raise ConfigError(f"{sec} phases {sorted(conf)} do not match model {name!r} train_phases "
                                  f"{list(phases)} (missing: {missing}, unknown: {extra})")
        return phases

    def _phase_params(self) -> Dict[str, List[torch.nn.Parameter]]:
        """Trainable parameters of each phase, checked to be disjoint and to cover the model."""
        name = self.config["model"]["name"]
        names = {id(p): n for n, p in self.model.named_parameters()}
        owner: Dict[int, str] = {}
        out: Dict[str, List[torch.nn.Parameter]] = {}
        for phase in self.phases:
            params = [p for p in self.model.phase_parameters(phase) if p.requires_grad]
            if not params:
                raise TrainingError(f"model {name!r}: phase {phase!r} has no trainable parameter")
            for p in params:
                if id(p) not in names:
                    raise TrainingError(f"model {name!r}: phase_parameters({phase!r}) returned a parameter that is "
                                        f"not one of the model's")
                if id(p) in owner and owner[id(p)] != phase:
                    raise TrainingError(f"model {name!r}: parameter {names[id(p)]} is in phases {owner[id(p)]!r} "
                                        f"and {phase!r}; phase parameter sets must be disjoint")
                owner[id(p)] = phase
            out[phase] = list({id(p): p for p in params}.values())
        orphans = [n for n, p in self.model.named_parameters() if p.requires_grad and id(p) not in owner]
        if orphans:
            raise TrainingError(f"model {name!r}: {len(orphans)} trainable parameter(s) belong to no phase and would "
                                f"never be updated: {orphans[:10]} (add them to a phase or set requires_grad False)")
        return out

    def _build_optimizers(self) -> None:
        config = self.config
        if self.phases is None:
            params = [p for p in self.model.parameters() if p.requires_grad]
            self.optimizer = build_optimizer(params, config["optim"])
            self.scheduler = build_scheduler(self.optimizer, config["scheduler"], self.total_steps)
            self.optimizers = {"": self.optimizer}
            self.schedulers = {"": self.scheduler}
            self.phase_params = {"": params}
            return
        self.phase_params = self._phase_params()
        sc = config["scheduler"]
        phased_sched = is_phased(sc, "scheduler")
        self.optimizers, self.schedulers = {}, {}
        for phase in self.phases:
            opt = build_optimizer(self.phase_params[phase], config["optim"][phase])
            self.optimizers[phase] = opt
            self.schedulers[phase] = build_scheduler(opt, sc[phase] if phased_sched else sc, self.total_steps)
        self.optimizer, self.scheduler = self.optimizers[self.phases[0]], self.schedulers[self.phases[0]]

    def _optim_state(self) -> Dict[str, Any]:
        if self.phases is None:
            return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}
        return {"optimizer": {p: o.state_dict() for p, o in self.optimizers.items()},
                "scheduler": {p: s.state_dict() for p, s in self.schedulers.items()}}

    def _load_optim_state(self, state: Dict[str, Any], path) -> None:
        if self.phases is None:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            return
        saved = state["optimizer"]
        if not isinstance(saved, dict) or set(saved) != set(self.phases) or set(state["scheduler"]) != set(self.phases):
            raise TrainingError(f"{path}: optimizer states {sorted(saved) if isinstance(saved, dict) else '?'} do not "
                                f"match the model's train_phases {list(self.phases)}")
        for p in self.phases:
            self.optimizers[p].load_state_dict(saved[p])
            self.schedulers[p].load_state_dict(state["scheduler"][p])

    def _lrs(self) -> Dict[str, float]:
        return {p: o.param_groups[0]["lr"] for p, o in self.optimizers.items()}

    # ------------------------------------------------------------------ checkpoints
    def _state(self) -> Dict[str, Any]:
        rng = ckpt.get_rng_state()
        if self.dist.enabled:
            gathered: List[Any] = [None] * self.dist.world_size
            torch.distributed.all_gather_object(gathered, rng)
            rng_all = gathered
        else:
            rng_all = [rng]
        return {
            "model": self.model.state_dict(),
            **self._optim_state(),
            "scaler": self.scaler.state_dict(),
            "sampler": {"epoch": self.epoch, "position": self.position},
            "rng": rng_all,
            "step": self.step,
            "best": [list(b) for b in self.best],
            "early_stop": {"best_value": self.best_value, "bad_validations": self.bad_validations},
            "saved_steps": list(self.saved_steps),
            "validations": [list(v) for v in self.validations],
            "world_size": self.dist.world_size,
            "config_hash": self.config_hash,
            "amp": AMP_NAMES[self.amp_dtype],
        }

    def _save(self) -> None:
        state = self._state()
        if self.dist.is_main:
            path = self.ckpt_dir / ckpt.checkpoint_name(self.step)
            if self.step not in self.saved_steps:
                self.saved_steps.append(self.step)
            state["saved_steps"] = list(self.saved_steps)
            ckpt.save_checkpoint(path, state)
            keep = set(self.saved_steps[-int(self.tc["keep_last"]):]) | {int(s) for _, s in self.best}
            for s in list(self.saved_steps):
                if s not in keep:
                    ckpt.remove_checkpoint(self.ckpt_dir / ckpt.checkpoint_name(s))
                    self.saved_steps.remove(s)
        else:
            if self.step not in self.saved_steps:
                self.saved_steps.append(self.step)
        barrier(self.dist)

    def _resume(self) -> bool:
        """Load the newest good checkpoint (bad ones are skipped by name); False when there is none.

        Checkpoints that all fail to load stop training with an error (never a silent restart)."""
        try:
            found = ckpt.latest_good_checkpoint(self.ckpt_dir)
        except ckpt.CheckpointError as e:
            raise TrainingError(str(e)) from None
        if found is None:
            return False
        path, state = found
        saved_hash = state.get("config_hash")
        if saved_hash is not None and saved_hash != self.config_hash:
            raise TrainingError(f"{path} was written with another config (config_hash {saved_hash[:12]}... vs "
                                f"{self.config_hash[:12]}...); use a new exp dir")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise TrainingError(f"{path}: the checkpoint does not fit the configured model "
                                f"(another architecture?): {e}") from None
        self._load_optim_state(state, path)
        self.scaler.load_state_dict(state["scaler"])
        if self.amp_auto and state.get("amp") in AMP_DTYPES:
            self.amp_dtype, self.amp_auto = AMP_DTYPES[state["amp"]], False   # the choice the run started with
            logger.info("train.amp=auto: %s, as chosen when this run started (%s)", state["amp"], path.name)
        self.step = int(state["step"])
        self.epoch = int(state["sampler"]["epoch"])
        self.position = int(state["sampler"]["position"])
        self.best = [list(b) for b in state["best"]]
        self.validations = [list(v) for v in state.get("validations", [])]
        self.best_value = state["early_stop"]["best_value"]
        self.bad_validations = int(state["early_stop"]["bad_validations"])
        self.saved_steps = [s for s in state["saved_steps"] if s <= self.step]
        rngs = state["rng"]
        if len(rngs) == self.dist.world_size:
            ckpt.set_rng_state(rngs[self.dist.rank])
        else:
            logger.warning("%s was written by %d process(es), now %d: RNG states not restored exactly",
                           path, len(rngs), self.dist.world_size)
            ckpt.set_rng_state(rngs[0])
        logger.info("resumed from %s (step %d, epoch %d, batch %d of the epoch)",
                    path, self.step, self.epoch, self.position)
        return True

    def _patience_ran_out(self) -> bool:
        patience = self.config["valid"].get("patience")
        return patience is not None and self.bad_validations >= int(patience)

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> Dict[str, float]:
        """Means over validation utterances of the loss terms, the total ``loss`` and the metrics.

        Each batch's value is weighted by its number of utterances; a term or metric missing
        from a batch (e.g. no known label of a factor) is averaged over the batches that have it.
        """
        self.model.eval()
        sums: Dict[str, float] = {}
        counts: Dict[str, float] = {}
        for batch in self.valid_loader:
            batch = move_batch(batch, self.device)
            b = len(batch["utt_ids"])
            with self._autocast():
                out = self.model(batch)
            total = sum(out["losses"].values())
            vals = {"loss": _scalar(total)}
            vals.update({k: _scalar(v) for k, v in out["losses"].items()})
            vals.update({k: _scalar(v) for k, v in out.get("metrics", {}).items()})
            for k, v in vals.items():
                sums[k] = sums.get(k, 0.0) + v * b
                counts[k] = counts.get(k, 0.0) + b
        self.model.train()
        names = sorted(sums)
        if self.dist.enabled:  # every rank must reduce the same names
            all_names: List[Any] = [None] * self.dist.world_size
            torch.distributed.all_gather_object(all_names, names)
            names = sorted(set().union(*all_names))
        t = torch.tensor([sums.get(k, 0.0) for k in names] + [counts.get(k, 0.0) for k in names],
                         dtype=torch.float64)
        all_reduce_sum(t, self.dist)
        if not names or float(t[len(names)]) == 0:
            raise TrainingError(f"{self.valid_data}: validation produced no batch")
        return {k: float(t[i]) / float(t[len(names) + i]) for i, k in enumerate(names)
                if float(t[len(names) + i]) > 0}

    def _after_validation(self, results: Dict[str, float]) -> bool:
        """Update best-K and early stopping; True when training should stop."""
        vc = self.config["valid"]
        name, mode = vc["metric"], vc["mode"]
        if name not in results:
            raise TrainingError(f"valid.metric {name!r} is not produced by the model; available: {sorted(results)}")
        value = results[name]
        if not math.isfinite(value):
            raise TrainingError(f"validation {name}={value} at step {self.step} on {self.valid_data}")
        better = (lambda a, b: a > b) if mode == "max" else (lambda a, b: a < b)
        self.validations.append([value, self.step])
        if self.step >= self.average_min_step:       # checkpoint averaging only after warm-up
            self.best.append([value, self.step])
            self.best.sort(key=lambda vs: (-vs[0] if mode == "max" else vs[0], -vs[1]))
            del self.best[int(self.tc["average_best"]):]
        if self.best_value is None or better(value, self.best_value):
            self.best_value, self.bad_validations = value, 0
        else:
            self.bad_validations += 1
        logger.info("step %d valid: %s (best %s=%.4f)", self.step,
                    " ".join(f"{k}={v:.4f}" for k, v in results.items()), name, self.best_value)
        return self._patience_ran_out()

    # ------------------------------------------------------------------ training
    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _time_forward_backward(self, batches, dtype) -> float:
        """Seconds of forward + backward passes (every phase of a phased model) over ``batches[1:]``
        after a warm-up pass on ``batches[0]``, with autocast to ``dtype`` (None: float32). Batches of
        different shapes, as in training: on the CPU a new shape costs kernel set-up, more so in
        bfloat16. Gradients are discarded; the caller restores parameters, buffers and RNG states."""
        prev, self.amp_dtype = self.amp_dtype, dtype
        total = 0.0
        try:
            for i, batch in enumerate(batches):
                t0 = time.perf_counter()
                if self.phases is None:
                    with (self.ddp.no_sync() if self.dist.enabled else nullcontext()):
                        with self._autocast():
                            out = self.ddp(batch)
                        sum(out["losses"].values()).backward()
                else:
                    cache = None
                    for phase in self.phases:
                        with self._autocast():
                            out = self.ddp(batch, phase=phase, cache=cache)
                        sum(out["losses"].values()).backward()
                        self.model.zero_grad(set_to_none=True)
                        cache = out.get("cache")
                    del cache
                self.model.zero_grad(set_to_none=True)
                if i > 0:
                    total += time.perf_counter() - t0
        finally:
            self.amp_dtype = prev
        return total

    def _choose_amp(self) -> None:
        """``train.amp: auto`` on a CPU with native bfloat16: time float32 and bfloat16 autocast on the
        run's first batches (up to 6) and train in bfloat16 only where it is at least 10 % faster (it is on some
        CPUs and slower on others for small models, where the casts outweigh the faster products).
        Parameters, buffers, gradients and RNG states are restored, so the run continues exactly as
        if it had started with the chosen precision; the choice goes into the checkpoints."""
        loader = self.train_loader
        loader.batch_sampler.load_state_dict({"epoch": self.epoch, "position": self.position})
        loader.dataset.set_epoch(self.epoch)
        rng = ckpt.get_rng_state()
        saved = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        batches = []
        for b in loader:
            batches.append(move_batch(b, self.device))
            if len(batches) == 6:
                break
        if len(batches) < 2:
            batches = batches * 2
        times = {name: self._time_forward_backward(batches, AMP_DTYPES[name]) for name in ("none", "bf16")}
        self.model.load_state_dict(saved)
        self.model.zero_grad(set_to_none=True)
        ckpt.set_rng_state(rng)
        choice = broadcast_object("bf16" if times["bf16"] < 0.9 * times["none"] else "none", self.dist)
        self.amp_dtype, self.amp_auto = AMP_DTYPES[choice], False
        logger.info("train.amp=auto: float32 %.3f s, bfloat16 %.3f s for forward/backward of the first %d batches "
                    "-> %s", times["none"], times["bf16"], len(batches) - 1, {"none": "float32", "bf16": "bfloat16"}[choice])

    def _tensorboard(self):
        if self._tb is None and self.dist.is_main:
            from torch.utils.tensorboard import SummaryWriter
            self._tb = SummaryWriter(str(self.exp_dir / "tensorboard"))
        return self._tb

    def _check_finite(self, total: torch.Tensor, losses: Dict[str, torch.Tensor], batch,
                      phase: Optional[str] = None) -> None:
        bad = torch.tensor([0.0 if bool(torch.isfinite(total.detach())) else 1.0])
        all_reduce_sum(bad, self.dist)
        if float(bad) > 0:
            where = f"step {self.step + 1}" + (f", phase {phase!r}" if phase else "")
            if bool(torch.isfinite(total.detach())):
                raise TrainingError(f"non-finite loss on another process at {where}; stopping")
            terms = ", ".join(f"{k}={_scalar(v):.4g}" for k, v in losses.items())
            bad_in = nonfinite_inputs(batch)
            if bad_in:
                culprits = sorted({u for us in bad_in.values() for u in us})
                detail = "; ".join(f"{k}: {us}" for k, us in bad_in.items())
                inputs = (f"non-finite input values (NaN/inf) in {len(culprits)} utterance(s) of the batch: "
                          f"{detail}; fix or remove these utterances (their features) and rerun")
            else:
                inputs = (f"every input of the batch is finite, so the model diverged on it (lower optim.lr, "
                          f"set train.grad_clip); batch utterances: {batch['utt_ids']}")
            raise TrainingError(f"non-finite loss at {where} ({terms}); {inputs}. "
                                f"The last good checkpoint in {self.ckpt_dir} is kept.")

    def _phased_step(self, batch, clip, acc_terms: Dict[str, List[float]]) -> tuple:
        """One training step of a multi-optimizer model (see the module docstring); returns
        ``(sum of the phases' total losses, utterances in the batch)``."""
        cache = None
        step_loss = 0.0
        for phase in self.phases:
            with self._autocast():
                out = self.ddp(batch, phase=phase, cache=cache)
            losses = out["losses"]
            if not losses:
                raise TrainingError(f"model {self.config['model']['name']!r} returned no loss in phase {phase!r}")
            total = sum(losses.values())
            self._check_finite(total, losses, batch, phase)
            opt = self.optimizers[phase]
            self.scaler.scale(total).backward()
            if self.dist.enabled:
                self._allreduce_grads(self.phase_params[phase])
            self.scaler.unscale_(opt)
            if clip:
                torch.nn.utils.clip_grad_norm_(self.phase_params[phase], float(clip))
            self.scaler.step(opt)
            self.model.zero_grad(set_to_none=True)       # the next phase starts from zero gradients
            cache = out.get("cache")
            value = _scalar(total)
            step_loss += value
            for k, v in losses.items():
                _accumulate(acc_terms, k, _scalar(v))
            for k, v in out.get("metrics", {}).items():
                _accumulate(acc_terms, k, _scalar(v))
            _accumulate(acc_terms, f"loss_{phase}", value)
        _accumulate(acc_terms, "loss", step_loss)
        del cache
        self.scaler.update()
        for sched in self.schedulers.values():
            sched.step()
        return step_loss, len(batch["utt_ids"])

    def _allreduce_grads(self, params: List[torch.nn.Parameter]) -> None:
        """Average the gradients of ``params`` over ranks (a missing gradient counts as zero)."""
        groups: Dict[tuple, List[torch.nn.Parameter]] = {}
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            groups.setdefault((p.grad.dtype, p.grad.device), []).append(p)
        for group in groups.values():              # one flat all-reduce per dtype/device
            flat = torch.cat([p.grad.reshape(-1) for p in group])
            torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
            flat /= self.dist.world_size
            offset = 0
            for p in group:
                n = p.numel()
                p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
                offset += n

    def _averaging_steps(self) -> List[int]:
        """Steps of the checkpoints averaged into model.pt: the best ``train.average_best`` validated
        ones at steps >= ``train.average_min_step`` whose files verify (a missing or corrupt one is
        replaced by the next best valid one); without any such validation, the newest valid ones."""
        k = int(self.tc["average_best"])
        mode = self.config["valid"]["mode"]
        on_disk = {s for s, _ in ckpt.list_checkpoints(self.ckpt_dir)}
        scores = {int(s): v for v, s in self.validations + self.best}     # best: checkpoints of older versions
        ranked = sorted(((s, v) for s, v in scores.items() if s >= self.average_min_step),
                        key=lambda sv: (-sv[1] if mode == "max" else sv[1], -sv[0]))
        chosen: List[int] = []
        for s, _ in ranked:
            if len(chosen) == k:
                break
            if self._usable(s, on_disk, "validated checkpoint"):
                chosen.append(s)
        if chosen:
            return chosen
        if scores:
            logger.warning("no usable validated checkpoint at step >= %d (train.average_min_step); model.pt = "
                           "the newest valid checkpoint", self.average_min_step)
            k = 1
        newest = [s for s in sorted(on_disk, reverse=True) if self._usable(s, on_disk, "checkpoint")][:k]
        if not newest:
            raise TrainingError(f"{self.ckpt_dir}: no usable checkpoint to write {self.exp_dir}/model.pt from")
        return newest

    def _usable(self, step: int, on_disk, what: str) -> bool:
        path = self.ckpt_dir / ckpt.checkpoint_name(step)
        if step not in on_disk:
            if what.startswith("validated") and any(int(s) == step for _, s in self.best):
                logger.warning("best %s %s is missing; taking the next best valid one", what, path)
            return False
        try:
            ckpt.load_checkpoint(path)
            return True
        except ckpt.CheckpointError as e:
            logger.warning("%s unusable (%s); taking the next valid one", what, e)
            return False

    def _finish(self) -> None:
        """Average the best checkpoints into model.pt and write the done marker."""
        if self.dist.is_main:
            steps = self._averaging_steps()
            paths = [self.ckpt_dir / ckpt.checkpoint_name(s) for s in steps]
            try:
                avg = ckpt.average_state_dicts(paths)
            except ckpt.CheckpointError as e:
                raise TrainingError(str(e)) from None
            ckpt.save_checkpoint(self.exp_dir / "model.pt", {"model": avg, "averaged_steps": steps,
                                                             "config_hash": self.config_hash})
            logger.info("model.pt = average of checkpoints at steps %s", steps)
            with atomic_write(self.exp_dir / "done") as f:
                f.write(f"step {self.step}\n")
        barrier(self.dist)

    def run(self, stop_after_steps: Optional[int] = None) -> str:
        """Train until ``train.max_steps``/``max_epochs`` or early stop.

        ``stop_after_steps``: stop (as if killed) once this many updates are made and checkpointed,
        without writing model.pt/done. Returns "done", "already_done" or "stopped".

        Before anything is written, the exp dir is locked (a second trainer on it is refused), orphan
        temporary files of interrupted writes are removed, and an exp that already holds
        checkpoints or is finished is checked against this call: the same data (identity.yaml) and
        no incompatible config change (config.yaml); compatible changes are logged.
        """
        self._resolve_paths()
        lock = self._lock()
        try:
            self._setup_logging()
            try:
                if self._main_first(self._check_existing) == "already_done":
                    return "already_done"
                self._setup()
                return self._loop(stop_after_steps)
            finally:
                self._teardown()
        finally:
            if lock is not None:
                lock.release()

    def _main_first(self, fn):
        """Run ``fn`` on the main process; its result, or its error, reaches every rank."""
        if not self.dist.enabled:
            return fn()
        box = None
        if self.dist.is_main:
            try:
                box = ("ok", fn())
            except Exception as e:  # noqa: BLE001 - re-raised below, on every rank
                box = ("error", e)
        box = broadcast_object(box, self.dist)
        if box[0] == "error":
            err = box[1]
            raise err if isinstance(err, Exception) else TrainingError(str(err))
        return box[1]

    def _lock(self) -> Optional[DirLock]:
        def take():
            lock = DirLock(self.exp_dir)
            try:
                lock.acquire()
            except LockedError as e:
                raise TrainingError(f"{e}: a second trainer on the same exp dir is refused") from None
            return lock
        if not self.dist.enabled:
            return take()
        lock = [None]

        def take_main():
            lock[0] = take()
            return True
        self._main_first(take_main)
        return lock[0]

    def _resolve_paths(self) -> None:
        """Resolve config values that depend on the data dir (data.cmvn: auto) as they are saved."""
        dc = self.config["data"]
        if dc.get("cmvn") == "auto":
            dc["cmvn"] = str((self.train_data / "cmvn.ark").resolve())
        elif dc.get("cmvn"):
            dc["cmvn"] = str(Path(dc["cmvn"]).resolve())

    def _current_identity(self) -> Dict[str, Any]:
        if getattr(self, "_identity", None) is None:      # computed once per run (hashes the data dirs)
            self._identity = exp_identity(**self._identity_parts())
        return self._identity

    def _check_existing(self) -> str:
        """On the main process: clean up and check an existing exp; "already_done", "resume" or "new"."""
        for d in (self.exp_dir, self.ckpt_dir):
            for p in remove_orphan_tmp(d):
                logger.warning("removed %s, left by an interrupted write", p)
        done = (self.exp_dir / "done").is_file()
        has_ckpt = bool(ckpt.list_checkpoints(self.ckpt_dir))
        if not done and not has_ckpt:
            return "new"
        cfg_path = self.exp_dir / "config.yaml"
        if cfg_path.is_file():
            from parastyle.train.config import read_saved_config
            incompatible, compatible = config_differences(read_saved_config(cfg_path), self.config)
            if incompatible:
                listing = "\n  ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in incompatible)
                raise TrainingError(
                    f"{self.exp_dir} was trained with another config ({cfg_path}); these keys differ and would "
                    f"change the model or its training:\n  {listing}\nUse a new exp dir, or remove {self.exp_dir} "
                    f"to train it again.")
            for k, a, b in compatible:
                logger.info("%s: %s changed from %r to %r (allowed when %s)", self.exp_dir, k, a, b,
                            "finished" if done else "resuming")
        else:
            logger.warning("%s has %s but no config.yaml: the config cannot be compared", self.exp_dir,
                           "done" if done else "checkpoints")
        self._identity = check_exp_identity(self.exp_dir, **self._identity_parts())
        if self._identity is None:
            logger.warning("%s has no %s (trained by an older version): cannot check what it was trained on",
                           self.exp_dir, IDENTITY_FILE)
        if done:
            msg = f"{self.exp_dir} is already trained ({self.exp_dir}/done exists); nothing to do"
            logger.info(msg)
            print(msg, file=sys.stderr)
            return "already_done"
        return "resume"

    def _identity_parts(self) -> Dict[str, Any]:
        return {"config": self.config, "train_data": self.train_data, "valid_data": self.valid_data,
                "lang_dir": self.lang_dir}

    def _loop(self, stop_after_steps: Optional[int]) -> str:
        tc = self.tc
        loader = self.train_loader
        sampler, dataset = loader.batch_sampler, loader.dataset
        log_every, valid_every, ckpt_every = int(tc["log_interval"]), int(tc["valid_interval"]), int(tc["ckpt_interval"])
        clip = tc.get("grad_clip")
        progress = tc.get("progress", "auto")
        show = self.dist.is_main and (progress is True or (progress == "auto" and sys.stderr.isatty()))
        from tqdm import tqdm
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not show, desc="train", dynamic_ncols=True)
        self.model.train()
        logger.info("training %s for %d steps (%d process(es), device %s, %d batches/epoch)",
                    self.config["model"]["name"], self.total_steps, self.dist.world_size, self.device,
                    sampler.num_batches())
        acc_terms: Dict[str, List[float]] = {}
        acc_utts, t0 = 0, time.time()
        micro, step_loss = 0, 0.0
        stop = self.step >= self.total_steps
        if not stop and self.valid_loader is not None and self._patience_ran_out():
            logger.info("patience ran out at step %d before this run (early stop); not training further", self.step)
            stop = True
        if not stop and self.amp_auto:
            self._choose_amp()
            t0 = time.time()
        while not stop:
            sampler.load_state_dict({"epoch": self.epoch, "position": self.position})
            dataset.set_epoch(self.epoch)
            for batch in loader:
                self.position += 1
                if micro == 0 and hasattr(self.model, "on_step"):
                    self.model.on_step(self.step, self.total_steps)
                batch = move_batch(batch, self.device)
                if self.phases is not None:
                    step_loss, n_utts = self._phased_step(batch, clip, acc_terms)
                    acc_utts += n_utts * self.dist.world_size
                else:
                    sync = micro + 1 == self.accum or not self.dist.enabled
                    ctx = nullcontext() if sync else self.ddp.no_sync()
                    with ctx:
                        with self._autocast():
                            out = self.ddp(batch)
                        losses = out["losses"]
                        total = sum(losses.values())
                        self._check_finite(total, losses, batch)
                        self.scaler.scale(total / self.accum).backward()
                    step_loss += _scalar(total) / self.accum
                    for k, v in losses.items():
                        _accumulate(acc_terms, k, _scalar(v))
                    _accumulate(acc_terms, "loss", _scalar(total))
                    for k, v in out.get("metrics", {}).items():
                        _accumulate(acc_terms, k, _scalar(v))
                    acc_utts += len(batch["utt_ids"]) * self.dist.world_size
                    micro += 1
                    if micro < self.accum:
                        continue
                    # ---- optimizer step
                    self.scaler.unscale_(self.optimizer)
                    if clip:
                        torch.nn.utils.clip_grad_norm_(self.model.parameters(), float(clip))
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                    self.optimizer.zero_grad(set_to_none=True)
                    self.scheduler.step()
                self.step += 1
                self.history.append((self.step, step_loss))
                micro, step_loss = 0, 0.0
                bar.update(1)
                if self.step % log_every == 0 and self.dist.is_main:
                    dt = max(time.time() - t0, 1e-9)
                    tb = self._tensorboard()
                    lrs = self._lrs()
                    means = {k: total_n[0] / total_n[1] for k, total_n in acc_terms.items()}
                    for k, v in means.items():
                        tb.add_scalar(f"train/{k}", v, self.step)
                    for p, lr in lrs.items():
                        tb.add_scalar(f"train/lr_{p}" if p else "train/lr", lr, self.step)
                    tb.add_scalar("train/utts_per_s", acc_utts / dt, self.step)
                    lr_text = " ".join(f"lr_{p} {lr:.3g}" if p else f"lr {lr:.3g}" for p, lr in lrs.items())
                    logger.info("step %d epoch %d %s %s utts/s %.1f", self.step, self.epoch, lr_text,
                                " ".join(f"{k}={v:.4f}" for k, v in sorted(means.items())),
                                acc_utts / dt)
                    bar.set_postfix(loss=f"{means['loss']:.3f}")
                if self.step % log_every == 0:
                    acc_terms, acc_utts, t0 = {}, 0, time.time()
                last = self.step >= self.total_steps
                do_valid = self.valid_loader is not None and (self.step % valid_every == 0 or last)
                early = False
                if do_valid:
                    results = self.validate()
                    self.valid_history.append((self.step, results))
                    if self.dist.is_main:
                        tb = self._tensorboard()
                        for k, v in results.items():
                            tb.add_scalar(f"valid/{k}", v, self.step)
                    early = self._after_validation(results)
                    if early:
                        logger.info("early stop at step %d: %s did not improve for %d validations",
                                    self.step, self.config["valid"]["metric"], self.bad_validations)
                if do_valid or last or early or self.step % ckpt_every == 0:
                    self._save()
                if last or early:
                    stop = True
                    break
                if stop_after_steps is not None and self.step >= stop_after_steps:
                    if self.step not in self.saved_steps:
                        self._save()
                    bar.close()
                    return "stopped"
            else:
                self.epoch += 1
                self.position = 0
        bar.close()
        if self.step >= self.total_steps:
            logger.info("reached the last step (%d)", self.total_steps)
        self._finish()
        return "done"
