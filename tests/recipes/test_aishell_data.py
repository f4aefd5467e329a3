"""egs/aishell/poly1/local/prepare_aishell.py on a fabricated AISHELL-1 tree (the release's real file names)."""
import subprocess
import sys
from pathlib import Path

from corpus_fabrication import read_table, write_wav

RECIPE = Path(__file__).resolve().parents[2] / "egs" / "aishell" / "poly1"

TRANSCRIPT = """BAC009S0002W0122 而 对 楼市 成交 抑制 作用 最 大 的 限 购
BAC009S0002W0123 也 成为 地方 政府 的 眼中 钉
BAC009S0724W0121 甚至 出现 交易 几乎 停滞 的 情况
BAC009S0764W0121 一二 线 城市 虽然 也 处于 调整 中
BAC009S0913W0121 但 因为 聚集 了 过多 公共 资源
"""
SPEAKER_INFO = "0002 F\n0724 M\n0764 F\n"        # 0913 missing: unknown gender


def make_aishell(root: Path) -> Path:
    layout = {"train": ["S0002/BAC009S0002W0122", "S0002/BAC009S0002W0123", "S0002/BAC009S0002W0999"],
              "dev": ["S0724/BAC009S0724W0121"], "test": ["S0764/BAC009S0764W0121", "S0913/BAC009S0913W0121"]}
    for s, utts in layout.items():
        for u in utts:
            write_wav(root / "data_aishell" / "wav" / s / f"{u}.wav", 16000)
    (root / "data_aishell" / "transcript").mkdir(parents=True)
    (root / "data_aishell" / "transcript" / "aishell_transcript_v0.8.txt").write_text(TRANSCRIPT, encoding="utf-8")
    (root / "resource_aishell").mkdir()
    (root / "resource_aishell" / "speaker.info").write_text(SPEAKER_INFO)
    return root


def run(root: Path, out: Path):
    return subprocess.run([sys.executable, str(RECIPE / "local" / "prepare_aishell.py"), "--root", str(root),
                           "--out", str(out), "--lang_dir", str(out / "lang")], capture_output=True, text=True)


def test_data_dirs_match_corpus(tmp_path):
    root = make_aishell(tmp_path / "aishell")
    proc = run(root, tmp_path / "data")
    assert proc.returncode == 0, proc.stderr
    d = tmp_path / "data"
    assert read_table(d / "train" / "text") == [("S0002-BAC009S0002W0122", "而对楼市成交抑制作用最大的限购"),
                                                ("S0002-BAC009S0002W0123", "也成为地方政府的眼中钉")]
    assert "1 wav(s) without transcript left out (e.g. ['BAC009S0002W0999'])" in proc.stderr
    assert read_table(d / "train" / "utt2gender") == [("S0002-BAC009S0002W0122", "female"),
                                                      ("S0002-BAC009S0002W0123", "female")]
    assert read_table(d / "dev" / "utt2gender") == [("S0724-BAC009S0724W0121", "male")]
    # speaker 0913 is not in speaker.info: its utterance has no gender line (unknown), the other has one
    assert read_table(d / "test" / "utt2gender") == [("S0764-BAC009S0764W0121", "female")]
    assert read_table(d / "test" / "utt2spk") == [("S0764-BAC009S0764W0121", "S0764"), ("S0913-BAC009S0913W0121", "S0913")]
    wav = dict(read_table(d / "test" / "wav.scp"))
    assert wav["S0913-BAC009S0913W0121"].endswith("data_aishell/wav/test/S0913/BAC009S0913W0121.wav")
    assert (d / "lang" / "gender.txt").read_text().split() == ["female", "male"]
    from parastyle.data.datadir import validate_data_dir
    for s in ("train", "dev", "test"):
        assert validate_data_dir(str(d / s), no_feats=True, lang_dir=str(d / "lang")) == []


def test_bad_speaker_info_line_is_named(tmp_path):
    root = make_aishell(tmp_path / "aishell")
    (root / "resource_aishell" / "speaker.info").write_text("0002 F\n0724 X\n")
    proc = run(root, tmp_path / "data")
    assert proc.returncode == 1
    assert "speaker.info:2: expected '<speaker number> M|F', got '0724 X'" in proc.stderr


def test_missing_transcript_file(tmp_path):
    root = make_aishell(tmp_path / "aishell")
    (root / "data_aishell" / "transcript" / "aishell_transcript_v0.8.txt").unlink()
    proc = run(root, tmp_path / "data")
    assert proc.returncode == 1 and "aishell_transcript_v0.8.txt: AISHELL-1 transcript not found" in proc.stderr
