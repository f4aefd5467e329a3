"""egs/iemocap/vib1 data prep on a fabricated IEMOCAP tree with the real names and metadata layout."""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from parastyle.fileio import read_kv, read_list

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "egs" / "iemocap" / "vib1"

# session -> dialog -> [(utt, emotion, text)]
DIALOGS = {
    n: {f"Ses0{n}F_impro01": [(f"Ses0{n}F_impro01_F000", "neu", "Excuse me."),
                              (f"Ses0{n}F_impro01_M000", "exc", "Do you have your forms?"),
                              (f"Ses0{n}F_impro01_F001", "fru", "Yeah."),
                              (f"Ses0{n}F_impro01_M001", "ang", "Let me see them.")],
        f"Ses0{n}M_script01_1": [(f"Ses0{n}M_script01_1_M000", "sad", "What is it?"),
                                 (f"Ses0{n}M_script01_1_F000", "hap", "I'm so glad."),
                                 (f"Ses0{n}M_script01_1_F001", "xxx", "Well.")]}
    for n in range(1, 6)
}


def make_tree(root: Path, drop_transcript=None) -> Path:
    for n, dialogs in DIALOGS.items():
        s = root / f"Session{n}"
        for dialog, utts in dialogs.items():
            (s / "dialog" / "EmoEvaluation").mkdir(parents=True, exist_ok=True)
            (s / "dialog" / "transcriptions").mkdir(parents=True, exist_ok=True)
            lab = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            tr = []
            for i, (utt, emo, text) in enumerate(utts):
                lab += [f"[{i * 2.5:.4f} - {i * 2.5 + 2:.4f}]\t{utt}\t{emo}\t[2.5000, 3.0000, 3.5000]",
                        f"C-E1:\tNeutral;\t()", f"A-F2:\tval 3; act 2; dom  3;\t()", ""]
                if utt != drop_transcript:
                    tr.append(f"{utt} [{i * 2.5:08.4f}-{i * 2.5 + 2:08.4f}]: {text}")
                w = s / "sentences" / "wav" / dialog / f"{utt}.wav"
                w.parent.mkdir(parents=True, exist_ok=True)
                sf.write(str(w), (0.1 * np.sin(np.arange(800) / 7)).astype(np.float32), 16000, subtype="PCM_16")
            tr.append(f"{dialog[:6]}_{dialog[7:]}_MXX0 [020.0000-021.0000]: [LAUGHTER]")
            (s / "dialog" / "EmoEvaluation" / f"{dialog}.txt").write_text("\n".join(lab) + "\n")
            (s / "dialog" / "transcriptions" / f"{dialog}.txt").write_text("\n".join(tr) + "\n")
    return root


def run_data_sh(tmp_path: Path, *args):
    work = tmp_path / "recipe"
    work.mkdir()
    (work / "local").symlink_to(RECIPE / "local")
    (work / "utils").symlink_to(REPO / "utils")
    env = dict(os.environ, PATH=f"{REPO / 'tools' / 'venv' / 'bin'}{os.pathsep}{os.environ['PATH']}", LC_ALL="C",
               OMP_NUM_THREADS="1")
    return work, subprocess.run(["bash", "local/data.sh", *args], cwd=work, env=env, capture_output=True, text=True)


def test_data_sh_four_classes_and_folds(tmp_path):
    root = make_tree(tmp_path / "IEMOCAP_full_release")
    work, r = run_data_sh(tmp_path, "--iemocap", str(root))
    assert r.returncode == 0, r.stderr
    assert "'fru': 5" in r.stderr and "'xxx': 5" in r.stderr
    all_dir = work / "data" / "all"
    emo = read_kv(all_dir / "utt2emotion")
    assert len(emo) == 25
    assert emo["Ses01F-Ses01F_impro01_F000"] == "neutral"
    assert emo["Ses01M-Ses01F_impro01_M000"] == "happy"          # exc merged into happy
    assert emo["Ses01F-Ses01M_script01_1_F000"] == "happy"
    assert emo["Ses01M-Ses01F_impro01_M001"] == "angry"
    assert emo["Ses01M-Ses01M_script01_1_M000"] == "sad"
    assert "Ses01F-Ses01F_impro01_F001" not in emo             # frustration left out
    spk = read_kv(all_dir / "utt2spk")
    assert spk["Ses03M-Ses03F_impro01_M000"] == "Ses03M"
    assert read_kv(all_dir / "utt2gender")["Ses03M-Ses03F_impro01_M000"] == "male"
    assert read_kv(all_dir / "text")["Ses02F-Ses02M_script01_1_F000"] == "I'm so glad."
    assert read_kv(all_dir / "wav.scp")["Ses01F-Ses01F_impro01_F000"].endswith(
        "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav")
    assert read_list(work / "data" / "lang" / "emotion.txt") == ["neutral", "happy", "angry", "sad"]
    for n in range(1, 6):
        d = work / "data" / f"fold{n}"
        test = set(read_kv(d / "test" / "utt2spk"))
        train, dev = set(read_kv(d / "train" / "utt2spk")), set(read_kv(d / "dev" / "utt2spk"))
        assert test == {u for u in emo if u.startswith(f"Ses0{n}")} and len(test) == 5
        assert not (train | dev) & test and train | dev | test == set(emo) and not train & dev
        assert {spk[u] for u in dev} == {spk[u] for u in train}   # dev: utterances of every training speaker


def test_missing_transcript_is_an_error(tmp_path):
    root = make_tree(tmp_path / "IEMOCAP_full_release", drop_transcript="Ses02F_impro01_M001")
    _, r = run_data_sh(tmp_path, "--iemocap", str(root))
    assert r.returncode != 0 and "Ses02F_impro01_M001" in r.stderr and "transcript" in r.stderr
    _, r2 = run_data_sh(tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path, "--iemocap", "")
    assert r2.returncode != 0 and "sail.usc.edu" in r2.stderr


def test_paper_configs_carry_the_authors_values():
    """Stage 1 batch 1 and stage 2 batch 8; AdamW lr 1e-4 (large SSL models), weight decay 0.005,
    betas (0.9, 0.999), 10 % warm-up + cosine, gradient clip 1, 50 epochs, beta 0.1 -> 1 five epochs early."""
    import yaml
    for name, batch in (("train_stage1_ssl.yaml", 1), ("train_stage2_ssl.yaml", 8)):
        c = yaml.safe_load((RECIPE / "conf" / name).read_text())
        assert c["data"]["batch_size"] == batch and c["data"]["max_frames"] is None, name
        assert c["optim"] == {"name": "adamw", "lr": 1.0e-4, "weight_decay": 5.0e-3, "betas": [0.9, 0.999],
                              "eps": 1.0e-8}, name
        assert c["scheduler"]["name"] == "warmup_cosine" and c["scheduler"]["min_lr_ratio"] == 0.0, name
        assert c["train"]["grad_clip"] == 1.0 and c["train"]["max_epochs"] == 50, name
        assert c["model"]["beta"]["reach_before_end_fraction"] == 0.1, name
