"""Build task info, datasets and data loaders from a training config.

Used by the trainer and by evaluation CLIs, so that scoring reads a data dir exactly as
training did (same features, CMVN, factors and label vocabularies).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from parastyle.data.collate import collate_batch
from parastyle.data.dataset import StyleDataset
from parastyle.data.samplers import LengthBucketBatchSampler
from parastyle.fileio import DataError, read_kv, read_list
from parastyle.models.task import TaskInfo

logger = logging.getLogger(__name__)


def _frontend(config: Dict[str, Any]):
    conf = config["data"].get("frontend")
    if not conf:
        return None
    from parastyle.features.frontend import build_frontend
    return build_frontend(dict(conf))


def _feats_conf_frontend(data_dir: Path):
    """The frontend described by ``<data_dir>/feats_conf.yaml`` (written by extract_feats), if any."""
    p = data_dir / "feats_conf.yaml"
    if not p.is_file():
        return None
    import yaml
    try:
        from parastyle.features.frontend import build_frontend
    except ImportError:
        return None
    with open(p, encoding="utf-8") as f:
        return build_frontend(yaml.safe_load(f))


def resolve_factors(config: Dict[str, Any], train_data, lang_dir) -> Dict[str, list]:
    """``{factor: vocabulary}`` from ``data.factors`` (or every ``lang_dir/<f>.txt`` with a ``utt2<f>``)."""
    lang_dir, train_data = Path(lang_dir), Path(train_data)
    names = config["data"].get("factors")
    if names is None:
        names = sorted(p.stem for p in lang_dir.glob("*.txt") if (train_data / f"utt2{p.stem}").is_file())
        if not names:
            raise DataError(f"no factor found: no {lang_dir}/<factor>.txt with a matching {train_data}/utt2<factor>")
    out = {}
    for f in names:
        vocab_file = lang_dir / f"{f}.txt"
        if not vocab_file.is_file():
            raise DataError(f"{vocab_file}: label vocabulary of factor {f!r} not found "
                            f"(write it with parastyle.data.vocab.write_label_vocabs)")
        out[f] = read_list(vocab_file)
    return out


def build_task_info(config: Dict[str, Any], train_data, lang_dir) -> TaskInfo:
    """TaskInfo: feature dim, factor vocabularies, sample rate / frame shift, tags, speakers."""
    train_data, lang_dir = Path(train_data), Path(lang_dir)
    factors = resolve_factors(config, train_data, lang_dir)
    frontend = _frontend(config)
    if config["data"]["feats"]:
        scp = train_data / "feats.scp"
        if not scp.is_file():
            raise DataError(f"{scp}: file not found (run the feature extraction stage, or set data.feats: false "
                            f"with a data.frontend)")
        import kaldiio
        first_utt, first = next(iter(read_kv(scp).items()))
        feat_dim = int(kaldiio.load_mat(first).shape[1])
        frontend = frontend or _feats_conf_frontend(train_data)
    else:
        if frontend is None:
            raise DataError("data.feats is false but no data.frontend is configured")
        feat_dim = int(frontend.dim)
    kwargs: Dict[str, Any] = {}
    if frontend is not None:
        kwargs = {"sample_rate": int(frontend.sample_rate), "frame_shift_s": float(frontend.frame_shift_s)}
    tags = read_list(lang_dir / "tags.txt") if (lang_dir / "tags.txt").is_file() else None
    speakers = sorted(set(read_kv(train_data / "utt2spk").values()))
    return TaskInfo(feat_dim=feat_dim, factors=factors, tags=tags, speakers=speakers, **kwargs)


def build_dataset(config: Dict[str, Any], data_dir, factors: Dict[str, list], train: bool,
                  cmvn_path: Optional[str] = None) -> StyleDataset:
    """A :class:`StyleDataset` with the config's features, CMVN and (training only) crop."""
    dc = config["data"]
    cmvn = None
    cmvn_path = cmvn_path if cmvn_path is not None else dc.get("cmvn")
    if cmvn_path:
        if cmvn_path == "auto":
            raise ValueError("data.cmvn 'auto' must be resolved to a path before building a dataset")
        from parastyle.features.cmvn import GlobalCMVN
        cmvn = GlobalCMVN.from_file(cmvn_path)
    return StyleDataset(data_dir, factors, use_feats=bool(dc["feats"]), frontend=_frontend(config),
                        cmvn=cmvn, max_frames_per_utt=dc.get("max_frames_per_utt"), crop=train,
                        seed=int(config["train"]["seed"]))


def build_dataloader(config: Dict[str, Any], data_dir, lang_dir=None, train: bool = False,
                     task: Optional[TaskInfo] = None, rank: int = 0, world_size: int = 1,
                     num_workers: Optional[int] = None) -> torch.utils.data.DataLoader:
    """DataLoader over ``data_dir`` with the exp's data settings.

    Factors come from ``task.factors`` when given, else from ``lang_dir`` (``data.factors``).
    Training: shuffled length buckets under ``data.max_frames`` / ``data.batch_size``, sharded
    over ``world_size`` ranks, crop to ``data.max_frames_per_utt``. Evaluation: length order,
    budget ``data.valid_max_frames`` (default ``data.max_frames``), every utterance once.
    ``loader.batch_sampler`` is a :class:`LengthBucketBatchSampler`, ``loader.dataset`` a
    :class:`StyleDataset`; batches are the dicts of :mod:`parastyle.data.collate`.
    """
    dc = config["data"]
    if task is not None:
        factors = task.factors
    elif lang_dir is not None:
        factors = resolve_factors(config, data_dir, lang_dir)
    else:
        raise ValueError("build_dataloader needs task or lang_dir")
    dataset = build_dataset(config, data_dir, factors, train)
    max_frames = dc.get("max_frames") if train else (dc.get("valid_max_frames") or dc.get("max_frames"))
    sampler = LengthBucketBatchSampler(dataset.lengths(), max_frames=max_frames, batch_size=dc.get("batch_size"),
                                       shuffle=train, seed=int(config["train"]["seed"]), rank=rank,
                                       world_size=world_size, drop_small=train)
    workers = int(dc.get("num_workers", 0) if num_workers is None else num_workers)
    # A private generator: creating an iterator must not consume the global torch RNG (exact resume).
    gen = torch.Generator()
    gen.manual_seed(int(config["train"]["seed"]))
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_batch,
                                       num_workers=workers, generator=gen)
