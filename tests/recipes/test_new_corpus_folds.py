"""Adding a corpus as a user would: copy egs/cremad/style1, edit only local/ and conf/.

The fabricated corpus has its own label set (``boredom`` is outside ParaMETA's emotions) and a
published 3-fold speaker protocol. The folds that local/data.sh lists are run for egemaps_svm,
ce and parameta (tiny step counts); RESULTS.md gets per-fold rows and a pooled row per method,
whose numbers are checked against the per-utterance predictions. Reusing a finished exp of
another fold is refused, for the trainer and for the eGeMAPS baseline.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from corpus_fabrication import REPO, VENV_BIN, copy_recipes

SPEAKERS = {"s1": "male", "s2": "female", "s3": "male", "s4": "female", "s5": "male", "s6": "female"}
EMOTIONS = {"neutral": (1.0, 1.0), "happy": (1.35, 1.2), "angry": (1.15, 2.0), "boredom": (0.85, 0.6)}
PROTOCOL = {1: ("s1 s2", "s3", "s4 s5 s6"), 2: ("s3 s4", "s5", "s1 s2 s6"), 3: ("s5 s6", "s1", "s2 s3 s4")}

DATA_SH = r'''#!/usr/bin/env bash
# VoxAffect (fabricated): audio/<spk>_<emotion>_<n>.wav, speakers.tsv (speaker gender),
# protocol/fold<k>.lst ("<speaker> train|dev|test"): the corpus's published speaker folds.
set -euo pipefail
corpus=
nj=1
seed=0
. utils/parse_options.sh
[ -d "${corpus}/audio" ] || { echo "local/data.sh: corpus='${corpus}' has no audio/" >&2; exit 1; }
rm -rf data/all.tmp
python local/prepare_voxaffect.py --corpus "${corpus}" --out data/all.tmp --lang data/lang
rm -rf data/all && mv data/all.tmp data/all
for lst in "${corpus}"/protocol/fold*.lst; do
  k=$(basename "${lst}" .lst)
  rm -rf "data/${k}.tmp"
  for s in train dev test; do
    awk -v s="${s}" '$2 == s {print "vox_" $1}' "${lst}" > "data/${k}.${s}.spk"
    utils/subset_data_dir.sh --spk-list "data/${k}.${s}.spk" data/all "data/${k}.tmp/${s}"
    rm "data/${k}.${s}.spk"
  done
  rm -rf "data/${k}" && mv "data/${k}.tmp" "data/${k}"
done
'''

PREPARE = r'''#!/usr/bin/env python3
"""VoxAffect -> data/all with the corpus's own vocabularies (boredom included)."""
import sys
from pathlib import Path

from parastyle.data.corpus_prep import DataError, Utterance, corpus_parser, run_prepare

VOCABULARIES = {"emotion": ["neutral", "happy", "angry", "boredom"], "gender": ["male", "female"]}


def collect(corpus: Path, prefix: str) -> list:
    genders = dict(line.split("\t") for line in (corpus / "speakers.tsv").read_text().splitlines())
    utts = []
    for wav in sorted((corpus / "audio").glob("*.wav")):
        spk, emotion, n = wav.stem.split("_")
        utts.append(Utterance(utt=f"{prefix}_{spk}-{wav.stem}", spk=f"{prefix}_{spk}", wav=wav,
                              factors={"emotion": emotion, "gender": genders[spk]}, text="a sentence",
                              source=str(wav)))
    return utts


def main(argv=None) -> int:
    parser = corpus_parser(__doc__, "VoxAffect root", "vox")
    args = parser.parse_args(argv)
    return run_prepare("prepare_voxaffect.py", args, lambda: collect(args.corpus.absolute(), args.prefix),
                       VOCABULARIES)


if __name__ == "__main__":
    sys.exit(main())
'''


def make_corpus(root: Path) -> Path:
    """6 speakers x 4 emotions x 2 clips of 0.6 s at 16 kHz: harmonic tones whose pitch depends on
    gender and emotion and whose level on emotion, plus noise."""
    rng = np.random.default_rng(0)
    sr = 16000
    t = np.arange(int(0.6 * sr)) / sr
    for i, (spk, gender) in enumerate(SPEAKERS.items()):
        base = (115.0 if gender == "male" else 210.0) * (1 + 0.03 * i)
        for emo, (pitch, level) in EMOTIONS.items():
            for n in range(2):
                f0 = base * pitch * (1 + 0.02 * n)
                x = sum(np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 6)) / h for h in range(1, 6))
                x = 0.05 * level * x * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t) ** 2) + 0.003 * rng.standard_normal(len(t))
                (root / "audio").mkdir(parents=True, exist_ok=True)
                sf.write(str(root / "audio" / f"{spk}_{emo}_{n}.wav"), x.astype(np.float32), sr, subtype="PCM_16")
    (root / "speakers.tsv").write_text("".join(f"{s}\t{g}\n" for s, g in SPEAKERS.items()))
    (root / "protocol").mkdir()
    for k, (test, dev, train) in PROTOCOL.items():
        lines = [f"{s} test" for s in test.split()] + [f"{s} dev" for s in dev.split()] + \
                [f"{s} train" for s in train.split()]
        (root / "protocol" / f"fold{k}.lst").write_text("\n".join(lines) + "\n")
    return root


def tiny(conf: Path, **model) -> None:
    """Edit a copied CPU config down to a few steps of a small encoder (a user's conf/ edit)."""
    c = yaml.safe_load(conf.read_text())
    c["model"]["encoder"] = {"name": "tdnn", "hidden": 16, "kernel_sizes": [3, 3], "dilations": [1, 2],
                             "output_dim": 32, "dropout": 0.0}
    c["model"].update(model)
    c["data"].update(factors=None, max_frames=4000, batch_size=8, max_frames_per_utt=None)
    c["scheduler"]["warmup_steps"] = 2
    c["train"].update(max_steps=8, log_interval=4, valid_interval=4, ckpt_interval=4, average_best=1)
    c["valid"]["patience"] = None
    conf.write_text(yaml.safe_dump(c, sort_keys=False))


def _env():
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(PARASTYLE_ROOT=str(REPO), OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", LC_ALL="C")
    return env


def test_copied_recipe_runs_published_folds_and_refuses_another_folds_exp(tmp_path):
    corpus = make_corpus(tmp_path / "VoxAffect")
    root = copy_recipes(tmp_path / "repo", ["cremad"])
    recipe = root / "egs" / "voxaffect" / "style1"
    recipe.parent.mkdir()
    (root / "egs" / "cremad" / "style1").rename(recipe)
    # ---- the user's edits: local/ and conf/ only
    for p in (recipe / "local").iterdir():
        if p.name != "label_map.yaml":
            p.unlink()
    (recipe / "local" / "data.sh").write_text(DATA_SH)
    (recipe / "local" / "data.sh").chmod(0o755)
    (recipe / "local" / "prepare_voxaffect.py").write_text(PREPARE)
    (recipe / "local" / "label_map.yaml").write_text("emotion: {boredom: null}   # not in ParaMETA's set\n")
    conf = recipe / "conf"
    (conf / "feats.yaml").write_text(yaml.safe_dump({"type": "logmel", "sample_rate": 16000, "n_fft": 512,
                                                     "win_length": 400, "hop_length": 160, "n_mels": 40}))
    tiny(conf / "train_ce.yaml")
    tiny(conf / "train_parameta.yaml", use_text=False, meta_dim=32, subspace_dim=16)
    run_sh_before = (recipe / "run.sh").read_text()

    proc = subprocess.run(["bash", "run.sh", "--data_args", f"--corpus {corpus}", "--folds", "listed", "--nj", "1",
                           "--methods", "egemaps_svm ce parameta", "--score_sets", "test", "--stop_stage", "5"],
                          cwd=recipe, env=_env(), capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (recipe / "run.sh").read_text() == run_sh_before
    check_run(recipe, tmp_path)


def check_run(recipe: Path, tmp_path: Path) -> None:
    """What the folds run must have produced (and the refusals that follow it)."""
    assert (recipe / "data" / "lang" / "emotion.txt").read_text().split() == ["neutral", "happy", "angry", "boredom"]

    # one exp per method and fold; each scored on its own fold's test speakers
    results = {}
    for method in ("egemaps_svm", "ce", "parameta"):
        for k in (1, 2, 3):
            dec = recipe / "exp" / method / f"fold{k}" / "decode_test"
            r = json.loads((dec / "results.json").read_text())
            assert r["test_set"] == f"fold{k}/test"
            results[(method, k)] = dec
            spk = {line.split()[1] for line in (recipe / "data" / f"fold{k}" / "test" / "utt2spk").read_text().splitlines()}
            assert spk == {f"vox_{s}" for s in PROTOCOL[k][0].split()}

    # pooled row = UAR of the union of the three folds' predictions (recomputed here from utt2pred)
    from parastyle.metrics.results_table import BEGIN, END
    md = (recipe / "RESULTS.md").read_text().split(BEGIN, 1)[1].split(END, 1)[0]   # the generated table
    header = next(line for line in md.splitlines() if line.startswith("| method |"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    for method in ("egemaps_svm", "ce", "parameta"):
        rows = [line for line in md.splitlines() if line.startswith(f"| {method} |") and "pooled" in line]
        assert len(rows) == 1, (method, md)
        cells = [c.strip() for c in rows[0].strip("|").split("|")]
        assert cells[2] == "fold{1,2,3}/test pooled"
        for factor in ("emotion", "gender"):
            ref, hyp = [], []
            for k in (1, 2, 3):
                labels = dict(line.split() for line in
                              (recipe / "data" / f"fold{k}" / "test" / f"utt2{factor}").read_text().splitlines())
                preds = dict(line.split() for line in
                             (results[(method, k)] / f"utt2pred_{factor}").read_text().splitlines())
                for u, lab in labels.items():
                    ref.append(lab)
                    hyp.append(preds[u])
            classes = sorted(set(ref))
            uar = np.mean([np.mean([h == c for r_, h in zip(ref, hyp) if r_ == c]) for c in classes])
            assert float(cells[cols.index(factor)]) == pytest.approx(uar, abs=5e-4), (method, factor)
        assert any(line.startswith(f"| {method} |") and "mean ± std" in line for line in md.splitlines())

    # the baseline recorded C chosen on dev for each factor
    rep = json.loads((recipe / "exp" / "egemaps_svm" / "fold1" / "train_report.json").read_text())
    assert set(rep["factors"]) == {"emotion", "gender"}

    # reusing fold 1's finished exp with fold 2's data is refused, naming the difference
    def py(*args):
        return subprocess.run(["python", *args], cwd=recipe, env=_env(), capture_output=True, text=True, timeout=120)

    model = recipe / "exp" / "ce" / "fold1" / "model.pt"
    before = (model.stat().st_mtime_ns, model.read_bytes())
    p = py("-m", "parastyle.bin.train", "--config", "conf/train_ce.yaml", "--train_data", "data/fold2/train",
           "--valid_data", "data/fold2/dev", "--lang_dir", "data/lang", "--exp", "exp/ce/fold1")
    # refused naming the exp and what differs (fold 2's CMVN / training data instead of fold 1's)
    assert p.returncode != 0 and "exp/ce/fold1 was trained with" in p.stderr and "fold2/train" in p.stderr, \
        p.stderr[-2000:]
    assert (model.stat().st_mtime_ns, model.read_bytes()) == before
    p = py("-m", "parastyle.bin.egemaps_svm", "train", "--train_data", "data/fold2/train", "--valid_data",
           "data/fold2/dev", "--lang_dir", "data/lang", "--exp", "exp/egemaps_svm/fold1")
    assert p.returncode != 0 and "refusing to reuse" in p.stderr and "utterance list differs" in p.stderr, p.stderr

    # the corpus's label map onto ParaMETA's sets: boredom becomes unknown, counted
    p = py("-m", "parastyle.bin.apply_label_map", "--map", "local/label_map.yaml", "--src_lang", "data/lang",
           "--target", str(REPO / "egs/parameta/style1/local/label_sets.yaml"), "data/all", str(tmp_path / "mapped"))
    assert p.returncode == 0, p.stderr
    assert "boredom -> unknown (12)" in p.stdout and "happy kept (12)" in p.stdout
    assert "boredom" not in (tmp_path / "mapped" / "utt2emotion").read_text()
    assert len((tmp_path / "mapped" / "utt2emotion").read_text().splitlines()) == 36
