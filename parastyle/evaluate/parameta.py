"""Evaluate a trained ParaMETA exp: t-SNE plots, leakage matrix, style manipulation, text prompts.

(``python -m parastyle.bin.eval_parameta`` calls :func:`evaluate`.) Writes into ``<exp>/decode_<set>/``:

* ``tsne_<space>.png`` for the META space and every factor subspace, one panel per factor colouring
  the points by that factor's reference label (unknown labels grey);
* ``results.json``: the keys ``leakage``, ``manipulation`` and ``text_prompt`` are added (the file
  written by ``parastyle.bin.score`` is kept; without it, ``method``/``backbone``/``test_set`` and
  nearest-prototype ``metrics`` are written too).

Leakage: ``leakage[space][factor]`` = balanced accuracy on ``--data`` of a logistic-regression probe
trained on the ``--train_data`` embeddings of ``space`` (``meta`` or a subspace) to predict
``factor``; ``chance`` lists 1 / #classes.

Manipulation, for each factor f and each class c with a prototype, over all test utterances:
replace the f-subspace embedding by the prototype of c and

* ``sim_before`` / ``sim_after``: mean cosine similarity of the f-subspace embedding to the prototype of c;
* ``success``: fraction re-classified (nearest prototype) as c;
* ``others_kept``: fraction of (utterance, other factor) pairs whose predicted class is unchanged.

With independent linear projections these subspace-level figures hold by construction (success and
others_kept are 1), so the edit is also carried back into the META space: the smallest change of the
META embedding whose projections equal the edited subspaces (least squares through the stacked
projection matrices) is looked up among the train META embeddings (cosine k-NN, majority vote):

* ``meta_knn_success``: fraction whose neighbours' majority f label is c;
* ``meta_knn_others_kept``: fraction of (utterance, other factor) pairs whose neighbours' majority label
  is the same as for the unedited META embedding.

Text prompts (when ``--data`` has ``utt2caption``): each caption is embedded into the subspaces and
classified by the nearest prototype; ``text_prompt[factor]`` = balanced accuracy and accuracy.

Both data dirs must carry the training front-end (:func:`parastyle.evaluate.checks.check_frontend`),
and a non-finite feature or embedding stops the evaluation with its utterance id.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict, List, Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F

from parastyle.data.collate import IGNORE_INDEX, move_batch
from parastyle.evaluate.checks import (check_batch_finite, check_finite, check_frontend, check_labels_present,
                                       check_model_finite)
from parastyle.fileio import DataError, atomic_write
from parastyle.metrics.leakage import balanced_accuracy, chance_levels, leakage_matrix
from parastyle.train.build import build_dataloader
from parastyle.train.checkpoint import load_model_from_exp

logger = logging.getLogger(__name__)


@torch.no_grad()
def collect(model, loader, device, where: str = "") -> Dict[str, object]:
    """Embeddings ``{space: (N, D)}``, labels ``{factor: (N,)}``, captions, utt ids of every batch of ``loader``.

    A non-finite feature or embedding raises :class:`DataError` naming the utterance (``where``: the data dir)."""
    embs: Dict[str, List[torch.Tensor]] = {}
    labels: Dict[str, List[torch.Tensor]] = {f: [] for f in model.factors}
    captions: Optional[List[str]] = []
    utts: List[str] = []
    for batch in loader:
        check_batch_finite(batch, where)
        batch = move_batch(batch, device)
        e = model.embed(batch)
        for k, v in e.items():
            check_finite(v, batch["utt_ids"], f"the {k} embedding", where)
            embs.setdefault(k, []).append(v.float().cpu())
        for f in model.factors:
            labels[f].append(batch["labels"][f].cpu())
        utts.extend(batch["utt_ids"])
        if captions is not None:
            captions = captions + list(batch["captions"]) if "captions" in batch else None
    if not utts:
        raise DataError("no utterance to evaluate")
    return {"embs": {k: torch.cat(v) for k, v in embs.items()},
            "labels": {f: torch.cat(v) for f, v in labels.items()}, "captions": captions, "utts": utts}


def tsne_plots(embs: Mapping[str, torch.Tensor], labels: Mapping[str, torch.Tensor], vocab: Mapping[str, list],
               out_dir: Path, max_points: int, seed: int = 0) -> List[str]:
    """One PNG per space (``tsne_<space>.png``), one panel per factor; returns the file names."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    n = next(iter(embs.values())).shape[0]
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=min(n, max_points), replace=False))
    if len(idx) < 5:
        logger.warning("t-SNE skipped: only %d utterances", len(idx))
        return []
    perplexity = float(min(30.0, max(2.0, (len(idx) - 1) / 3.0)))
    written = []
    for space, x in embs.items():
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
            F.normalize(x[idx], dim=-1).numpy())
        factors = list(labels)
        fig, axes = plt.subplots(1, len(factors), figsize=(4.2 * len(factors), 4.0), squeeze=False)
        for ax, f in zip(axes[0], factors):
            y = labels[f].numpy()[idx]
            unk = y == IGNORE_INDEX
            if unk.any():
                ax.scatter(xy[unk, 0], xy[unk, 1], s=6, c="lightgrey", label="unknown")
            cmap = plt.get_cmap("tab10" if len(vocab[f]) <= 10 else "tab20")
            for c, lab in enumerate(vocab[f]):
                sel = y == c
                if sel.any():
                    ax.scatter(xy[sel, 0], xy[sel, 1], s=6, color=cmap(c % cmap.N), label=lab)
            ax.set_title(f"{space} space, coloured by {f}")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.legend(fontsize=6, markerscale=2, loc="best")
        fig.tight_layout()
        name = f"tsne_{space}.png"
        tmp = out_dir / f".{name}.tmp.png"
        fig.savefig(tmp, dpi=90)
        plt.close(fig)
        tmp.replace(out_dir / name)
        written.append(name)
    return written


def _knn_majority(query: torch.Tensor, bank: torch.Tensor, bank_labels: Mapping[str, torch.Tensor],
                  k: int, num_classes: Mapping[str, int]) -> Dict[str, torch.Tensor]:
    """Cosine k-NN majority label per factor (unknown-labelled neighbours do not vote; no vote -> -1)."""
    sim = F.normalize(query, dim=-1) @ F.normalize(bank, dim=-1).t()
    nn_idx = sim.topk(min(k, bank.shape[0]), dim=-1).indices                      # (Q, k)
    out = {}
    for f, y in bank_labels.items():
        ny = y[nn_idx]                                                            # (Q, k)
        votes = torch.zeros(query.shape[0], num_classes[f])
        known = ny != IGNORE_INDEX
        votes.scatter_add_(1, ny.clamp(min=0), known.float())
        maj = votes.argmax(-1)
        maj[votes.sum(-1) == 0] = -1
        out[f] = maj
    return out


@torch.no_grad()
def manipulation_eval(model, test: Mapping[str, torch.Tensor], train: Mapping[str, torch.Tensor],
                      train_labels: Mapping[str, torch.Tensor], k: int) -> Dict[str, Dict[str, dict]]:
    """See the module docstring. ``test``/``train``: ``{"meta": (N, M), <factor>: (N, S)}`` on CPU."""
    model = model.cpu()
    factors = model.factors
    W = torch.cat([model.subspace_proj[f].weight.float() for f in factors])        # (F*S, M)
    offsets, o = {}, 0
    for f in factors:
        offsets[f] = (o, o + model.subspace_proj[f].weight.shape[0])
        o = offsets[f][1]
    n_cls = {f: len(model.labels[f]) for f in factors}
    before = model.classify({f: test[f] for f in factors})
    knn_before = _knn_majority(test["meta"], train["meta"], train_labels, k, n_cls)
    out: Dict[str, Dict[str, dict]] = {}
    for f in factors:
        out[f] = {}
        seen = model.prototypes.seen(f)
        for c, lab in enumerate(model.labels[f]):
            if not bool(seen[c]):
                continue
            edited = model.manipulate({g: test[g] for g in factors}, f, c)
            after = model.classify(edited)
            proto = model.prototypes.prototypes(f)[c].float()
            others = [g for g in factors if g != f]
            kept = [float((after[g] == before[g]).float().mean()) for g in others]
            # Carry the edit back to META: m' = m + argmin_d ||W d - (s' - s)||.
            delta = torch.zeros(test["meta"].shape[0], W.shape[0])
            a, b = offsets[f]
            delta[:, a:b] = edited[f] - test[f]
            d_meta = torch.linalg.lstsq(W, delta.t()).solution.t()                  # (N, M)
            knn_after = _knn_majority(test["meta"] + d_meta, train["meta"], train_labels, k, n_cls)
            kept_knn = [float((knn_after[g] == knn_before[g]).float().mean()) for g in others]
            out[f][lab] = {
                "n": int(test[f].shape[0]),
                "sim_before": float(F.cosine_similarity(test[f], proto[None], dim=-1).mean()),
                "sim_after": float(F.cosine_similarity(edited[f], proto[None], dim=-1).mean()),
                "success": float((after[f] == c).float().mean()),
                "others_kept": float(np.mean(kept)) if kept else None,
                "meta_knn_success": float((knn_after[f] == c).float().mean()),
                "meta_knn_others_kept": float(np.mean(kept_knn)) if kept_knn else None,
            }
    return out


def _bal_acc(y: torch.Tensor, p: torch.Tensor) -> Optional[Dict[str, float]]:
    known = y != IGNORE_INDEX
    if not bool(known.any()):
        return None
    yk, pk = y[known].numpy(), p[known].numpy()
    return {"balanced_accuracy": balanced_accuracy(yk, pk), "accuracy": float((yk == pk).mean()), "n": int(known.sum())}


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def render_section(exp_name: str, set_name: str, res: Mapping) -> str:
    """Markdown section of the eval results (leakage matrix, manipulation summary, text prompts)."""
    lk, factors = res["leakage"]["matrix"], list(res["leakage"]["chance"])
    lines = [f"### ParaMETA evaluation: {exp_name} on {set_name}", "",
             "Leakage (balanced accuracy of a linear probe; rows: embedding space, columns: factor):", "",
             "| space | " + " | ".join(factors) + " |", "|---|" + "---|" * len(factors)]
    for space, row in lk.items():
        lines.append(f"| {space} | " + " | ".join(_fmt(row[f]) for f in factors) + " |")
    lines.append("| chance | " + " | ".join(_fmt(res["leakage"]["chance"][f]) for f in factors) + " |")
    lines += ["", "Style manipulation (mean over target classes):", "",
              "| factor | sim before | sim after | success | others kept | META k-NN success | META k-NN others kept |",
              "|---|---|---|---|---|---|---|"]
    for f, per in res["manipulation"].items():
        if not per:
            continue
        keys = ["sim_before", "sim_after", "success", "others_kept", "meta_knn_success", "meta_knn_others_kept"]
        means = []
        for key in keys:
            vals = [v[key] for v in per.values() if v[key] is not None]
            means.append(float(np.mean(vals)) if vals else None)
        lines.append(f"| {f} | " + " | ".join(_fmt(m) for m in means) + " |")
    if res.get("text_prompt"):
        lines += ["", "Text-prompt classification (caption -> subspace -> nearest prototype), balanced accuracy:", "",
                  "| " + " | ".join(res["text_prompt"]) + " |", "|" + "---|" * len(res["text_prompt"]),
                  "| " + " | ".join(_fmt(v["balanced_accuracy"]) for v in res["text_prompt"].values()) + " |"]
    return "\n".join(lines)


def update_md_section(path: Path, key: str, body: str) -> None:
    """Replace (or append) the section between ``<!-- BEGIN key -->`` and ``<!-- END key -->``, atomically."""
    begin, end = f"<!-- BEGIN {key} -->", f"<!-- END {key} -->"
    block = f"{begin}\n{body}\n{end}"
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Results\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with atomic_write(path) as f:
        f.write(text)


def evaluate(exp, train_data, data, checkpoint=None, results_md=None, max_tsne=1500, knn=10,
             device="cpu") -> dict:
    exp, train_data, data = Path(exp), Path(train_data), Path(data)
    model, config, task = load_model_from_exp(exp, checkpoint, map_location=device)
    if not hasattr(model, "prototypes") or not hasattr(model, "manipulate"):
        raise ValueError(f"{exp}: model {config['model'].get('name')!r} is not a ParaMETA model; "
                         f"eval_parameta needs prototypes and subspaces")
    model.to(device)
    check_model_finite(model, str(exp))
    for d in (train_data, data):
        if not (d / "utt2spk").is_file():
            raise DataError(f"{d}: not a data dir (utt2spk missing)")
        check_frontend(config, task, d, exp_dir=exp)
        check_labels_present(d, list(model.factors))
    logger.info("embedding %s and %s", train_data, data)
    tr = collect(model, build_dataloader(config, train_data, task=task, train=False), device, str(train_data))
    te = collect(model, build_dataloader(config, data, task=task, train=False), device, str(data))
    out_dir = exp / (f"decode_{data.name}" if checkpoint in (None, "model.pt")
                     else f"decode_{data.name}_{Path(checkpoint).stem}")
    out_dir.mkdir(parents=True, exist_ok=True)

    plots = []
    if max_tsne > 0:
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=1):      # see parastyle.metrics.leakage: avoids BLAS/OpenMP spinning
            plots = tsne_plots(te["embs"], te["labels"], model.labels, out_dir, max_tsne)
    logger.info("t-SNE plots: %s", plots)
    np_tr = {k: v.numpy() for k, v in tr["embs"].items()}
    np_te = {k: v.numpy() for k, v in te["embs"].items()}
    ytr = {f: v.numpy() for f, v in tr["labels"].items()}
    yte = {f: v.numpy() for f, v in te["labels"].items()}
    logger.info("leakage probes (%d spaces x %d factors)", len(np_tr), len(ytr))
    leakage = {"matrix": leakage_matrix(np_tr, ytr, np_te, yte), "chance": chance_levels(yte),
               "probe": "StandardScaler + LogisticRegression(C=1), trained on " + train_data.name}
    logger.info("manipulation evaluation")
    manipulation = manipulation_eval(model, te["embs"], tr["embs"], tr["labels"], knn)
    model.to(device)
    text_prompt = None
    logger.info("text-prompt classification")
    if te["captions"] is not None and getattr(model, "text_encoder", None) is not None:
        preds = {f: [] for f in model.factors}
        caps = te["captions"]
        for i in range(0, len(caps), 256):
            p = model.predict_text(caps[i:i + 256])
            for f in model.factors:
                preds[f].append(p[f].cpu())
        text_prompt = {}
        for f in model.factors:
            r = _bal_acc(te["labels"][f], torch.cat(preds[f]))
            if r is not None:
                text_prompt[f] = r
    else:
        logger.info("text-prompt evaluation skipped (no utt2caption in %s or model without text encoder)", data)

    res_path = out_dir / "results.json"
    if res_path.is_file():
        result = json.loads(res_path.read_text(encoding="utf-8"))
    else:
        enc = config["model"].get("encoder")
        metrics = {}
        pred = model.classify({f: te["embs"][f].to(device) for f in model.factors})
        for f in model.factors:
            r = _bal_acc(te["labels"][f], pred[f].cpu())
            if r is not None:
                metrics[f] = r
        result = {"method": config["model"]["name"], "backbone": enc.get("name") if isinstance(enc, dict) else "-",
                  "test_set": data.name, "metrics": metrics}
    result.update({"leakage": leakage, "manipulation": manipulation, "text_prompt": text_prompt,
                   "tsne_plots": plots})
    with atomic_write(res_path) as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    if results_md:
        update_md_section(Path(results_md), f"eval_parameta {exp.name} {data.name}",
                          render_section(exp.name, data.name, result))
    return result
