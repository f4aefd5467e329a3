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


def current_umask() -> int:
    """The process umask (read from /proc when possible, so that it is never changed, even briefly)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """Mode of a newly created regular file under the current umask (0644 under umask 022)."""
    return 0o666 & ~current_umask()


#: suffix of the temporary files of :func:`atomic_write` (``.<name>.<random>.tmp``)
TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "w", encoding: Optional[str] = "utf-8") -> Iterator:
    """Open a temporary file next to ``path``; rename it to ``path`` only if the block succeeds.

    An exception (or a kill) never leaves a half-written ``path``: at worst a hidden
    ``.<name>.<random>.tmp`` file. The file gets the mode of an ordinary new file under the umask
    (0644 under umask 022), not the 0600 of ``mkstemp``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, default_file_mode())
    finally:
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


def iter_lines(path: PathLike) -> Iterator[Tuple[int, str]]:
    """Yield ``(line_number, line)`` of a UTF-8 text file, without the line ending (``\\n`` or ``\\r\\n``).

    Bytes that are not UTF-8 raise DataError ``file:line: not valid UTF-8 (...)``, as the data dir
    validator reports them; a carriage return inside a line is an error too."""
    path = Path(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    with f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{n}: not valid UTF-8 ({e.reason} at byte {e.start}); "
                                f"data files must be UTF-8") from None
            line = line.rstrip("\r\n")
            if "\r" in line:
                raise DataError(f"{path}:{n}: carriage return inside the line; use Unix line endings")
            yield n, line


def iter_kv(path: PathLike, allow_empty_value: bool = False) -> Iterator[Tuple[int, str, str]]:
    """Yield ``(line_number, key, value)`` for each line of a Kaldi table file.

    The value is the rest of the line after the first run of whitespace, with trailing
    whitespace removed. Blank lines and lines without a value (unless allowed) raise DataError.
    """
    path = Path(path)
    for n, line in iter_lines(path):
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
    for n, line in iter_lines(path):
        s = line.strip()
        if not s:
            raise DataError(f"{path}:{n}: empty line")
        out.append(s)
    return out


def write_list(path: PathLike, items: Iterable[str]) -> None:
    with atomic_write(path) as f:
        for item in items:
            f.write(f"{item}\n")


class LockedError(RuntimeError):
    """Another live process holds the lock (the message names the lock file and, if known, its pid)."""


class DirLock:
    """An exclusive ``fcntl.flock`` on ``<dir>/.lock``, taken without waiting.

    The kernel releases the lock when its holder exits (even by SIGKILL), so a lock file left by a
    dead process does not block. The file holds the holder's pid and host, for the message.
    """

    def __init__(self, directory: PathLike, name: str = ".lock"):
        self.path = Path(directory) / name
        self._f = None

    def acquire(self) -> "DirLock":
        import fcntl
        import socket
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise LockedError(f"{self.path}: locked by another process ({holder}); is another job using "
                              f"{self.path.parent}? wait for it or stop it") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        with contextlib.suppress(OSError):
            os.fchmod(f.fileno(), default_file_mode())
        self._f = f
        return self

    def release(self) -> None:
        if self._f is not None:
            import fcntl
            fcntl.flock(self._f.fileno(), fcntl.LOCK_UN)
            self._f.close()
            self._f = None

    def __enter__(self) -> "DirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def remove_orphan_tmp(directory: PathLike) -> list:
    """Delete the temporary files that an interrupted :func:`atomic_write` left in ``directory``
    (hidden ``.<name>.<random>.tmp``); returns their paths. Call only while no writer is active
    (e.g. holding the directory's :class:`DirLock`)."""
    d = Path(directory)
    removed = []
    if d.is_dir():
        for p in sorted(d.iterdir()):
            if p.name.startswith(".") and p.name.endswith(TMP_SUFFIX) and p.is_file():
                p.unlink()
                removed.append(p)
    return removed
