"""Kaldi data directories: reading, validation and atomic writing.

A data directory holds one table file per kind of information, one ``<key> <value>`` line
per entry, keys unique and sorted in C-locale (byte) order:

=====================  =========  ==========================================================
file                   key        value
=====================  =========  ==========================================================
``utt2spk``            utterance  speaker id (required; defines the utterance set)
``spk2utt``            speaker    its utterances, sorted (required; derived from utt2spk)
``wav.scp``            recording  a path, a ``cmd |`` pipe or an ark location (``x.ark:123``)
``segments``           utterance  ``<recording> <start_s> <end_s>`` (optional)
``text``               utterance  transcription
``utt2dur``            utterance  duration in seconds (> 0)
``utt2num_frames``     utterance  number of feature frames (> 0)
``feats.scp``          utterance  ark location of the feature matrix
``utt2<factor>``       utterance  one label of a style factor (emotion, gender, age, ...)
``utt2caption``        utterance  free-text style description
``utt2tags``           utterance  space-separated style tags
=====================  =========  ==========================================================

``text``, ``feats.scp``, ``utt2dur``, ``utt2num_frames`` and ``segments`` (when present) must
cover exactly the utterances of ``utt2spk``; factor, caption and tag files may omit
utterances (an absent line means *unknown*). The speaker of an utterance must sort with it:
sorting ``utt2spk`` by speaker must give the same order as sorting by utterance, which holds
when speaker ids are prefixes of utterance ids (Kaldi's ``validate_data_dir.sh`` requires it).
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Set, Tuple

from parastyle.fileio import DataError, PathLike, atomic_write, c_sort_key, read_kv, read_list

#: ``utt2*`` files that are not style factors.
RESERVED_UTT2 = frozenset({"utt2spk", "utt2dur", "utt2num_frames", "utt2caption", "utt2tags",
                           "utt2uniq", "utt2num_samples",
                           # synthesis dirs (prompt, reproduced reference, best-of-N group) and unit tables
                           "utt2prompt", "utt2ref", "utt2group", "utt2phones", "utt2tokens", "utt2num_tokens"})
#: Utterance-keyed files whose key set must equal the utterance set when present.
UTT_FULL_FILES = ("text", "segments", "feats.scp", "utt2dur", "utt2num_frames", "utt2uniq", "vad.scp")
#: Utterance-keyed files that may omit utterances (besides the factor files).
UTT_PARTIAL_FILES = ("utt2caption", "utt2tags", "utt2num_samples", "utt2prompt", "utt2ref", "utt2group",
                     "utt2phones", "utt2tokens", "utt2num_tokens")
#: Factor files that Kaldi's validate_data_dir.sh requires to cover every utterance.
KALDI_FULL_FACTOR_FILES = ("utt2lang", "utt2warp")
#: Words Kaldi does not allow in ``text``.
KALDI_ILLEGAL_TEXT_WORDS = ("<s>", "</s>", "#0")
#: Recording-keyed files.
RECO_FILES = ("wav.scp", "reco2dur", "reco2file_and_channel")
#: Speaker-keyed files other than spk2utt (which is always regenerated from utt2spk).
SPK_FILES = ("spk2gender", "cmvn.scp")
#: Identity of the feature archives ``feats.scp`` points into (see :func:`check_feats_arks`).
ARK_RECORD = "feats_arks"
#: Plain files copied unchanged when a data directory is subset, fixed or split.
COPIED_FILES = ("feats_conf.yaml", "frame_shift", ARK_RECORD)
_ARK_LOCATION = re.compile(r"^(?P<path>.+\.ark):\d+(\[[^\]]*\])?$")
_ARK_HASH_BYTES = 1 << 16

_FACTOR_FILE = re.compile(r"^utt2([A-Za-z0-9_]+)$")


def write_frame_shift(data_dir: PathLike, seconds: float) -> None:
    """Write Kaldi's ``<data_dir>/frame_shift`` (the features' frame shift in seconds), atomically."""
    with atomic_write(Path(data_dir) / "frame_shift") as f:
        f.write(f"{float(seconds):.10g}\n")


def read_frame_shift(data_dir: PathLike) -> Optional[float]:
    """The frame shift in seconds from ``<data_dir>/frame_shift``, or None when the file is absent."""
    p = Path(data_dir) / "frame_shift"
    if not p.is_file():
        return None
    text = p.read_bytes().decode("utf-8", "replace").strip()
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise DataError(f"{p}: expected one positive number (seconds), got {text!r}")
    return value


def unsafe_id(key: str) -> Optional[str]:
    """Why an utterance id cannot be used as a file name (it becomes one: per-utterance outputs,
    synthesised wavs, ``utt2pred`` joins), or None: ``/`` or ``..`` anywhere, or the id ``.``."""
    if "/" in key or ".." in key or key == ".":
        return ("contains '/' or '..' (utterance ids become file names, and such an id would name a file "
                "in another directory); rename the utterance")
    return None


def ark_identity(path: PathLike) -> str:
    """``"<size> <mtime_ns> <sha256 of the first and last 64 KiB>"`` of an archive file."""
    import hashlib
    p = Path(path)
    st = p.stat()
    h = hashlib.sha256()
    with open(p, "rb") as f:
        h.update(f.read(_ARK_HASH_BYTES))
        if st.st_size > _ARK_HASH_BYTES:
            f.seek(max(_ARK_HASH_BYTES, st.st_size - _ARK_HASH_BYTES))
            h.update(f.read())
    return f"{st.st_size} {st.st_mtime_ns} {h.hexdigest()[:32]}"


def write_ark_record(data_dir: PathLike, arks: Iterable[PathLike]) -> None:
    """Record the identity of ``arks`` in ``<data_dir>/feats_arks`` (one ``<ark path> <identity>`` line each)."""
    from parastyle.fileio import write_kv
    write_kv(Path(data_dir) / ARK_RECORD, {str(Path(a).resolve()): ark_identity(a) for a in arks})


def ark_of_location(location: str) -> Optional[str]:
    """The archive path of a ``feats.scp`` value ``<file.ark>:<offset>[slice]`` (None for other forms)."""
    m = _ARK_LOCATION.match(location.strip())
    return m.group("path") if m else None


def check_feats_arks(data_dir: PathLike, feats_scp: Optional[Mapping[str, str]] = None) -> List[str]:
    """Problems with the archives ``<data_dir>/feats.scp`` points into, against ``feats_arks``.

    ``feats_arks`` is written by feature extraction and copied with ``feats.scp`` by subset, split,
    fix and combine. A data dir made from another one shares its archives; if that one is
    re-extracted, its archives are replaced (size, modification time or content differ) and the
    copy's ``feats.scp`` offsets point into other data: each such archive is a problem naming the
    utterance that uses it. No ``feats_arks``: nothing is checked. An archive that is not in the
    record (``feats.scp`` written by another tool) is logged, not refused.
    """
    import logging
    d = Path(data_dir)
    rec_path = d / ARK_RECORD
    if not rec_path.is_file():
        return []
    try:
        record = read_kv(rec_path)
    except DataError as e:
        return [str(e)]
    if feats_scp is None:
        scp_path = d / "feats.scp"
        if not scp_path.is_file():
            return []
        feats_scp = scan_table(scp_path).values()
    first_user: Dict[str, str] = {}
    for utt, loc in feats_scp.items():
        ark = ark_of_location(loc)
        if ark is not None and ark not in first_user:
            first_user[ark] = utt
    problems: List[str] = []
    unrecorded = []
    for ark, utt in first_user.items():
        key = str(Path(ark).resolve()) if not Path(ark).is_absolute() else ark
        want = record.get(key, record.get(ark))
        if want is None:
            unrecorded.append(ark)
            continue
        if not Path(ark).is_file():
            problems.append(f"{d}/feats.scp: utterance {utt!r}: archive {ark} no longer exists (removed by a "
                            f"re-extraction of the data dir it came from?); re-create {d} from its source data "
                            f"dir or re-extract it")
            continue
        have = ark_identity(ark)
        if have != want:
            problems.append(f"{d}/feats.scp: utterance {utt!r}: archive {ark} changed since {d} was written "
                            f"(recorded in {rec_path}: size/mtime/hash {want}; now {have}): it was rewritten, "
                            f"e.g. by re-extracting the data dir it came from, so the offsets of {d}/feats.scp "
                            f"no longer point at its features; re-create {d} (utils/subset_data_dir.sh, "
                            f"utils/combine_data.sh, ...) from the re-extracted dir or re-extract {d}")
    if unrecorded:
        logging.getLogger(__name__).warning("%s: %d archive(s) used by feats.scp are not in %s (not checked): %s",
                                            d, len(unrecorded), rec_path, unrecorded[:3])
    return problems


def is_factor_file(name: str) -> bool:
    """True for ``utt2<factor>`` file names that hold a style factor (not a reserved utt2 file)."""
    return bool(_FACTOR_FILE.match(name)) and name not in RESERVED_UTT2


def factor_file_names(path: PathLike) -> List[str]:
    """Sorted ``utt2<factor>`` file names present in a data directory."""
    path = Path(path)
    return sorted(p.name for p in path.iterdir() if p.is_file() and is_factor_file(p.name))


def table_file_names(path: PathLike) -> List[str]:
    """All table files of a data directory this module knows how to subset, sorted."""
    path = Path(path)
    known = ("utt2spk", "spk2utt") + UTT_FULL_FILES + UTT_PARTIAL_FILES + RECO_FILES + SPK_FILES
    names = [n for n in known if (path / n).is_file()]
    return sorted(names + factor_file_names(path))


def spk2utt_from_utt2spk(utt2spk: Mapping[str, str]) -> Dict[str, List[str]]:
    """Speaker -> sorted utterance list, speakers in C order (what ``utt2spk_to_spk2utt.pl`` gives
    for a valid directory)."""
    out: Dict[str, List[str]] = {}
    for utt in sorted(utt2spk, key=c_sort_key):
        out.setdefault(utt2spk[utt], []).append(utt)
    return {spk: out[spk] for spk in sorted(out, key=c_sort_key)}


# ----------------------------------------------------------------------------------------------
# Lenient table scanning (collects every problem instead of stopping at the first)
# ----------------------------------------------------------------------------------------------

@dataclass
class ScannedTable:
    """A table file read without stopping at problems.

    ``entries`` maps each key to ``(line_number, value)`` of its first occurrence;
    ``duplicates`` lists ``(line, key, value, first_line)`` of repeated keys; ``problems``
    holds formatted ``file:line: message`` strings (unsorted, duplicate, blank line, ...).
    """
    path: Path
    entries: Dict[str, Tuple[int, str]] = field(default_factory=dict)
    duplicates: List[Tuple[int, str, str, int]] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)

    def values(self) -> Dict[str, str]:
        """Key -> value of the first occurrence of each key."""
        return {k: v for k, (_, v) in self.entries.items()}

    def line(self, key: str) -> int:
        return self.entries[key][0]


def scan_table(path: PathLike) -> ScannedTable:
    """Read a Kaldi table file, recording every format problem with its line number.

    Problems found: undecodable UTF-8, carriage returns, blank lines, leading/trailing
    whitespace, keys out of C-locale order, duplicate keys (naming the first occurrence).
    Empty values are *not* problems here (their meaning depends on the file).
    """
    path = Path(path)
    table = ScannedTable(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        table.problems.append(f"{path}: file not found")
        return table
    if raw and not raw.endswith(b"\n"):
        table.problems.append(f"{path}: last line has no newline at its end")
    prev: Optional[str] = None
    lines = raw.split(b"\n") if raw else []
    if raw.endswith(b"\n"):
        lines.pop()
    for n, bline in enumerate(lines, 1):
        try:
            line = bline.decode("utf-8")
        except UnicodeDecodeError as e:
            table.problems.append(f"{path}:{n}: not valid UTF-8 ({e.reason} at byte {e.start})")
            continue
        if "\r" in line:
            table.problems.append(f"{path}:{n}: carriage return (Windows line ending); use Unix line endings")
            line = line.replace("\r", "")
        if not line.strip():
            table.problems.append(f"{path}:{n}: blank line (expected '<key> <value>')")
            continue
        if line != line.strip():
            table.problems.append(f"{path}:{n}: leading or trailing whitespace in {line!r}")
        parts = line.strip().split(maxsplit=1)
        key, value = parts[0], (parts[1].strip() if len(parts) > 1 else "")
        if key in table.entries:
            first = table.entries[key][0]
            table.duplicates.append((n, key, value, first))
            table.problems.append(f"{path}:{n}: duplicate key {key!r} (first seen on line {first})")
            continue
        if prev is not None and c_sort_key(key) < c_sort_key(prev):
            table.problems.append(f"{path}:{n}: key {key!r} is not sorted (comes after {prev!r}); "
                                  f"sort with LC_ALL=C sort or fix with utils/fix_data_dir.sh")
        table.entries[key] = (n, value)
        prev = key
    return table


# ----------------------------------------------------------------------------------------------
# Value checks, one per file kind; each returns an error message or None
# ----------------------------------------------------------------------------------------------

def _single_token(value: str) -> Optional[str]:
    if not value:
        return "empty value"
    if len(value.split()) != 1:
        return f"expected one token, got {value!r}"
    return None


def _tokens(value: str) -> Optional[str]:
    return "empty value" if not value else None


def _positive_float(value: str) -> Optional[str]:
    try:
        x = float(value)
    except ValueError:
        return f"expected a number, got {value!r}"
    if not x > 0:
        return f"non-positive value {value!r} (expected > 0)"
    return None


def _positive_int(value: str) -> Optional[str]:
    try:
        x = int(value)
    except ValueError:
        return f"expected an integer, got {value!r}"
    if x <= 0:
        return f"non-positive value {value!r} (expected > 0)"
    return None


def _wav_entry(value: str) -> Optional[str]:
    if not value:
        return "empty value"
    if value.startswith("~"):
        return f"entry {value!r} starts with '~' (no tilde expansion happens; use the full path)"
    if value.endswith("|"):
        return None if value[:-1].strip() else "empty command before '|'"
    if len(value.split()) != 1:
        return f"entry {value!r} has spaces but is not a pipe ('cmd |'); quote-free paths only"
    return None


def _text(value: str) -> Optional[str]:
    if not value.strip():
        return "empty transcription"
    odd = sorted({repr(c) for c in value if c.isspace() and c not in " \t"})
    if odd:
        return f"unusual whitespace character(s) {', '.join(odd)} (Kaldi allows space and tab only)"
    bad = [w for w in value.split() if w in KALDI_ILLEGAL_TEXT_WORDS]
    if bad:
        return f"illegal word(s) {', '.join(bad)} (reserved by Kaldi)"
    return None


def parse_segment(value: str) -> Tuple[str, float, float]:
    """Parse ``<recording> <start> <end>``; raise ValueError with a description if malformed."""
    parts = value.split()
    if len(parts) != 3:
        raise ValueError(f"expected '<recording> <start> <end>', got {value!r}")
    try:
        start, end = float(parts[1]), float(parts[2])
    except ValueError:
        raise ValueError(f"start/end are not numbers in {value!r}") from None
    if start < 0:
        raise ValueError(f"negative start time {parts[1]}")
    if end <= start:
        raise ValueError(f"end time {parts[2]} <= start time {parts[1]}")
    return parts[0], start, end


def _segment(value: str) -> Optional[str]:
    try:
        parse_segment(value)
    except ValueError as e:
        return str(e)
    return None


def _gender(value: str) -> Optional[str]:
    return None if value in ("m", "f") else f"expected 'm' or 'f', got {value!r}"


def _file_and_channel(value: str) -> Optional[str]:
    parts = value.split()
    if len(parts) != 2 or parts[1] not in ("A", "B", "1"):
        return f"expected '<file> <channel>' with channel A or B, got {value!r}"
    return None


def _any_nonempty(value: str) -> Optional[str]:
    return "empty value" if not value.strip() else None


VALUE_CHECKS = {
    "utt2spk": _single_token, "spk2utt": _tokens, "wav.scp": _wav_entry, "segments": _segment,
    "text": _text, "utt2dur": _positive_float, "utt2num_frames": _positive_int,
    "utt2num_samples": _positive_int, "feats.scp": _single_token, "utt2caption": _any_nonempty,
    "utt2tags": _tokens, "utt2uniq": _single_token, "reco2dur": _positive_float,
    "reco2file_and_channel": _file_and_channel, "spk2gender": _gender, "cmvn.scp": _single_token,
    "vad.scp": _single_token,
}


def value_check(name: str):
    """The value check of a table file name (factor files hold one label token)."""
    if name in VALUE_CHECKS:
        return VALUE_CHECKS[name]
    if is_factor_file(name):
        return _single_token
    return _any_nonempty


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------

def _compare_keys(problems: List[str], table: ScannedTable, utts: ScannedTable, what: str,
                  must_cover: bool) -> None:
    """Report keys of ``table`` not in ``utts`` and (if ``must_cover``) utterances it lacks."""
    for key, (n, _) in table.entries.items():
        if key not in utts.entries:
            problems.append(f"{table.path}:{n}: {what} {key!r} is not in {utts.path.name} "
                            f"({utts.path})")
    if must_cover:
        for key, (n, _) in utts.entries.items():
            if key not in table.entries:
                problems.append(f"{utts.path}:{n}: utterance {key!r} is missing from {table.path}")


def validate_data_dir(path: PathLike, no_feats: bool = False, no_wav: bool = False,
                      no_text: bool = False, lang_dir: Optional[PathLike] = None,
                      no_spk_sort: bool = False) -> List[str]:
    """Check a data directory; return every problem found as ``"file:line: message"``.

    Checks (Kaldi's ``utils/validate_data_dir.sh`` plus the style files): every table sorted
    and unique; ``utt2spk``/``spk2utt`` consistent; speaker order compatible with utterance
    order; ``text`` (unless ``no_text``), ``feats.scp`` (unless ``no_feats``), ``utt2dur``,
    ``utt2num_frames`` and ``segments`` keys equal to the utterance set; wav.scp (unless
    ``no_wav``) covering the utterances or the segments' recordings, with no unused
    recording; segments end > start; positive durations and frame counts; factor, caption and
    tag files only naming known utterances, with non-empty values; with ``lang_dir``, every
    factor label listed in ``<lang_dir>/<factor>.txt`` (and tags in ``tags.txt`` if present).
    ``no_spk_sort`` skips the speaker-order check (Kaldi's ``--no-spk-sort``).
    An empty list means the directory is valid.
    """
    path = Path(path)
    if not path.is_dir():
        return [f"{path}: not a directory"]
    problems: List[str] = []
    scanned: Dict[str, ScannedTable] = {}

    def scan(name: str) -> ScannedTable:
        t = scan_table(path / name)
        problems.extend(t.problems)
        check = value_check(name)
        for key, (n, value) in t.entries.items():
            msg = check(value)
            if msg:
                problems.append(f"{t.path}:{n}: {msg} for key {key!r}")
        scanned[name] = t
        return t

    if not (path / "utt2spk").is_file():
        return [f"{path / 'utt2spk'}: file not found (every data directory needs utt2spk)"]
    utt2spk = scan("utt2spk")
    u2s = utt2spk.values()
    if not u2s:
        problems.append(f"{utt2spk.path}: no utterances (empty file)")
    for utt, (n, _) in utt2spk.entries.items():
        msg = unsafe_id(utt)
        if msg:
            problems.append(f"{utt2spk.path}:{n}: utterance id {utt!r} {msg}")

    # Speaker order must agree with utterance order (speaker ids prefix utterance ids).
    prev_spk: Optional[str] = None
    prev_utt: Optional[str] = None
    for utt in ([] if no_spk_sort else sorted(utt2spk.entries, key=c_sort_key)):
        spk = u2s[utt]
        if prev_spk is not None and spk != prev_spk and c_sort_key(spk) < c_sort_key(prev_spk):
            problems.append(
                f"{utt2spk.path}:{utt2spk.line(utt)}: utterance {utt!r} of speaker {spk!r} sorts after "
                f"{prev_utt!r} of speaker {prev_spk!r}: sorting by speaker differs from sorting by "
                f"utterance; make each speaker id a prefix of its utterance ids")
        prev_spk, prev_utt = spk, utt

    # spk2utt must be exactly what utt2spk implies.
    spk2utt_path = path / "spk2utt"
    if not spk2utt_path.is_file():
        problems.append(f"{spk2utt_path}: file not found (create it with utils/utt2spk_to_spk2utt.pl "
                        f"or utils/fix_data_dir.sh)")
    else:
        spk2utt = scan("spk2utt")
        listed: Dict[str, int] = {}
        for spk, (n, value) in spk2utt.entries.items():
            utts = value.split()
            if [c_sort_key(u) for u in utts] != sorted(c_sort_key(u) for u in utts):
                problems.append(f"{spk2utt.path}:{n}: utterances of speaker {spk!r} are not sorted")
            for utt in utts:
                if utt in listed:
                    problems.append(f"{spk2utt.path}:{n}: utterance {utt!r} listed again (first on line "
                                    f"{listed[utt]}); utt2spk/spk2utt mismatch")
                    continue
                listed[utt] = n
                if utt not in u2s:
                    problems.append(f"{spk2utt.path}:{n}: utterance {utt!r} of speaker {spk!r} is not in "
                                    f"{utt2spk.path}; utt2spk/spk2utt mismatch")
                elif u2s[utt] != spk:
                    problems.append(f"{spk2utt.path}:{n}: utterance {utt!r} listed under speaker {spk!r} "
                                    f"but {utt2spk.path}:{utt2spk.line(utt)} gives speaker {u2s[utt]!r}; "
                                    f"utt2spk/spk2utt mismatch")
        for utt, (n, _) in utt2spk.entries.items():
            if utt not in listed:
                problems.append(f"{utt2spk.path}:{n}: utterance {utt!r} (speaker {u2s[utt]!r}) is missing "
                                f"from {spk2utt.path}; utt2spk/spk2utt mismatch")

    # Transcriptions.
    if not no_text:
        if not (path / "text").is_file():
            problems.append(f"{path / 'text'}: file not found (use --no-text for a directory without "
                            f"transcriptions)")
        else:
            _compare_keys(problems, scan("text"), utt2spk, "utterance", must_cover=True)
    elif (path / "text").is_file():
        _compare_keys(problems, scan("text"), utt2spk, "utterance", must_cover=True)

    # Audio: wav.scp with or without segments.
    has_wav = (path / "wav.scp").is_file()
    if has_wav or not no_wav:
        if not has_wav:
            problems.append(f"{path / 'wav.scp'}: file not found (use --no-wav for a features-only directory)")
        else:
            wav = scan("wav.scp")
            if (path / "segments").is_file():
                seg = scan("segments")
                _compare_keys(problems, seg, utt2spk, "utterance", must_cover=True)
                used: Set[str] = set()
                for utt, (n, value) in seg.entries.items():
                    reco = value.split()[0] if value.split() else ""
                    used.add(reco)
                    if reco and reco not in wav.entries:
                        problems.append(f"{seg.path}:{n}: utterance {utt!r} refers to recording {reco!r} "
                                        f"which is not in {wav.path}")
                for reco, (n, _) in wav.entries.items():
                    if reco not in used:
                        problems.append(f"{wav.path}:{n}: recording {reco!r} is used by no segment in "
                                        f"{seg.path} (Kaldi requires the same recording set)")
            else:
                _compare_keys(problems, wav, utt2spk, "utterance", must_cover=True)
            for name in ("reco2dur", "reco2file_and_channel"):
                if (path / name).is_file():
                    t = scan(name)
                    for reco, (n, _) in t.entries.items():
                        if reco not in wav.entries:
                            problems.append(f"{t.path}:{n}: recording {reco!r} is not in {wav.path}")
                    if name == "reco2dur" or (name == "reco2file_and_channel" and (path / "segments").is_file()):
                        for reco, (n, _) in wav.entries.items():
                            if reco not in t.entries:
                                problems.append(f"{wav.path}:{n}: recording {reco!r} is missing from {t.path}")
    elif (path / "segments").is_file():
        _compare_keys(problems, scan("segments"), utt2spk, "utterance", must_cover=True)

    # Features (and the identity of the archives they point into).
    if (path / "feats.scp").is_file():
        _compare_keys(problems, scan("feats.scp"), utt2spk, "utterance", must_cover=True)
        problems.extend(check_feats_arks(path, scanned["feats.scp"].values()))
    elif not no_feats:
        problems.append(f"{path / 'feats.scp'}: file not found (use --no-feats before feature extraction)")
    for name in ("utt2dur", "utt2num_frames", "utt2uniq", "vad.scp"):
        if (path / name).is_file():
            _compare_keys(problems, scan(name), utt2spk, "utterance", must_cover=True)

    # Partial utterance files: style factors, captions, tags.
    factors = factor_file_names(path)
    for name in list(UTT_PARTIAL_FILES) + factors:
        if (path / name).is_file():
            _compare_keys(problems, scan(name), utt2spk, "utterance",
                          must_cover=name in KALDI_FULL_FACTOR_FILES)

    # Speaker-keyed files.
    for name in SPK_FILES:
        if (path / name).is_file():
            t = scan(name)
            speakers = set(u2s.values())
            for spk, (n, _) in t.entries.items():
                if spk not in speakers:
                    problems.append(f"{t.path}:{n}: speaker {spk!r} is not in {utt2spk.path}")
            for spk in sorted(speakers - set(t.entries), key=c_sort_key):
                problems.append(f"{t.path}: speaker {spk!r} is missing")

    # Labels against the vocabularies.
    if lang_dir is not None:
        lang_dir = Path(lang_dir)
        for name in factors:
            factor = name[len("utt2"):]
            vocab_path = lang_dir / f"{factor}.txt"
            if not vocab_path.is_file():
                problems.append(f"{vocab_path}: file not found (vocabulary of factor {factor!r} used by "
                                f"{path / name})")
                continue
            _check_labels(problems, scanned[name], set(read_list(vocab_path)), vocab_path, single=True)
        if (path / "utt2tags").is_file() and (lang_dir / "tags.txt").is_file():
            _check_labels(problems, scanned["utt2tags"], set(read_list(lang_dir / "tags.txt")),
                          lang_dir / "tags.txt", single=False)
    return problems


def _check_labels(problems: List[str], table: ScannedTable, vocab: Set[str], vocab_path: Path,
                  single: bool) -> None:
    for utt, (n, value) in table.entries.items():
        labels = [value] if single else value.split()
        for label in labels:
            if label and label not in vocab:
                problems.append(f"{table.path}:{n}: utterance {utt!r} has label {label!r} which is not in "
                                f"the vocabulary {vocab_path}")


def check_data_dir(path: PathLike, no_feats: bool = False, no_wav: bool = False, no_text: bool = False,
                   lang_dir: Optional[PathLike] = None) -> None:
    """Raise DataError listing every problem :func:`validate_data_dir` finds (nothing if valid)."""
    problems = validate_data_dir(path, no_feats=no_feats, no_wav=no_wav, no_text=no_text, lang_dir=lang_dir)
    if problems:
        raise DataError(f"{path}: invalid data directory ({len(problems)} problem"
                        f"{'s' if len(problems) != 1 else ''}):\n  " + "\n  ".join(problems))


# ----------------------------------------------------------------------------------------------
# Reading a valid directory
# ----------------------------------------------------------------------------------------------

class DataDir:
    """Read access to a Kaldi data directory; tables are loaded lazily and cached.

    Reading is strict: an unsorted or duplicated key, or an empty value, raises DataError
    naming the file and line. Run :func:`validate_data_dir` for a full report.
    """

    def __init__(self, path: PathLike):
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError(f"{self.path}: data directory not found")
        if not (self.path / "utt2spk").is_file():
            raise DataError(f"{self.path / 'utt2spk'}: file not found (every data directory needs utt2spk)")
        self._cache: Dict[str, Optional[Dict[str, str]]] = {}

    def __repr__(self) -> str:
        return f"DataDir({str(self.path)!r})"

    def has(self, name: str) -> bool:
        """True when table file ``name`` exists."""
        return (self.path / name).is_file()

    def table(self, name: str) -> Optional[Dict[str, str]]:
        """Raw ``key -> value`` of table file ``name`` (checked sorted and unique), or None if absent."""
        if name not in self._cache:
            p = self.path / name
            if not p.is_file():
                self._cache[name] = None
            else:
                table = read_kv(p, check_sorted=True)
                check = value_check(name)
                for n, (key, value) in enumerate(table.items(), 1):
                    msg = check(value)
                    if msg:
                        raise DataError(f"{p}:{n}: {msg} for key {key!r}")
                self._cache[name] = table
        return self._cache[name]

    # -- utterances and speakers
    @property
    def utt2spk(self) -> Dict[str, str]:
        return self.table("utt2spk")  # type: ignore[return-value]

    @property
    def utts(self) -> List[str]:
        """Utterance ids in C order (the keys of utt2spk)."""
        return list(self.utt2spk)

    @property
    def spk2utt(self) -> Dict[str, List[str]]:
        """Speaker -> utterances (from spk2utt if present, else derived from utt2spk)."""
        t = self.table("spk2utt")
        if t is None:
            return spk2utt_from_utt2spk(self.utt2spk)
        return {spk: v.split() for spk, v in t.items()}

    @property
    def speakers(self) -> List[str]:
        """Speaker ids in C order."""
        return sorted(set(self.utt2spk.values()), key=c_sort_key)

    # -- audio
    @property
    def wav_scp(self) -> Dict[str, str]:
        t = self.table("wav.scp")
        if t is None:
            raise DataError(f"{self.path / 'wav.scp'}: file not found")
        return t

    @property
    def segments(self) -> Optional[Dict[str, Tuple[str, float, float]]]:
        """utt -> (recording, start_s, end_s), or None without a segments file."""
        t = self.table("segments")
        if t is None:
            return None
        return {utt: parse_segment(v) for utt, v in t.items()}

    # -- text and numeric tables
    @property
    def text(self) -> Optional[Dict[str, str]]:
        return self.table("text")

    @property
    def utt2dur(self) -> Optional[Dict[str, float]]:
        t = self.table("utt2dur")
        return None if t is None else {k: float(v) for k, v in t.items()}

    @property
    def utt2num_frames(self) -> Optional[Dict[str, int]]:
        t = self.table("utt2num_frames")
        return None if t is None else {k: int(v) for k, v in t.items()}

    @property
    def feats_scp(self) -> Optional[Dict[str, str]]:
        return self.table("feats.scp")

    # -- style information
    @property
    def factor_names(self) -> List[str]:
        """Names of the style factors with a ``utt2<factor>`` file, sorted."""
        return [n[len("utt2"):] for n in factor_file_names(self.path)]

    def factor(self, name: str) -> Dict[str, str]:
        """utt -> label for factor ``name``; utterances without a line have an unknown label."""
        t = self.table(f"utt2{name}")
        if t is None or not is_factor_file(f"utt2{name}"):
            raise DataError(f"{self.path / ('utt2' + name)}: no such factor file (factors here: "
                            f"{', '.join(self.factor_names) or 'none'})")
        return t

    @property
    def captions(self) -> Optional[Dict[str, str]]:
        return self.table("utt2caption")

    @property
    def tags(self) -> Optional[Dict[str, List[str]]]:
        t = self.table("utt2tags")
        return None if t is None else {k: v.split() for k, v in t.items()}


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------

Tables = Dict[str, Dict[str, str]]


def _write_table(path: Path, table: Mapping[str, str]) -> None:
    with atomic_write(path) as f:
        for key in sorted(table, key=c_sort_key):
            value = table[key]
            if "\n" in value:
                raise DataError(f"{path}: value of {key!r} contains a newline")
            f.write(f"{key} {value}\n" if value != "" else f"{key}\n")


def write_tables(dst: PathLike, tables: Mapping[str, Mapping[str, str]],
                 copy_files: Iterable[PathLike] = (), replace_dir: bool = True) -> None:
    """Write a data directory from ``file name -> {key: value}`` tables, atomically.

    ``spk2utt`` is regenerated from ``utt2spk``; every table is written C-sorted.
    With ``replace_dir`` the whole directory is built under a temporary name and renamed into
    place (an existing ``dst`` is replaced); otherwise (in-place rewrite of a directory that
    holds other things, e.g. its wav files) each file is replaced atomically and the previous
    versions are kept in ``dst/.backup/``, removing table files that are no longer produced.
    """
    dst = Path(dst)
    if "utt2spk" not in tables:
        raise DataError(f"{dst}: cannot write a data directory without utt2spk")
    tables = dict(tables)
    tables["spk2utt"] = {spk: " ".join(u) for spk, u in spk2utt_from_utt2spk(tables["utt2spk"]).items()}
    if replace_dir:
        if dst.is_dir():
            foreign = sorted(p.name for p in dst.iterdir()
                             if p.is_dir() and not (p.name.startswith("split") or p.name == ".backup"))
            if foreign:
                raise DataError(f"{dst}: refusing to replace this directory: it holds {', '.join(foreign)}/ "
                                f"(not only data-directory files); choose another output directory")
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.parent / f".{dst.name}.tmp.{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            for name, table in tables.items():
                _write_table(tmp / name, table)
            for src in copy_files:
                shutil.copy2(src, tmp / Path(src).name)
            old = dst.parent / f".{dst.name}.old.{os.getpid()}"
            if dst.exists():
                os.replace(dst, old)
            os.replace(tmp, dst)
            if old.exists():
                shutil.rmtree(old)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
    else:
        backup = dst / ".backup"
        backup.mkdir(parents=True, exist_ok=True)
        for name in table_file_names(dst):
            shutil.copy2(dst / name, backup / name)
        for name, table in tables.items():
            _write_table(dst / name, table)
        for name in table_file_names(dst):
            if name not in tables:
                os.unlink(dst / name)


def read_tables(path: PathLike, strict: bool = True) -> Tables:
    """Read every known table file of a data directory into ``name -> {key: value}``.

    ``strict`` raises DataError on the first format problem (unsorted, duplicate, empty value);
    otherwise the first occurrence of each key is kept and problems are left to the caller.
    """
    path = Path(path)
    if not (path / "utt2spk").is_file():
        raise DataError(f"{path / 'utt2spk'}: file not found (every data directory needs utt2spk)")
    if strict:
        d = DataDir(path)
        return {name: dict(d.table(name)) for name in table_file_names(path)}  # type: ignore[arg-type]
    return {name: scan_table(path / name).values() for name in table_file_names(path)}


def subset_tables(tables: Mapping[str, Mapping[str, str]], utts: Iterable[str]) -> Tables:
    """Restrict every table to the utterances ``utts`` (recordings and speakers follow)."""
    keep = set(utts)
    out: Tables = {}
    u2s = tables["utt2spk"]
    keep &= set(u2s)
    speakers = {u2s[u] for u in keep}
    seg = tables.get("segments")
    recos = {seg[u].split()[0] for u in keep if u in seg} if seg is not None else keep
    for name, table in tables.items():
        if name == "spk2utt":
            continue
        if name in RECO_FILES:
            allowed = recos
        elif name in SPK_FILES:
            allowed = speakers
        else:
            allowed = keep
        out[name] = {k: v for k, v in table.items() if k in allowed}
    return out


def copied_files(src: PathLike) -> List[Path]:
    """Plain (non-table) files of ``src`` carried along when it is subset or fixed."""
    return [Path(src) / n for n in COPIED_FILES if (Path(src) / n).is_file()]


def read_utt_list(path: PathLike) -> List[str]:
    """First field of each line of a list file (utterance or speaker ids)."""
    out = []
    from parastyle.fileio import iter_lines
    for n, line in iter_lines(path):
        if not line.strip():
            raise DataError(f"{path}:{n}: blank line (expected an id)")
        out.append(line.split()[0])
    return out


__all__ = [
    "DataDir", "DataError", "validate_data_dir", "check_data_dir", "scan_table", "ScannedTable",
    "write_tables", "read_tables", "subset_tables", "spk2utt_from_utt2spk", "factor_file_names",
    "table_file_names", "is_factor_file", "parse_segment", "RESERVED_UTT2", "copied_files",
    "read_utt_list", "unsafe_id", "check_feats_arks", "ark_identity", "write_ark_record", "ARK_RECORD",
]
