"""Probes of the VIB latents: how much textual and acoustic information each stream holds.

Representations (from ``model.embed`` of a ``vib_stage2`` exp): ``z_textual`` (frozen stage-1 mean),
``z_acoustic`` (stage-2 mean) and ``original`` (the stage-2 layer-weighted input).

* Transcription: a linear CTC probe (one ``Linear(D, V)`` on standardised frames, Adam,
  ``ctc_epochs`` passes over the training utterances, CTC per target length) decoded greedily on
  the test set -> CER and WER (needs ``text``).
* Every utterance-level factor of the task (and of the data dir) and the speaker, two probes:
  - ``logistic``: logistic regression on standardised mean-pooled vectors (``<factor>_uar``,
    ``speaker_accuracy``);
  - ``attention``: as the authors probe, a learned-query attention pooling over the frames
    followed by a linear layer (:func:`attention_probe`), trained with Adam until the training
    loss stops improving (``<factor>_uar_attn``, ``speaker_accuracy_attn``).
  UAR for factors, accuracy for speakers. Speaker identity is closed-set: it is probed on
  ``speaker_train_data`` / ``speaker_test_data`` (same speakers, different utterances) when given,
  else on train/test when every test speaker is a training speaker, else not at all (logged).
  Frame-level probes (CTC, attention) use the first ``max_frame_utts`` utterances of each set.

:func:`probe` writes ``<out_dir>/results.json`` (``{"method": "vib_probe", "backbone", "test_set",
"metrics": {representation: {"cer", "wer", "<factor>_uar", "<factor>_uar_attn", "speaker_accuracy",
"speaker_accuracy_attn"}}}``), ``probe_table.md``, ``layer_weights.png`` (stage 1 and stage 2) and
``tsne.png`` (both latents coloured by emotion and speaker), and with ``results_md`` the table into
that file.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from parastyle.data.collate import move_batch
from parastyle.data.dataset import encode_factor
from parastyle.evaluate.checks import check_batch_finite, check_finite, check_frontend
from parastyle.fileio import DataError, atomic_write, read_kv, read_list
from parastyle.metrics.asr import cer, ctc_greedy_decode, wer
from parastyle.metrics.classification import classification_report
from parastyle.metrics.vib_tables import render_rows, update_md_section
from parastyle.models.vib import backbone_of_exp
from parastyle.nn.attention_pooling import AttentionPooling
from parastyle.train.build import build_dataloader
from parastyle.train.checkpoint import load_model_from_exp

logger = logging.getLogger(__name__)
REPS = ("z_textual", "z_acoustic", "original")


def extract(model, config, task, data_dir, max_frame_utts: int, device="cpu") -> Dict:
    """Per utterance: mean-pooled vectors of each representation; frames for the first ``max_frame_utts``."""
    loader = build_dataloader(config, data_dir, task=task, train=False)
    out = {"utts": [], "mean": {r: [] for r in REPS}, "frames": {r: [] for r in REPS}, "text": [], "speakers": []}
    with torch.no_grad():
        for batch in loader:
            batch = move_batch(batch, device)
            check_batch_finite(batch, str(data_dir))
            emb = model.embed(batch)
            mask = emb["mask"]
            for r in REPS:
                check_finite(emb[r].flatten(1), batch["utt_ids"], f"the {r} frames", str(data_dir))
            for i, utt in enumerate(batch["utt_ids"]):
                n = int(mask[i].sum())
                keep_frames = len(out["utts"]) < max_frame_utts
                for r in REPS:
                    x = emb[r][i, :n].float().cpu()
                    out["mean"][r].append(x.mean(0).numpy())
                    if keep_frames:
                        out["frames"][r].append(x)
                out["utts"].append(utt)
                out["speakers"].append(batch["speakers"][i])
                out["text"].append(batch["text"][i] if "text" in batch else None)
    for r in REPS:
        out["mean"][r] = np.stack(out["mean"][r])
    return out


def ctc_probe(train, test, tokenizer, rep: str, epochs: int, seed: int = 0) -> Optional[Dict[str, float]]:
    """Train ``Linear(D, V)`` with CTC on training frames -> ``{"cer", "wer"}`` of greedy decoding on
    the test frames (None without transcripts). The CTC loss of each utterance is divided by its
    target length (``reduction='mean'``)."""
    n_tr, n_te = len(train["frames"][rep]), len(test["frames"][rep])
    if any(t is None for t in train["text"][:n_tr] + test["text"][:n_te]):
        return None
    torch.manual_seed(seed)
    dim = train["frames"][rep][0].shape[1]
    # standardise with the training frames' statistics
    cat = torch.cat(train["frames"][rep])
    mean, std = cat.mean(0), cat.std(0) + 1e-5
    probe = torch.nn.Linear(dim, len(tokenizer))
    opt = torch.optim.Adam(probe.parameters(), lr=3e-3)
    targets = [torch.tensor(tokenizer.encode(t, u), dtype=torch.long)
               for t, u in zip(train["text"][:n_tr], train["utts"][:n_tr])]
    order = np.random.RandomState(seed)
    bs = 16
    for _ in range(epochs):
        perm = order.permutation(n_tr)
        for s in range(0, n_tr, bs):
            idx = perm[s:s + bs]
            xs = [(train["frames"][rep][i] - mean) / std for i in idx]
            lens = torch.tensor([len(x) for x in xs])
            x = torch.nn.utils.rnn.pad_sequence(xs, batch_first=True)
            lp = probe(x).log_softmax(-1).transpose(0, 1)
            tg = [targets[i] for i in idx]
            loss = torch.nn.functional.ctc_loss(lp, torch.cat(tg), lens, torch.tensor([len(t) for t in tg]),
                                                blank=0, reduction="mean", zero_infinity=True)
            opt.zero_grad()
            loss.backward()
            opt.step()
    hyps = []
    with torch.no_grad():
        for x in test["frames"][rep]:
            ids = ctc_greedy_decode(probe((x - mean) / std)[None], torch.tensor([len(x)]))[0]
            hyps.append(tokenizer.decode(ids))
    return {"cer": cer(test["text"][:n_te], hyps), "wer": wer(test["text"][:n_te], hyps)}


def attention_probe(x_tr: Sequence[torch.Tensor], y_tr: np.ndarray, x_te: Sequence[torch.Tensor],
                    y_te: np.ndarray, num_classes: int, seed: int = 0, lr: float = 3e-3, batch_size: int = 32,
                    max_epochs: int = 300, patience: int = 10, tol: float = 5e-3,
                    min_loss: float = 1e-3, weight_decay: float = 1e-2) -> Dict[str, float]:
    """Attention pooling + linear probe on frame sequences, trained to convergence.

    ``x_tr``: per utterance ``(T_i, D)`` frames, ``y_tr (N,)`` class indices (likewise the test
    set). Frames are standardised with the training frames' statistics; the probe is
    :class:`AttentionPooling` (learned query) followed by ``Linear(D, C)``, trained with Adam
    (``lr``, minibatches of ``batch_size``, L2 penalty ``weight_decay`` so that separable data has
    a finite optimum, as the logistic-regression probe's default regularisation) on cross-entropy until the training loss has not
    improved by more than ``tol`` (nats) for ``patience`` epochs or is below ``min_loss``
    (converged), or ``max_epochs`` (then a warning says so). Returns ``{"uar", "accuracy", "epochs", "converged", "train_loss"}``.
    """
    if len(x_tr) != len(y_tr) or len(x_te) != len(y_te):
        raise ValueError("attention_probe: frames and labels differ in number")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    cat = torch.cat(list(x_tr))
    mean, std = cat.mean(0), cat.std(0) + 1e-5
    dim = cat.shape[1]
    pool, head = AttentionPooling(dim), torch.nn.Linear(dim, num_classes)
    params = list(pool.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)

    x_tr = [(x - mean) / std for x in x_tr]               # standardised once
    x_te = [(x - mean) / std for x in x_te]

    def batches(xs, idx):
        seqs = [xs[i] for i in idx]
        lens = torch.tensor([len(x) for x in seqs])
        x = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)
        return x, torch.arange(x.shape[1])[None] < lens[:, None]

    y_t = torch.as_tensor(np.asarray(y_tr), dtype=torch.long)
    best, stale, epoch, loss_sum = float("inf"), 0, 0, float("nan")
    for epoch in range(1, max_epochs + 1):
        perm = torch.randperm(len(x_tr), generator=gen)
        loss_sum = 0.0
        for s in range(0, len(perm), batch_size):
            idx = perm[s:s + batch_size].tolist()
            x, m = batches(x_tr, idx)
            loss = torch.nn.functional.cross_entropy(head(pool(x, m)[0]), y_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(idx)
        loss_sum /= len(perm)
        if loss_sum < best - tol:
            best, stale = loss_sum, 0
        else:
            stale += 1
        if stale >= patience or loss_sum < min_loss:
            break
    converged = stale >= patience or loss_sum < min_loss
    if not converged:
        logger.warning("attention probe: training loss still improving after %d epochs (last %.4g)",
                       max_epochs, loss_sum)
    preds = []
    with torch.no_grad():
        for s in range(0, len(x_te), batch_size):
            x, m = batches(x_te, range(s, min(s + batch_size, len(x_te))))
            preds.append(head(pool(x, m)[0]).argmax(-1))
    pred = torch.cat(preds).numpy()
    rep = classification_report(np.asarray(y_te), pred, num_classes)
    return {"uar": rep["balanced_accuracy"], "accuracy": rep["accuracy"], "epochs": epoch,
            "converged": converged, "train_loss": loss_sum}


def logistic_probe(x_tr, y_tr, x_te, y_te, num_classes: int, seed: int = 0) -> Dict[str, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    scaler = StandardScaler().fit(x_tr)
    clf = LogisticRegression(max_iter=2000, random_state=seed).fit(scaler.transform(x_tr), y_tr)
    pred = clf.predict(scaler.transform(x_te))
    rep = classification_report(y_te, pred, num_classes)
    return {"uar": rep["balanced_accuracy"], "accuracy": rep["accuracy"]}


def factor_labels(data_dir: Path, factor: str, vocab: List[str], utts: List[str]) -> np.ndarray:
    enc = encode_factor(data_dir, factor, vocab, utts)
    return np.asarray([enc.get(u, -1) for u in utts])


def _factors(task, train_dir: Path, lang_dir: Optional[Path]) -> Dict[str, List[str]]:
    factors = dict(task.factors)
    if lang_dir is not None:
        from parastyle.data.datadir import DataDir
        for f in DataDir(str(train_dir)).factor_names:
            if f not in factors and (lang_dir / f"{f}.txt").is_file():
                factors[f] = read_list(lang_dir / f"{f}.txt")
    return factors


def plot_layer_weights(model, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    w1 = model.stage1.layer_weights.weights().detach().cpu().numpy()
    w2 = model.layer_weights.weights().detach().cpu().numpy()
    fig, ax = plt.subplots(figsize=(max(4, 0.4 * len(w1) + 2), 3))
    idx = np.arange(len(w1))
    ax.bar(idx - 0.2, w1, 0.4, label="stage 1 (textual)")
    ax.bar(idx + 0.2, w2, 0.4, label="stage 2 (acoustic)")
    ax.set_xlabel("layer")
    ax.set_ylabel("softmax weight")
    ax.set_xticks(idx)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name("." + path.name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def plot_tsne(test, colourings: Dict[str, List[str]], path: Path, seed: int = 0) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE
    reps = ("z_textual", "z_acoustic")
    fig, axes = plt.subplots(len(reps), len(colourings), figsize=(4.5 * len(colourings), 4 * len(reps)),
                             squeeze=False)
    for i, r in enumerate(reps):
        x = test["mean"][r]
        xy = TSNE(n_components=2, perplexity=min(30.0, max(2.0, (len(x) - 1) / 3)), random_state=seed,
                  init="pca").fit_transform(x)
        for j, (name, labels) in enumerate(colourings.items()):
            ax = axes[i][j]
            classes = sorted(set(labels))
            for c in classes:
                sel = np.asarray([lab == c for lab in labels])
                ax.scatter(xy[sel, 0], xy[sel, 1], s=8, label=c if len(classes) <= 12 else None)
            ax.set_title(f"{r} by {name}")
            ax.set_xticks([])
            ax.set_yticks([])
            if len(classes) <= 12:
                ax.legend(fontsize=6, markerscale=1.5)
    fig.tight_layout()
    tmp = path.with_name("." + path.name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def _frames_of(sets, rep: str, keep: np.ndarray):
    """Frames of the utterances of ``keep`` (bool over utterances) that have frames kept, and the mask."""
    n = len(sets["frames"][rep])
    sel = np.zeros(len(keep), dtype=bool)
    sel[:n] = keep[:n]
    return [sets["frames"][rep][i] for i in np.flatnonzero(sel)], sel


def probe(exp, train_data, test_data, out_dir=None, speaker_train_data=None, speaker_test_data=None,
          lang_dir=None, results_md=None, ctc_epochs: int = 30, ctc_max_utts: int = 2000, device="cpu",
          tag: Optional[str] = None, attention: bool = True, attention_max_epochs: int = 300) -> dict:
    """Run every probe of the module docstring on a ``vib_stage2`` exp; returns the results dict."""
    exp, train_dir, test_dir = Path(exp), Path(train_data), Path(test_data)
    model, config, task = load_model_from_exp(exp, map_location=device)
    if config["model"]["name"] != "vib_stage2":
        raise DataError(f"{exp}: probing needs a vib_stage2 exp (it holds both streams), got {config['model']['name']}")
    model.to(device)
    out_dir = Path(out_dir) if out_dir else exp / f"probe_{test_dir.name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    lang_dir = Path(lang_dir) if lang_dir else None
    for d in [train_dir, test_dir] + [Path(x) for x in (speaker_train_data, speaker_test_data) if x]:
        check_frontend(config, task, d, exp_dir=exp)
    logger.info("extracting %s and %s", train_dir, test_dir)
    train = extract(model, config, task, train_dir, ctc_max_utts, device)
    test = extract(model, config, task, test_dir, ctc_max_utts, device)
    table: Dict[str, Dict[str, float]] = {r: {} for r in REPS}
    columns: List[str] = []
    for r in REPS:
        c = ctc_probe(train, test, model.stage1.tokenizer, r, ctc_epochs)
        if c is not None:
            table[r].update(c)
    if "cer" in table["z_textual"]:
        columns += ["cer", "wer"]
    else:
        logger.info("no transcripts: CTC probe skipped")
    for f, vocab in _factors(task, train_dir, lang_dir).items():
        y_tr = factor_labels(train_dir, f, vocab, train["utts"])
        y_te = factor_labels(test_dir, f, vocab, test["utts"])
        ktr, kte = y_tr >= 0, y_te >= 0
        if ktr.sum() < 2 or kte.sum() < 1 or len(set(y_tr[ktr])) < 2:
            logger.info("factor %s: too few labelled utterances, skipped", f)
            continue
        for r in REPS:
            m = logistic_probe(train["mean"][r][ktr], y_tr[ktr], test["mean"][r][kte], y_te[kte], len(vocab))
            table[r][f"{f}_uar"] = m["uar"]
        columns.append(f"{f}_uar")
        if attention:
            for r in REPS:
                xtr, str_ = _frames_of(train, r, ktr)
                xte, ste = _frames_of(test, r, kte)
                m = attention_probe(xtr, y_tr[str_], xte, y_te[ste], len(vocab), max_epochs=attention_max_epochs)
                table[r][f"{f}_uar_attn"] = m["uar"]
                logger.info("attention probe %s %s: %d epochs, converged %s", f, r, m["epochs"], m["converged"])
            columns.append(f"{f}_uar_attn")
    spk_sets = None
    if speaker_train_data and speaker_test_data:
        keep = ctc_max_utts if attention else 0
        spk_sets = (extract(model, config, task, Path(speaker_train_data), keep, device),
                    extract(model, config, task, Path(speaker_test_data), keep, device))
    elif set(test["speakers"]) <= set(train["speakers"]):
        spk_sets = (train, test)
    else:
        logger.info("test speakers are not training speakers and no --speaker_*_data given: speaker probe skipped")
    if spk_sets is not None:
        spk_tr, spk_te = spk_sets
        unseen = sorted(set(spk_te["speakers"]) - set(spk_tr["speakers"]))
        if unseen:
            raise DataError(f"{speaker_test_data}: speakers {unseen[:5]} are not in {speaker_train_data} "
                            f"(speaker probing is closed-set)")
        index = {s: i for i, s in enumerate(sorted(set(spk_tr["speakers"])))}
        y_tr = np.asarray([index[s] for s in spk_tr["speakers"]])
        y_te = np.asarray([index[s] for s in spk_te["speakers"]])
        for r in REPS:
            m = logistic_probe(spk_tr["mean"][r], y_tr, spk_te["mean"][r], y_te, len(index))
            table[r]["speaker_accuracy"] = m["accuracy"]
        columns.append("speaker_accuracy")
        if attention and spk_tr["frames"]["z_textual"] and spk_te["frames"]["z_textual"]:
            for r in REPS:
                xtr, str_ = _frames_of(spk_tr, r, np.ones(len(y_tr), dtype=bool))
                xte, ste = _frames_of(spk_te, r, np.ones(len(y_te), dtype=bool))
                m = attention_probe(xtr, y_tr[str_], xte, y_te[ste], len(index), max_epochs=attention_max_epochs)
                table[r]["speaker_accuracy_attn"] = m["accuracy"]
            columns.append("speaker_accuracy_attn")
    result = {"method": "vib_probe", "backbone": backbone_of_exp(config), "test_set": test_dir.name,
              "exp": str(exp), "metrics": table}
    with atomic_write(out_dir / "results.json") as fh:
        json.dump(result, fh, indent=2)
        fh.write("\n")
    title = (f"Disentanglement probes of {tag or exp.name} on {test_dir.name} (linear CTC probe: CER / WER, "
             f"lower is better; logistic regression on mean-pooled latents: UAR / accuracy; `_attn`: attention "
             f"pooling + linear probe trained to convergence; higher is better).\n\n")
    md = title + render_rows(table, columns)
    with atomic_write(out_dir / "probe_table.md") as fh:
        fh.write(md + "\n")
    if results_md:
        update_md_section(results_md, f"vib probe {tag or exp.name} {test_dir.name}", md)
    plot_layer_weights(model, out_dir / "layer_weights.png")
    colourings = {}
    if "emotion" in task.factors or (test_dir / "utt2emotion").is_file():
        emo = read_kv(test_dir / "utt2emotion") if (test_dir / "utt2emotion").is_file() else {}
        colourings["emotion"] = [emo.get(u, "unknown") for u in test["utts"]]
    colourings["speaker"] = list(test["speakers"])
    if len(test["utts"]) >= 5:
        plot_tsne(test, colourings, out_dir / "tsne.png")
    return result


