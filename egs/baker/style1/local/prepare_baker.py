#!/usr/bin/env python3
"""Prepare Baker CSMSC (BZNSYP) as a labelled Kaldi data directory.

Reads ``<corpus>/ProsodyLabeling/000001-010000.txt`` (two lines per utterance: ``<id>\\t<text
with prosody marks #1-#4>`` then ``\\t<pinyin>``) and ``<corpus>/Wave/<id>.wav`` (48 kHz).
Writes ``<out>/`` (wav.scp, utt2spk, spk2utt, text without prosody marks, utt2emotion,
utt2gender, utt2language, utt2caption) and ``<lang>/<factor>.txt``. Age is not documented
for the speaker: no utt2age.
"""
import re
import sys
from pathlib import Path

from parastyle.data.corpus_prep import DataError, Utterance, corpus_parser, run_prepare

# The corpus's own label vocabularies (data/lang/<factor>.txt); local/label_map.yaml maps them
# onto a shared label set when corpora are mixed (egs/parameta/style1).
VOCABULARIES = {"emotion": ["neutral"], "gender": ["female"], "language": ["chinese"]}
LABEL_FILE = Path("ProsodyLabeling") / "000001-010000.txt"
TEXT_LINE_RE = re.compile(r"^(\d{6})\s+(\S.*)$")
PROSODY_MARK_RE = re.compile(r"#[1-4]")


def strip_prosody(text: str) -> str:
    """'卡尔普#2陪外孙#1玩滑梯#4。' -> '卡尔普陪外孙玩滑梯。'"""
    return PROSODY_MARK_RE.sub("", text).strip()


def read_labels(path: Path) -> list:
    """[(id, text, pinyin, line number)]; DataError naming the line on a malformed pair."""
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected BZNSYP/{LABEL_FILE})")
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    entries = []
    n = 0
    while n < len(lines):
        m = TEXT_LINE_RE.match(lines[n].strip())
        if not m:
            raise DataError(f"{path}:{n + 1}: expected '<6-digit id>\\t<text with #1-#4>', got {lines[n]!r}")
        if n + 1 >= len(lines) or not lines[n + 1].strip() or TEXT_LINE_RE.match(lines[n + 1].strip()):
            raise DataError(f"{path}:{n + 2}: expected the pinyin line of utterance {m.group(1)}")
        utt_id, marked = m.groups()
        text = strip_prosody(marked)
        if "#" in text:
            raise DataError(f"{path}:{n + 1}: unexpected '#' mark left in {marked!r} (only #1-#4 are known)")
        entries.append((utt_id, text, " ".join(lines[n + 1].split()), n + 1))
        n += 2
    return entries


def collect(corpus: Path, prefix: str) -> list:
    label_path = corpus / LABEL_FILE
    entries = read_labels(label_path)
    spk = f"{prefix}_csmsc"
    factors = {"emotion": "neutral", "gender": "female", "language": "chinese"}
    utts, first_line = [], {}
    for utt_id, text, _pinyin, line in entries:
        if utt_id in first_line:
            raise DataError(f"{label_path}:{line}: utterance {utt_id} already on line {first_line[utt_id]}")
        first_line[utt_id] = line
        wav = corpus / "Wave" / f"{utt_id}.wav"
        if not wav.is_file():
            raise DataError(f"{label_path}:{line}: utterance {utt_id} is listed but {wav} does not exist")
        utts.append(Utterance(utt=f"{spk}-{utt_id}", spk=spk, wav=wav, factors=dict(factors),
                              text=text, source=f"{label_path}:{line}"))
    unlabelled = sorted(p.name for p in (corpus / "Wave").glob("*.wav") if p.stem not in first_line)
    if unlabelled:
        print(f"{corpus / 'Wave'}: {len(unlabelled)} wav file(s) have no entry in {label_path} and are "
              f"not used: {' '.join(unlabelled[:10])}" + (" ..." if len(unlabelled) > 10 else ""),
              file=sys.stderr)
    if not utts:
        raise DataError(f"{label_path}: no utterances")
    return utts


def main(argv=None) -> int:
    parser = corpus_parser(__doc__, "BZNSYP root (holds Wave/, ProsodyLabeling/)", "baker")
    args = parser.parse_args(argv)
    return run_prepare("prepare_baker.py", args, lambda: collect(args.corpus.absolute(), args.prefix), VOCABULARIES)


if __name__ == "__main__":
    sys.exit(main())
