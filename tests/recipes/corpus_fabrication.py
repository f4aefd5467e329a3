"""Fabricated miniature copies of the corpora of ParaMETA's training mix.

Each ``make_<corpus>`` function writes a tree with the real file names and metadata layout
of the corpus (see ``egs/<corpus>/style1/local/README.md``), a handful of utterances, and
short synthetic wavs at the corpus's real sample rate. They return the corpus root and a
description of what was written so the tests can compare the data prep output with it.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / "tools" / "venv" / "bin"


def write_wav(path: Path, sample_rate: int, seconds: float = 0.05, freq: float = 220.0) -> Path:
    """A 16-bit mono sine tone (``seconds`` long; 0 gives a header-only file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    sf.write(str(path), (0.1 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sample_rate,
             subtype="PCM_16")
    return path


def run_data_sh(recipe: str, args: Sequence[str], cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    """Run ``bash local/data.sh ARGS`` from ``egs/<recipe>/style1`` with the venv's python on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["LC_ALL"] = "C"
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run(["bash", "local/data.sh", *map(str, args)],
                          cwd=cwd or REPO / "egs" / recipe / "style1", env=env,
                          capture_output=True, text=True, timeout=120)


def copy_recipes(dest: Path, recipes: Sequence[str]) -> Path:
    """A repository-shaped tree under ``dest`` holding copies of ``egs/<recipe>/style1`` (symbolic
    links kept) and links to the real utils/, tools/ and egs/TEMPLATE/, so that a recipe's run.sh
    can run there without writing into the repository. Returns ``dest``."""
    import shutil

    (dest / "egs").mkdir(parents=True)
    for name in ("utils", "tools"):
        (dest / name).symlink_to(REPO / name)
    (dest / "egs" / "TEMPLATE").symlink_to(REPO / "egs" / "TEMPLATE")
    for recipe in recipes:
        shutil.copytree(REPO / "egs" / recipe / "style1", dest / "egs" / recipe / "style1", symlinks=True)
    return dest


def run_recipe(recipe_dir: Path, args: Sequence[str]) -> subprocess.CompletedProcess:
    """Run ``./run.sh ARGS`` in ``recipe_dir`` (from :func:`copy_recipes`)."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PARASTYLE_ROOT"] = str(REPO)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run(["bash", "run.sh", *map(str, args)], cwd=recipe_dir, env=env,
                          capture_output=True, text=True, timeout=300)


def read_table(path: Path) -> List[Tuple[str, str]]:
    """Lines of a Kaldi table as (key, value) pairs, in file order."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(" ")
        out.append((key, value))
    return out


# ----------------------------------------------------------------------------- CREMA-D
CREMAD_DEMOGRAPHICS = [  # ActorID, Age, Sex, Race, Ethnicity (ages on the group boundaries)
    ("1001", "51", "Male", "Caucasian", "Not Hispanic"),
    ("1002", "31", "Female", "Caucasian", "Not Hispanic"),
    ("1015", "50", "Male", "African American", "Not Hispanic"),
    ("1082", "30", "Female", "Asian", "Not Hispanic"),
]
CREMAD_CLIPS = ["1001_DFA_ANG_XX", "1001_IEO_HAP_HI", "1002_TIE_SAD_LO", "1002_IOM_NEU_XX",
                "1015_ITH_FEA_MD", "1015_IWW_DIS_XX", "1082_WSI_HAP_LO"]


def make_cremad(root: Path, clips: Sequence[str] = CREMAD_CLIPS,
                demographics: Sequence[Tuple[str, ...]] = CREMAD_DEMOGRAPHICS) -> Path:
    """``<root>/AudioWAV/<clip>.wav`` at 16 kHz and ``<root>/VideoDemographics.csv``."""
    for i, clip in enumerate(clips):
        write_wav(root / "AudioWAV" / f"{clip}.wav", 16000, freq=200 + 20 * i)
    rows = ["ActorID,Age,Sex,Race,Ethnicity"] + [",".join(r) for r in demographics]
    (root / "VideoDemographics.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


# ----------------------------------------------------------------------------- ESD
# speaker -> (transcript encoding, [(utt number, subset, text)])
ESD_EMOTION_NAMES_EN = {"Neutral": "Neutral", "Angry": "Angry", "Happy": "Happy", "Sad": "Sad",
                        "Surprise": "Surprise"}
ESD_EMOTION_NAMES_ZH = {"Neutral": "中立", "Angry": "生气", "Happy": "快乐", "Sad": "伤心",
                        "Surprise": "惊喜"}
ESD_SPEAKERS: Dict[str, Tuple[str, List[Tuple[int, str, str]]]] = {
    "0001": ("gb2312", [(1, "evaluation", "打远一看，它们的确很是美丽，"),
                        (351, "train", "他们是在上班的路上。")]),
    "0003": ("utf-16", [(702, "test", "我们明天去公园。"),
                        (1060, "train", "这件事情让人难过。")]),
    "0011": ("utf-8", [(1, "train", "Author of the danger trail, Philip Steels, etc."),
                       (1402, "evaluation", "A raging fire was in his eyes.")]),
    "0014": ("utf-16", [(400, "test", "They ate beef at the butcher shop."),
                        (1100, "train", "Why should I care though?")]),
}


def esd_folder(number: int) -> str:
    for name, first in (("Neutral", 1), ("Angry", 351), ("Happy", 701), ("Sad", 1051), ("Surprise", 1401)):
        if first <= number < first + 350:
            return name
    raise ValueError(number)


def esd_transcript_line(spk: str, number: int, text: str) -> str:
    names = ESD_EMOTION_NAMES_ZH if int(spk) <= 10 else ESD_EMOTION_NAMES_EN
    return f"{spk}_{number:06d}\t{text}\t{names[esd_folder(number)]}"


def make_esd(root: Path, speakers=ESD_SPEAKERS, extra_lines: Optional[Dict[str, List[str]]] = None) -> Path:
    """``<root>/<spk>/<spk>.txt`` in the speaker's encoding (CRLF line ends) and
    ``<root>/<spk>/<Emotion>/<subset>/<spk>_<nnnnnn>.wav`` at 16 kHz."""
    for spk, (encoding, utts) in speakers.items():
        lines = []
        for number, subset, text in utts:
            write_wav(root / spk / esd_folder(number) / subset / f"{spk}_{number:06d}.wav", 16000,
                      freq=150 + number % 300)
            lines.append(esd_transcript_line(spk, number, text))
        lines += (extra_lines or {}).get(spk, [])
        (root / spk / f"{spk}.txt").write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return root


# ----------------------------------------------------------------------------- LJSpeech
LJSPEECH_METADATA = [
    ("LJ001-0001", "Printing, in the only sense with which we are at present concerned, differs from most",
     "Printing, in the only sense with which we are at present concerned, differs from most"),
    ("LJ001-0002", "in being comparatively modern.", "in being comparatively modern."),
    ("LJ002-0026", "in the three years between 1813 and 1816,",
     "in the three years between eighteen thirteen and eighteen sixteen,"),
]


def make_ljspeech(root: Path, metadata=LJSPEECH_METADATA) -> Path:
    """``<root>/metadata.csv`` (id|transcription|normalized) and ``<root>/wavs/<id>.wav`` at 22,050 Hz."""
    for i, (utt, _, _) in enumerate(metadata):
        write_wav(root / "wavs" / f"{utt}.wav", 22050, freq=180 + 30 * i)
    (root / "metadata.csv").write_text("".join("|".join(r) + "\n" for r in metadata), encoding="utf-8")
    return root


# ----------------------------------------------------------------------------- Baker
BAKER_LABELS = [
    ("000001", "卡尔普#2陪外孙#1玩滑梯#4。", "ka2 er2 pu3 pei2 wai4 sun1 wan2 hua2 ti1"),
    ("000002", "假语村言#2别再#1拥抱我#4。", "jia2 yu3 cun1 yan2 bie2 zai4 yong1 bao4 wo3"),
    ("000003", "宝马#1配挂#1跛骡鞍#3，貂蝉#1怨枕#2董翁榻#4。",
     "bao2 ma3 pei4 gua4 bo3 luo2 an1 diao1 chan2 yuan4 zhen3 dong3 weng1 ta4"),
]


def baker_label_text(labels=BAKER_LABELS) -> str:
    return "".join(f"{utt}\t{text}\n\t{pinyin}\n" for utt, text, pinyin in labels)


def make_baker(root: Path, labels=BAKER_LABELS) -> Path:
    """``<root>/ProsodyLabeling/000001-010000.txt`` and ``<root>/Wave/<id>.wav`` at 48 kHz.

    The label file is written with a UTF-8 byte-order mark and CRLF line ends, both of which
    the data prep must tolerate.
    """
    for i, (utt, _, _) in enumerate(labels):
        write_wav(root / "Wave" / f"{utt}.wav", 48000, freq=200 + 25 * i)
    label_file = root / "ProsodyLabeling" / "000001-010000.txt"
    label_file.parent.mkdir(parents=True, exist_ok=True)
    label_file.write_bytes(b"\xef\xbb\xbf" + baker_label_text(labels).replace("\n", "\r\n").encode("utf-8"))
    return root
