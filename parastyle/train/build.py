"""Build task info, datasets and data loaders from a training config.

Used by the trainer and by evaluation CLIs, so that scoring reads a data dir exactly as
training did (same features, CMVN, factors and label vocabularies).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from parastyle.data.balanced_sampler import NO_TAG, ClassBalancedBatchSampler
from parastyle.data.collate import collate_batch
from parastyle.data.datadir import is_factor_file, read_frame_shift
from parastyle.data.dataset import StyleDataset
from parastyle.data.samplers import LengthBucketBatchSampler
from parastyle.fileio import DataError, read_kv, read_list
from parastyle.models.task import TaskInfo
from parastyle.registry import Registry
from parastyle.train.config import ConfigError

logger = logging.getLogger(__name__)

# ``data.dataset`` -> builder ``(config, data_dir, factors, train, cmvn) -> dataset``. A dataset has
# ``lengths()`` (frames per item as batched), ``set_epoch(epoch)``, ``__getitem__``/``__len__`` and may
# carry ``collate`` (items -> batch dict; default :func:`collate_batch`). Generation models (TTS acoustic
# model, vocoder, speech LM) register their own dataset next to their model; the trainer is unchanged.
DATASETS = Registry("dataset")
# Modules that register datasets, imported on first use (a missing optional module fails only when used).
_DATASET_MODULES = ["parastyle.data.tts_dataset", "parastyle.data.vocoder_dataset", "parastyle.data.lm_dataset",
                    "parastyle.data.caption_dataset"]


def _import_datasets() -> None:
    import importlib
    for mod in _DATASET_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


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
    from parastyle.features.frontend import build_frontend
    with open(p, encoding="utf-8") as f:
        return build_frontend(yaml.safe_load(f))


def resolve_factors(config: Dict[str, Any], train_data, lang_dir) -> Dict[str, list]:
    """``{factor: vocabulary}`` from ``data.factors`` (or every ``lang_dir/<f>.txt`` with a ``utt2<f>``)."""
    lang_dir, train_data = Path(lang_dir), Path(train_data)
    names = config["data"].get("factors")
    if names is None:
        # tags.txt / utt2tags (and other reserved utt2 files) are not single-label factors
        names = sorted(p.stem for p in lang_dir.glob("*.txt")
                       if is_factor_file(f"utt2{p.stem}") and (train_data / f"utt2{p.stem}").is_file())
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


def check_factor_coverage(train_data, factors: Dict[str, list]) -> Dict[str, Dict[str, int]]:
    """Labelled training utterances per factor and class: ``{factor: {label: count}}``.

    A factor with no labelled training utterance (``utt2<f>`` missing, empty, or no line for an
    utterance of ``utt2spk``) would train an untrained head: :class:`DataError`. A class of the
    vocabulary with no training utterance is logged as a warning with the counts."""
    train_data = Path(train_data)
    utts = set(read_kv(train_data / "utt2spk"))
    out: Dict[str, Dict[str, int]] = {}
    for f, vocab in factors.items():
        path = train_data / f"utt2{f}"
        if not path.is_file():
            raise DataError(f"{path}: file not found: factor {f!r} has no labelled training utterance "
                            f"(remove it from data.factors or label the training data)")
        table = read_kv(path)
        counts = dict.fromkeys(vocab, 0)
        for u, lab in table.items():
            if u in utts and lab in counts:
                counts[lab] += 1
        if not sum(counts.values()):
            raise DataError(f"{path}: {'the file is empty' if not table else 'no line labels an utterance of utt2spk'}: "
                            f"factor {f!r} has no labelled training utterance out of {len(utts)} "
                            f"(remove it from data.factors or label the training data)")
        unseen = [lab for lab, c in counts.items() if c == 0]
        if unseen:
            logger.warning("%s: %d of %d %s class(es) have no training utterance: %s (counts: %s); their "
                           "outputs are untrained", path, len(unseen), len(vocab), f, unseen[:10],
                           ", ".join(f"{lab}={c}" for lab, c in counts.items()))
        out[f] = counts
    return out


def build_task_info(config: Dict[str, Any], train_data, lang_dir) -> TaskInfo:
    """TaskInfo: feature dim, factor vocabularies, sample rate / frame shift, tags, speakers.

    Every factor must have labelled training utterances (:func:`check_factor_coverage`)."""
    train_data, lang_dir = Path(train_data), Path(lang_dir)
    factors = resolve_factors(config, train_data, lang_dir)
    check_factor_coverage(train_data, factors)
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
    elif config["data"]["feats"] and read_frame_shift(train_data) is not None:
        kwargs = {"frame_shift_s": read_frame_shift(train_data)}      # e.g. dumped SSL layers
    tags = read_list(lang_dir / "tags.txt") if (lang_dir / "tags.txt").is_file() else None
    speakers = sorted(set(read_kv(train_data / "utt2spk").values()))
    return TaskInfo(feat_dim=feat_dim, factors=factors, tags=tags, speakers=speakers,
                    lang_dir=str(lang_dir.resolve()), **kwargs)


def build_dataset(config: Dict[str, Any], data_dir, factors: Dict[str, list], train: bool,
                  cmvn_path: Optional[str] = None):
    """The dataset named by ``data.dataset`` (default ``style``: a :class:`StyleDataset` with the
    config's features, CMVN and, in training, crop)."""
    dc = config["data"]
    name = dc.get("dataset") or "style"
    if name != "style":
        _import_datasets()
        return DATASETS.get(name)(config, data_dir, factors, train, cmvn_path)
    cmvn = None
    cmvn_path = cmvn_path if cmvn_path is not None else dc.get("cmvn")
    if cmvn_path:
        if cmvn_path == "auto":
            raise ValueError("data.cmvn 'auto' must be resolved to a path before building a dataset")
        from parastyle.features.cmvn import GlobalCMVN
        cmvn = GlobalCMVN.from_file(cmvn_path)
    augment = None
    if train and dc.get("augment"):
        from parastyle.data.augment import AugmentConfigError, build_augmenter
        try:
            augment = build_augmenter(dc["augment"], use_feats=bool(dc["feats"]))
        except AugmentConfigError as e:
            raise ConfigError(str(e)) from None
    return StyleDataset(data_dir, factors, use_feats=bool(dc["feats"]), frontend=_frontend(config),
                        cmvn=cmvn, max_frames_per_utt=dc.get("max_frames_per_utt"), crop=train,
                        seed=int(config["train"]["seed"]), augment=augment)


def build_train_sampler(config: Dict[str, Any], dataset: StyleDataset, rank: int = 0, world_size: int = 1):
    """The training batch sampler chosen by ``data.sampler.name``.

    ``length_bucket``: :class:`LengthBucketBatchSampler` (shuffled length buckets under
    ``data.max_frames`` / ``data.batch_size``). ``class_balanced``:
    :class:`ClassBalancedBatchSampler` over the tags of ``<data_dir>/utt2tags`` (batches of
    ``data.batch_size`` utterances, weights ``tag frequency^-power``). Both shard global batches
    over ``world_size`` ranks and keep ``{"epoch", "position"}`` for exact resume.
    """
    dc = config["data"]
    sc = dict(dc.get("sampler") or {})
    name = sc.get("name", "length_bucket")
    seed = int(config["train"]["seed"])
    if name == "length_bucket":
        return LengthBucketBatchSampler(dataset.lengths(), max_frames=dc.get("max_frames"),
                                        batch_size=dc.get("batch_size"), shuffle=True, seed=seed, rank=rank,
                                        world_size=world_size, drop_small=True)
    if name == "task":
        # one task per batch, drawn in proportion to the task's data volume (speech LM; data.sampler.weights)
        from parastyle.data.task_sampler import TaskBatchSampler
        if not hasattr(dataset, "item_tasks"):
            raise ConfigError("data.sampler.name task needs a multitask dataset (data.dataset: speech_lm)")
        return TaskBatchSampler(dataset.item_tasks(), dataset.lengths(), max_frames=dc.get("max_frames"),
                                batch_size=dc.get("batch_size"), weights=sc.get("weights"), seed=seed, rank=rank,
                                world_size=world_size)
    if name != "class_balanced":
        raise ConfigError(f"data.sampler.name must be length_bucket, class_balanced or task, got {name!r}")
    return _class_balanced_sampler(dc, sc, dataset, seed, rank, world_size)


def _class_balanced_sampler(dc: Dict[str, Any], sc: Dict[str, Any], dataset: StyleDataset, seed: int,
                            rank: int, world_size: int) -> ClassBalancedBatchSampler:
    d = dataset.data_dir
    if dc.get("max_frames") is not None:
        raise ConfigError(f"data.sampler.name is class_balanced, which applies no frame budget (each batch holds "
                          f"data.batch_size utterances), but data.max_frames is {dc['max_frames']}: set "
                          f"data.max_frames: null (bound utterance length with data.max_frames_per_utt)")
    batch_size = dc.get("batch_size")
    if batch_size is None:
        raise ConfigError("data.sampler.name is class_balanced: set data.batch_size (utterances per global batch)")
    if dataset.tags is None:
        raise DataError(f"{d}/utt2tags: file not found; data.sampler.name class_balanced samples by inverse tag "
                        f"frequency and needs the tags of every training utterance")
    tags = [dataset.tags.get(u, []) for u in dataset.utts]
    untagged = [u for u, t in zip(dataset.utts, tags) if not t]
    if untagged:
        if sc.get("untagged", "error") == "error":
            raise DataError(f"{d}/utt2tags: {len(untagged)} of {len(tags)} utterance(s) of {d}/utt2spk have no tags, "
                            f"e.g. {untagged[:5]}; data.sampler.name class_balanced needs tags for every "
                            f"utterance (add them, remove these utterances, or set data.sampler.untagged: "
                            f"own_class to sample them as one pseudo-tag class {NO_TAG})")
        logger.warning("%s: %d of %d utterance(s) without tags are sampled as the pseudo-tag class %s "
                       "(data.sampler.untagged: own_class), e.g. %s", d, len(untagged), len(tags), NO_TAG,
                       untagged[:3])
    try:
        sampler = ClassBalancedBatchSampler(tags, batch_size=int(batch_size), num_batches=sc.get("num_batches"),
                                            power=float(sc.get("power", 1.0)), reduce=sc.get("reduce", "mean"),
                                            seed=seed, rank=rank, world_size=world_size)
    except ValueError as e:
        raise DataError(f"{d}: cannot build the class-balanced sampler over {len(tags)} utterance(s) with "
                        f"data.batch_size={batch_size} and {world_size} process(es): {e}") from None
    counts = sampler.tag_counts
    rare = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]))
    logger.info("%s: class-balanced sampler: %d utterances, %d tags (rarest %s, most common %s), power %g, "
                "reduce %s, %d batches of %d per epoch", d, len(tags), len(counts), rare[:3], rare[-3:][::-1],
                sampler.power, sampler.reduce, sampler.num_batches(), sampler.batch_size)
    return sampler


def build_dataloader(config: Dict[str, Any], data_dir, lang_dir=None, train: bool = False,
                     task: Optional[TaskInfo] = None, rank: int = 0, world_size: int = 1,
                     num_workers: Optional[int] = None) -> torch.utils.data.DataLoader:
    """DataLoader over ``data_dir`` with the exp's data settings.

    Factors come from ``task.factors`` when given, else from ``lang_dir`` (``data.factors``).
    Training: the sampler of ``data.sampler.name`` (:func:`build_train_sampler`: shuffled length
    buckets under ``data.max_frames`` / ``data.batch_size``, or class-balanced batches by inverse
    tag frequency), sharded over ``world_size`` ranks, crop to ``data.max_frames_per_utt``.
    Evaluation: length order, budget ``data.valid_max_frames`` (default ``data.max_frames``),
    every utterance once, whatever ``data.sampler`` says.
    ``loader.batch_sampler`` is a :class:`LengthBucketBatchSampler` or (training)
    :class:`ClassBalancedBatchSampler`, ``loader.dataset`` a :class:`StyleDataset`; batches are
    the dicts of :mod:`parastyle.data.collate`.
    """
    dc = config["data"]
    if task is not None:
        factors = task.factors
    elif lang_dir is not None:
        factors = resolve_factors(config, data_dir, lang_dir)
    else:
        raise ValueError("build_dataloader needs task or lang_dir")
    dataset = build_dataset(config, data_dir, factors, train)
    if train:
        sampler = build_train_sampler(config, dataset, rank=rank, world_size=world_size)
    else:
        max_frames = dc.get("valid_max_frames") or dc.get("max_frames")
        sampler = LengthBucketBatchSampler(dataset.lengths(), max_frames=max_frames, batch_size=dc.get("batch_size"),
                                           shuffle=False, seed=int(config["train"]["seed"]), rank=rank,
                                           world_size=world_size, drop_small=False)
    workers = int(dc.get("num_workers", 0) if num_workers is None else num_workers)
    # A private generator: creating an iterator must not consume the global torch RNG (exact resume).
    gen = torch.Generator()
    gen.manual_seed(int(config["train"]["seed"]))
    collate = getattr(dataset, "collate", None) or collate_batch
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                                       num_workers=workers, generator=gen)
