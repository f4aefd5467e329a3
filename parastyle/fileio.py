"""Small file primitives shared by every module: Kaldi key-value files and atomic writes.

Kaldi table files hold one ``<key> <value>`` pair per line, keys unique and sorted in
C-locale (byte) order. Errors name the file and the 1-based line number.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Dict, Iterable, Iterator, Mapping, Optional, Tuple, Union

PathLike = Union[str, os.PathLike]


class DataError(ValueError):
    """Invalid input data; the message names the file, line and/or utterance."""


def c_sort_key(key: str) -> bytes:
    """Sort key equal to ``LC_ALL=C sort`` order (byte order of the UTF-8 encoding)."""
    return key.encode("utf-8")


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "w", encoding: Optional[str] = "utf-8") -> Iterator:
    """Open a temporary file next to ``path``; rename it to ``path`` only if the block succeeds.

    An exception (or a kill) never leaves a half-written ``path``: at worst a ``.tmp`` file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        kwargs = {} if "b" in mode else {"encoding": encoding}
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def iter_kv(path: PathLike, allow_empty_value: bool = False) -> Iterator[Tuple[int, str, str]]:
    """Yield ``(line_number, key, value)`` for each line of a Kaldi table file.

    The value is the rest of the line after the first run of whitespace, with trailing
    whitespace removed. Blank lines and lines without a value (unless allowed) raise DataError.
    """
    path = Path(path)
    try:
        f = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    with f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                raise DataError(f"{path}:{n}: empty line (expected '<key> <value>')")
            if line != line.strip():
                raise DataError(f"{path}:{n}: leading or trailing whitespace in {line!r}")
            parts = line.split(maxsplit=1)
            key = parts[0]
            value = parts[1].strip() if len(parts) > 1 else ""
            if not value and not allow_empty_value:
                raise DataError(f"{path}:{n}: key {key!r} has no value (expected '<key> <value>')")
            yield n, key, value


def read_kv(path: PathLike, allow_empty_value: bool = False, check_sorted: bool = False) -> Dict[str, str]:
    """Read a Kaldi table file into an insertion-ordered dict.

    Raises DataError on duplicate keys (naming both lines) and, with ``check_sorted``,
    on keys out of C-locale order.
    """
    out: Dict[str, str] = {}
    first_line: Dict[str, int] = {}
    prev: Optional[str] = None
    for n, key, value in iter_kv(path, allow_empty_value):
        if key in out:
            raise DataError(f"{path}:{n}: duplicate key {key!r} (first seen on line {first_line[key]})")
        if check_sorted and prev is not None and c_sort_key(key) < c_sort_key(prev):
            raise DataError(f"{path}:{n}: key {key!r} is not sorted (comes after {prev!r}); "
                            f"sort with LC_ALL=C sort or utils/fix_data_dir.sh")
        out[key] = value
        first_line[key] = n
        prev = key
    return out


def write_kv(path: PathLike, items: Union[Mapping[str, str], Iterable[Tuple[str, str]]], sort: bool = True) -> None:
    """Write ``key value`` lines atomically, C-locale sorted by key unless ``sort=False``."""
    pairs = list(items.items() if isinstance(items, Mapping) else items)
    if sort:
        pairs.sort(key=lambda kv: c_sort_key(kv[0]))
    seen = set()
    with atomic_write(path) as f:
        for key, value in pairs:
            if not key or any(c.isspace() for c in key):
                raise DataError(f"{path}: invalid key {key!r} (keys must be non-empty, without whitespace)")
            if key in seen:
                raise DataError(f"{path}: duplicate key {key!r}")
            seen.add(key)
            value = str(value)
            if "\n" in value:
                raise DataError(f"{path}: value of {key!r} contains a newline")
            f.write(f"{key} {value}\n" if value != "" else f"{key}\n")


def read_list(path: PathLike) -> list:
    """Read a file of one non-empty token per line (e.g. a label vocabulary or utterance list)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        s = line.strip()
        if not s:
            raise DataError(f"{path}:{n}: empty line")
        out.append(s)
    return out


def write_list(path: PathLike, items: Iterable[str]) -> None:
    with atomic_write(path) as f:
        for item in items:
            f.write(f"{item}\n")
