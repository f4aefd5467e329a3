"""The field's standard paralinguistic baseline: eGeMAPS functionals + a linear classifier.

Features: the 88 eGeMAPS v02 functionals of openSMILE (``opensmile`` package,
``FeatureSet.eGeMAPSv02``, ``FeatureLevel.Functionals``) of each utterance, computed on its
waveform resampled to ``sample_rate`` (16 kHz by default). Classifier per factor: the features
standardised with the training set's mean and standard deviation, then a linear SVM
(``LinearSVC``) or logistic regression, balanced class weights; the regularisation ``C`` is
chosen from ``C_grid`` by balanced accuracy (UAR) on the dev set (ties: the smaller C), and the
model with that C trained on the training set is kept (dev is not added to train, as for the
neural methods). Utterances whose label is unknown are left out of that factor only.

An exp dir written by :func:`train` holds ``config.yaml`` (``model.name: egemaps_svm``),
``identity.yaml`` (what it was trained on, as the trainer records it: train/dev utterance lists and
label files, label vocabularies, plus the hash of the baseline's options), ``model.pkl``, ``train_report.json`` (dev UAR of every C)
and ``done``. A finished exp is reused only when its identity equals the requested one; otherwise
:class:`ExpIdentityError` names the difference. :func:`score` writes ``decode_<set>/`` exactly
as the neural scorer does (``results.json``, ``confusion_<factor>.csv``, ``utt2pred_<factor>``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import pickle
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from parastyle.data.datadir import DataDir, is_factor_file
from parastyle.fileio import DataError, atomic_write, read_list, write_kv

logger = logging.getLogger(__name__)

DEFAULTS: Dict[str, Any] = {
    "classifier": "linear_svm",            # linear_svm | logreg
    "C_grid": [1.0e-3, 1.0e-2, 1.0e-1, 1.0, 10.0],
    "factors": None,                       # null: every lang_dir/<f>.txt with a utt2<f> in train
    "sample_rate": 16000,
    "max_iter": 20000,
    "seed": 0,
}
NUM_FEATURES = 88


class ExpIdentityError(DataError):
    """A finished exp was trained on something else than what is asked for."""


# ------------------------------------------------------------------------------ features
def _smile():
    import opensmile
    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                           feature_level=opensmile.FeatureLevel.Functionals)


def _extract_block(args: Tuple[List[Tuple[str, str, Optional[Tuple[float, float]]]], int, str]) -> np.ndarray:
    items, sample_rate, where = args
    import torch
    torch.set_num_threads(1)
    from parastyle.data.audio import load_audio
    smile = _smile()
    out = np.zeros((len(items), NUM_FEATURES), dtype=np.float64)
    for i, (utt, entry, seg) in enumerate(items):
        wav = load_audio(utt, entry, sample_rate, segment=seg, where=where).numpy()
        v = smile.process_signal(wav, sample_rate).to_numpy(dtype=np.float64).reshape(-1)
        if v.shape != (NUM_FEATURES,) or not np.isfinite(v).all():
            raise DataError(f"{where}: eGeMAPS functionals of {utt!r} are not {NUM_FEATURES} finite values "
                            f"(shape {v.shape}, {int((~np.isfinite(v)).sum())} non-finite)")
        out[i] = v
    return out


def _entries(data_dir: Path) -> List[Tuple[str, str, Optional[Tuple[float, float]]]]:
    d = DataDir(data_dir)
    wav = d.wav_scp
    segs = d.segments
    items = []
    for utt in d.utts:
        if segs is not None:
            if utt not in segs:
                raise DataError(f"{data_dir}/segments: utterance {utt!r} missing")
            reco, start, end = segs[utt]
            items.append((utt, wav[reco], (start, end)))
        else:
            if utt not in wav:
                raise DataError(f"{data_dir}/wav.scp: utterance {utt!r} missing")
            items.append((utt, wav[utt], None))
    return items


def _cache_key(utt: str, entry: str, seg, sample_rate: int) -> str:
    return hashlib.sha1(f"{utt}\t{entry}\t{seg}\t{sample_rate}".encode("utf-8")).hexdigest()


def extract_egemaps(data_dir, cache_dir=None, nj: int = 1, sample_rate: int = 16000) -> Tuple[List[str], np.ndarray]:
    """eGeMAPS v02 functionals of every utterance of ``data_dir``: ``(utts (C order), X (N, 88))``.

    With ``cache_dir``, vectors are kept in ``<cache_dir>/egemaps.npz`` keyed by utterance id, audio
    entry, segment and sample rate, so the sets of several folds of one corpus are computed once.
    ``nj`` worker processes share the missing utterances.
    """
    data_dir = Path(data_dir)
    items = _entries(data_dir)
    keys = [_cache_key(u, e, s, sample_rate) for u, e, s in items]
    cache: Dict[str, np.ndarray] = {}
    cache_file = Path(cache_dir) / "egemaps.npz" if cache_dir else None
    if cache_file is not None and cache_file.is_file():
        with np.load(cache_file) as z:
            cache = dict(zip(z["keys"].tolist(), z["feats"]))
    todo = [i for i, k in enumerate(keys) if k not in cache]
    if todo:
        logger.info("%s: eGeMAPS functionals of %d utterance(s) (%d cached), %d job(s)", data_dir, len(todo),
                    len(items) - len(todo), nj)
        where = f"{data_dir}/wav.scp"
        blocks = [[items[i] for i in todo[j::max(1, nj)]] for j in range(max(1, nj))]
        idx = [todo[j::max(1, nj)] for j in range(max(1, nj))]
        if nj > 1 and len(todo) > 1:
            with ProcessPoolExecutor(max_workers=nj) as pool:
                results = list(pool.map(_extract_block, [(b, sample_rate, where) for b in blocks]))
        else:
            results = [_extract_block((b, sample_rate, where)) for b in blocks]
        for ids, feats in zip(idx, results):
            for i, v in zip(ids, feats):
                cache[keys[i]] = v
        if cache_file is not None:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            all_keys = sorted(cache)
            with atomic_write(cache_file, mode="wb", encoding=None) as f:
                np.savez(f, keys=np.asarray(all_keys), feats=np.stack([cache[k] for k in all_keys]))
    return [u for u, _, _ in items], np.stack([cache[k] for k in keys])


# ------------------------------------------------------------------------------ identity
def identity(config: Dict[str, Any], train_data, valid_data, lang_dir) -> Dict[str, Any]:
    """What an egemaps_svm exp is trained on: the trainer's record (:mod:`parastyle.train.identity`:
    train/dev utterance lists and label files, vocabularies) plus the hash of the baseline's options."""
    from parastyle.train.identity import exp_identity
    ident = exp_identity(None, train_data, valid_data, lang_dir)
    ident["config_hash"] = hashlib.sha256(json.dumps(config, sort_keys=True).encode("utf-8")).hexdigest()
    return ident


def check_identity(exp, ident: Dict[str, Any]) -> None:
    """ExpIdentityError naming every difference between the exp's recorded identity and ``ident``."""
    from parastyle.train.identity import IDENTITY_FILE, identity_differences, read_identity
    recorded = read_identity(exp)
    if recorded is None:
        raise ExpIdentityError(f"{exp}: finished exp without {IDENTITY_FILE}; cannot tell what it was trained on "
                               f"(remove the exp dir to retrain)")
    diffs = identity_differences(recorded, ident)
    if diffs:
        raise ExpIdentityError(f"{exp} was trained on something else ({exp}/{IDENTITY_FILE}); refusing to reuse it:\n  "
                               + "\n  ".join(diffs) + f"\nUse another exp dir (e.g. one per fold), or remove {exp} "
                               f"to train it again.")


# ------------------------------------------------------------------------------ training
def resolve_factors(config: Dict[str, Any], train_data, lang_dir) -> Dict[str, List[str]]:
    lang_dir, train_data = Path(lang_dir), Path(train_data)
    names = config.get("factors")
    if names is None:
        names = sorted(p.stem for p in lang_dir.glob("*.txt")
                       if is_factor_file(f"utt2{p.stem}") and (train_data / f"utt2{p.stem}").is_file())
    if not names:
        raise DataError(f"no factor: no {lang_dir}/<factor>.txt with a matching {train_data}/utt2<factor>")
    out = {}
    for f in names:
        vf = lang_dir / f"{f}.txt"
        if not vf.is_file():
            raise DataError(f"{vf}: label vocabulary of factor {f!r} not found")
        out[f] = read_list(vf)
    return out


def _labels(data_dir: Path, factor: str, vocab: List[str], utts: List[str]) -> np.ndarray:
    """Label index per utterance (-1 = unknown); DataError on a label outside the vocabulary."""
    d = DataDir(data_dir)
    table = d.factor(factor) if d.has(f"utt2{factor}") else {}
    index = {lab: i for i, lab in enumerate(vocab)}
    y = np.full(len(utts), -1, dtype=np.int64)
    pos = {u: i for i, u in enumerate(utts)}
    for u, lab in table.items():
        if lab not in index:
            raise DataError(f"{data_dir}/utt2{factor}: utterance {u!r} has label {lab!r}, not in the {factor} "
                            f"vocabulary {vocab}")
        if u not in pos:
            raise DataError(f"{data_dir}/utt2{factor}: utterance {u!r} is not in utt2spk")
        y[pos[u]] = index[lab]
    return y


def _classifier(config: Dict[str, Any], C: float):
    if config["classifier"] == "linear_svm":
        from sklearn.svm import LinearSVC
        return LinearSVC(C=C, class_weight="balanced", max_iter=int(config["max_iter"]),
                         random_state=int(config["seed"]))
    if config["classifier"] == "logreg":
        from sklearn.linear_model import LogisticRegression
        return LogisticRegression(C=C, class_weight="balanced", max_iter=int(config["max_iter"]))
    raise DataError(f"egemaps_svm: classifier must be linear_svm or logreg, got {config['classifier']!r}")


def _uar(y: np.ndarray, p: np.ndarray, n: int) -> float:
    from parastyle.metrics.classification import balanced_accuracy, confusion_matrix
    return balanced_accuracy(confusion_matrix(y, p, n))


def resolve_config(overrides: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    config = dict(DEFAULTS)
    for k, v in (overrides or {}).items():
        if k not in DEFAULTS:
            raise DataError(f"egemaps_svm: unknown option {k!r} (known: {', '.join(DEFAULTS)})")
        config[k] = v
    if not config["C_grid"]:
        raise DataError("egemaps_svm: C_grid is empty")
    return config


def train(train_data, valid_data, lang_dir, exp, config: Optional[Dict[str, Any]] = None,
          cache_dir=None, nj: int = 1) -> str:
    """Fit the baseline; returns ``"done"`` or ``"already_done"`` (finished exp, same identity)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.preprocessing import StandardScaler

    config = resolve_config(config)
    exp = Path(exp)
    factors = resolve_factors(config, train_data, lang_dir)
    ident = identity(config, train_data, valid_data, lang_dir)
    if (exp / "done").is_file():
        check_identity(exp, ident)
        logger.info("%s is already trained on the same data (identity.yaml matches); nothing to do", exp)
        return "already_done"
    exp.mkdir(parents=True, exist_ok=True)
    tr_utts, Xtr = extract_egemaps(train_data, cache_dir, nj, int(config["sample_rate"]))
    dv_utts, Xdv = extract_egemaps(valid_data, cache_dir, nj, int(config["sample_rate"]))
    scaler = StandardScaler().fit(Xtr)
    Ztr, Zdv = scaler.transform(Xtr), scaler.transform(Xdv)
    models, report = {}, {"classifier": config["classifier"], "factors": {}}
    for f, vocab in factors.items():
        ytr = _labels(Path(train_data), f, vocab, tr_utts)
        ydv = _labels(Path(valid_data), f, vocab, dv_utts)
        ktr, kdv = ytr >= 0, ydv >= 0
        if len(set(ytr[ktr].tolist())) < 2:
            raise DataError(f"{train_data}/utt2{f}: fewer than 2 classes with a known label; cannot train a "
                            f"{f} classifier")
        if not kdv.any():
            raise DataError(f"{valid_data}/utt2{f}: no utterance with a known label to choose C on")
        scores = {}
        best = None
        for C in config["C_grid"]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf = _classifier(config, float(C)).fit(Ztr[ktr], ytr[ktr])
            s = _uar(ydv[kdv], clf.predict(Zdv[kdv]), len(vocab))
            scores[str(C)] = s
            if best is None or s > best[0] + 1e-12:
                best = (s, float(C), clf)
        models[f] = best[2]
        report["factors"][f] = {"chosen_C": best[1], "dev_uar": scores, "n_train": int(ktr.sum())}
        logger.info("egemaps_svm %s: C=%g chosen on dev (UAR %.4f; %s)", f, best[1], best[0], scores)
    with atomic_write(exp / "model.pkl", mode="wb", encoding=None) as fh:
        pickle.dump({"scaler": scaler, "models": models, "factors": factors}, fh)
    with atomic_write(exp / "train_report.json") as fh:
        json.dump(report, fh, indent=2)
        fh.write("\n")
    import yaml
    with atomic_write(exp / "config.yaml") as fh:
        yaml.safe_dump({"model": {"name": "egemaps_svm", "encoder": "egemaps"}, "egemaps_svm": config,
                        "_run": {"train_data": str(train_data), "valid_data": str(valid_data),
                                 "lang_dir": str(lang_dir)}}, fh, sort_keys=False)
    from parastyle.train.identity import write_identity
    write_identity(exp, ident)
    with atomic_write(exp / "done") as fh:
        fh.write("egemaps_svm\n")
    return "done"


def score(exp, data, results_md=None, tag: Optional[str] = None, cache_dir=None, nj: int = 1) -> Dict[str, Any]:
    """Score a trained baseline on ``data``: ``<exp>/decode_<set>/`` as the neural scorer writes it."""
    from parastyle.metrics.results_table import set_label, update_results_md

    exp, data = Path(exp), Path(data)
    if not (exp / "done").is_file():
        raise DataError(f"{exp}: not a finished egemaps_svm exp (no {exp}/done; run its training first)")
    import yaml
    config = yaml.safe_load((exp / "config.yaml").read_text(encoding="utf-8"))["egemaps_svm"]
    with open(exp / "model.pkl", "rb") as fh:
        model = pickle.load(fh)
    utts, X = extract_egemaps(data, cache_dir, nj, int(config["sample_rate"]))
    Z = model["scaler"].transform(X)
    out_dir = exp / f"decode_{data.name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = {}
    from parastyle.evaluate.scoring import factor_report
    for f, vocab in model["factors"].items():
        p = model["models"][f].predict(Z)
        write_kv(out_dir / f"utt2pred_{f}", {u: vocab[int(k)] for u, k in zip(utts, p)})
        if not DataDir(data).has(f"utt2{f}"):
            continue
        y = _labels(data, f, vocab, utts)
        known = y >= 0
        if not known.any():
            continue
        metrics[f] = factor_report(out_dir, f, vocab, y[known], p[known], set_label(data))
    if not metrics:
        raise DataError(f"{data}: no utterance has a known label for any factor {list(model['factors'])}")
    result = {"method": tag or "egemaps_svm", "backbone": "egemaps", "test_set": set_label(data),
              "metrics": metrics}
    with atomic_write(out_dir / "results.json") as fh:
        json.dump(result, fh, indent=2)
        fh.write("\n")
    if results_md:
        update_results_md(results_md, exp.parent)
    return result


def cross_validate(data_dir, lang_dir, work_dir, num_folds: int = 5, seed: int = 0, dev=0.1,
                   config: Optional[Dict[str, Any]] = None, cache_dir=None, nj: int = 1) -> Dict[str, Any]:
    """Speaker-group cross-validation of the baseline on one data dir (the headroom check of a corpus).

    Folds are made by :func:`parastyle.data.folds.make_folds` under ``<work_dir>/data`` (each fold's
    dev speakers choose C); each fold is trained and scored by :func:`train` / :func:`score` into
    ``<work_dir>/exp/egemaps_svm/fold<k>``. Returns ``{"per_fold": {factor: [UAR]}, "mean", "std"
    (sample), "pooled": {factor: UAR of the union of the test folds}, "num_folds", "num_utts"}``.
    """
    from parastyle.data.folds import make_folds
    from parastyle.metrics.results_table import collect_results, cross_validation_rows

    work = Path(work_dir)
    make_folds(data_dir, work / "data", num_folds, dev=dev, seed=seed)
    for k in range(1, num_folds + 1):
        fold = work / "data" / f"fold{k}"
        exp = work / "exp" / "egemaps_svm" / f"fold{k}"
        train(fold / "train", fold / "dev", lang_dir, exp, config, cache_dir, nj)
        score(exp, fold / "test", cache_dir=cache_dir, nj=nj)
    results = collect_results(work / "exp")
    per_fold: Dict[str, List[float]] = {}
    for r in sorted(results, key=lambda r: int(str(r["test_set"]).split("/")[0][4:])):
        for f, m in r["metrics"].items():
            per_fold.setdefault(f, []).append(float(m["balanced_accuracy"]))
    rows = cross_validation_rows(results)
    pooled = next(r for r in rows if r["kind"] == "pooled")["metrics"]
    return {"per_fold": per_fold,
            "mean": {f: float(np.mean(v)) for f, v in per_fold.items()},
            "std": {f: float(np.std(v, ddof=1)) for f, v in per_fold.items()},
            "pooled": {f: float(m["balanced_accuracy"]) for f, m in pooled.items()},
            "num_folds": num_folds, "num_utts": len(DataDir(data_dir).utts)}
