"""Linear probes of the VIB latents: how much textual and acoustic information each stream holds.

    python -m parastyle.bin.vib_probe --exp exp/vib_stage2_emotion --train_data data/train \\
        --test_data data/test [--speaker_train_data data/spk_train --speaker_test_data data/spk_test] \\
        [--out_dir <exp>/probe_<test>] [--results_md RESULTS.md] [--ctc_epochs 30] [--ctc_max_utts 2000]

Representations (from ``model.embed`` of a ``vib_stage2`` exp): ``z_textual`` (frozen stage-1 mean),
``z_acoustic`` (stage-2 mean) and ``original`` (the stage-2 layer-weighted input).

* Transcription: a linear CTC probe (one ``Linear(D, V)`` on frames, Adam, ``--ctc_epochs`` passes
  over the training utterances) decoded greedily on the test set -> CER (needs ``text``).
* Every utterance-level factor of the task (and of the data dir) and the speaker: logistic
  regression on standardised mean-pooled vectors -> UAR for factors, accuracy for speakers.
  Speaker identity is closed-set: it is probed on ``--speaker_train_data`` / ``--speaker_test_data``
  (same speakers, different utterances) when given, else on train/test when every test speaker is
  a training speaker, else not at all (logged).

Writes ``<out_dir>/results.json`` (``{"method": "vib_probe", "backbone", "test_set", "metrics":
{representation: {"cer", "<factor>_uar", "speaker_accuracy"}}}``), ``probe_table.md``,
``layer_weights.png`` (stage 1 and stage 2) and ``tsne.png`` (both latents coloured by emotion
and speaker), and with ``--results_md`` the table into that file.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from parastyle.data.collate import move_batch
from parastyle.data.dataset import encode_factor
from parastyle.fileio import DataError, atomic_write, read_kv, read_list
from parastyle.metrics.asr import cer, ctc_greedy_decode
from parastyle.metrics.classification import classification_report
from parastyle.metrics.vib_tables import render_rows, update_md_section
from parastyle.models.vib import backbone_of_exp
from parastyle.train.build import build_dataloader
from parastyle.train.checkpoint import CheckpointError, load_model_from_exp

logger = logging.getLogger("vib_probe")
REPS = ("z_textual", "z_acoustic", "original")


def extract(model, config, task, data_dir, max_frame_utts: int, device="cpu") -> Dict:
    """Per utterance: mean-pooled vectors of each representation; frames for the first ``max_frame_utts``."""
    loader = build_dataloader(config, data_dir, task=task, train=False)
    out = {"utts": [], "mean": {r: [] for r in REPS}, "frames": {r: [] for r in REPS}, "text": [], "speakers": []}
    with torch.no_grad():
        for batch in loader:
            batch = move_batch(batch, device)
            emb = model.embed(batch)
            mask = emb["mask"]
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


def ctc_probe(train, test, tokenizer, rep: str, epochs: int, seed: int = 0) -> Optional[float]:
    """Train ``Linear(D, V)`` with CTC on training frames; CER of greedy decoding on test frames."""
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
                                                blank=0, reduction="sum", zero_infinity=True) / len(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
    hyps = []
    with torch.no_grad():
        for x in test["frames"][rep]:
            ids = ctc_greedy_decode(probe((x - mean) / std)[None], torch.tensor([len(x)]))[0]
            hyps.append(tokenizer.decode(ids))
    return cer(test["text"][:n_te], hyps)


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


def probe(exp, train_data, test_data, out_dir=None, speaker_train_data=None, speaker_test_data=None,
          lang_dir=None, results_md=None, ctc_epochs: int = 30, ctc_max_utts: int = 2000, device="cpu",
          tag: Optional[str] = None) -> dict:
    exp, train_dir, test_dir = Path(exp), Path(train_data), Path(test_data)
    model, config, task = load_model_from_exp(exp, map_location=device)
    if config["model"]["name"] != "vib_stage2":
        raise DataError(f"{exp}: probing needs a vib_stage2 exp (it holds both streams), got {config['model']['name']}")
    model.to(device)
    out_dir = Path(out_dir) if out_dir else exp / f"probe_{test_dir.name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    lang_dir = Path(lang_dir) if lang_dir else None
    logger.info("extracting %s and %s", train_dir, test_dir)
    train = extract(model, config, task, train_dir, ctc_max_utts, device)
    test = extract(model, config, task, test_dir, ctc_max_utts, device)
    table: Dict[str, Dict[str, float]] = {r: {} for r in REPS}
    columns: List[str] = []
    for r in REPS:
        c = ctc_probe(train, test, model.stage1.tokenizer, r, ctc_epochs)
        if c is not None:
            table[r]["cer"] = c
    if "cer" in table["z_textual"]:
        columns.append("cer")
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
    spk_sets = None
    if speaker_train_data and speaker_test_data:
        spk_sets = (extract(model, config, task, Path(speaker_train_data), 0, device),
                    extract(model, config, task, Path(speaker_test_data), 0, device))
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
    result = {"method": "vib_probe", "backbone": backbone_of_exp(config), "test_set": test_dir.name,
              "exp": str(exp), "metrics": table}
    with atomic_write(out_dir / "results.json") as fh:
        json.dump(result, fh, indent=2)
        fh.write("\n")
    title = (f"Disentanglement probes of {tag or exp.name} on {test_dir.name} (linear probes; CER: lower is "
             f"better; UAR / accuracy: higher is better).\n\n")
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp", required=True, help="vib_stage2 exp dir")
    p.add_argument("--train_data", required=True)
    p.add_argument("--test_data", required=True)
    p.add_argument("--speaker_train_data", default=None)
    p.add_argument("--speaker_test_data", default=None)
    p.add_argument("--lang_dir", default=None, help="to probe factors the model was not trained on")
    p.add_argument("--out_dir", default=None)
    p.add_argument("--results_md", default=None)
    p.add_argument("--tag", default=None)
    p.add_argument("--ctc_epochs", type=int, default=30)
    p.add_argument("--ctc_max_utts", type=int, default=2000, help="utterances whose frames are kept per set")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if bool(args.speaker_train_data) != bool(args.speaker_test_data):
        p.error("give both --speaker_train_data and --speaker_test_data, or neither")
    try:
        r = probe(args.exp, args.train_data, args.test_data, args.out_dir, args.speaker_train_data,
                  args.speaker_test_data, args.lang_dir, args.results_md, args.ctc_epochs, args.ctc_max_utts,
                  args.device, args.tag)
    except (DataError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for rep, m in r["metrics"].items():
        print(f"{rep}: " + " ".join(f"{k}={v:.4f}" for k, v in m.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
