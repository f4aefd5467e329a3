"""Feature extraction of a Kaldi data dir into kaldiio archives, in parallel jobs.

For ``nj`` jobs the utterances (C-sorted) are cut into ``nj`` contiguous blocks; job ``j`` writes
``<dump>/feats.<j>.ark`` and reports progress. Only when every job has succeeded are the data
dir's ``utt2num_frames``, ``feats_conf.yaml``, ``frame_shift`` and, last, ``feats.scp`` written (each through a
temporary file and a rename). Any existing ``feats.scp`` is removed before extraction starts, and
each archive is written under a temporary name and renamed into place only when every job has
succeeded, so a ``feats.scp`` never points at a partial archive: a failed or killed run leaves
no ``feats.scp`` at all, and the failing utterance is named in the error.

Data dirs made from this one (subset, split, combine) share its archives. ``<data>/feats_arks``
records each archive's identity (size, modification time, hash of its first and last 64 KiB);
it travels with ``feats.scp``, and reading features (:class:`parastyle.data.dataset.StyleDataset`,
the validator) refuses a dir whose archives were replaced since, e.g. by re-extracting the
parent: the copy's offsets would point at other data (:func:`parastyle.data.datadir.check_feats_arks`).

Input checks: a key repeated in ``wav.scp`` or ``segments`` is an error (naming both lines), as is
a dump dir whose path holds whitespace (``feats.scp`` locations cannot), a truncated WAV file,
or a segment ending more than 0.5 s past its recording (Kaldi's ``--max-overshoot``; smaller
overshoots are truncated and counted in the summary, ``truncated_segments``).
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from parastyle.data.audio import MAX_OVERSHOOT_S
from parastyle.data.datadir import ARK_RECORD, write_ark_record, write_frame_shift
from parastyle.fileio import DataError, atomic_write, c_sort_key, iter_kv, read_kv, write_kv

PathLike = Union[str, os.PathLike]
logger = logging.getLogger(__name__)

# (utt, wav.scp entry, "<file>:<line>", segment or None)
WorkItem = Tuple[str, str, str, Optional[Tuple[float, float]]]


def _unique_lines(path: Path) -> Dict[str, Tuple[int, str]]:
    """``{key: (line, value)}``; a repeated key is an error naming both lines (never the last one wins)."""
    out: Dict[str, Tuple[int, str]] = {}
    for n, key, value in iter_kv(path):
        if key in out:
            raise DataError(f"{path}:{n}: duplicate key {key!r} (first on line {out[key][0]}); "
                            f"remove one of the lines (utils/fix_data_dir.sh drops exact duplicates)")
        out[key] = (n, value)
    return out


def work_items(data_dir: PathLike) -> List[WorkItem]:
    """Every utterance of ``utt2spk`` with its audio source (``wav.scp``, through ``segments`` if present)."""
    from parastyle.data.datadir import parse_segment
    d = Path(data_dir)
    utts = sorted(read_kv(d / "utt2spk"), key=c_sort_key)
    wav = _unique_lines(d / "wav.scp")
    items: List[WorkItem] = []
    if (d / "segments").is_file():
        segs = {}
        for utt, (n, value) in _unique_lines(d / "segments").items():
            try:
                segs[utt] = (n,) + parse_segment(value)
            except ValueError as e:
                raise DataError(f"{d}/segments:{n}: {e}") from None
        for utt in utts:
            if utt not in segs:
                raise DataError(f"{d}/segments: utterance {utt!r} of utt2spk has no segment")
            n, reco, start, end = segs[utt]
            if reco not in wav:
                raise DataError(f"{d}/segments:{n}: recording {reco!r} of {utt!r} is not in {d}/wav.scp")
            line, entry = wav[reco]
            items.append((utt, entry, f"{d}/wav.scp:{line}", (start, end)))
    else:
        for utt in utts:
            if utt not in wav:
                raise DataError(f"{d}/wav.scp: utterance {utt!r} of utt2spk has no entry")
            line, entry = wav[utt]
            items.append((utt, entry, f"{d}/wav.scp:{line}", None))
    return items


def extract_one(frontend, item: WorkItem, stats: Optional[Dict[str, int]] = None) -> np.ndarray:
    """Features ``(T, D)`` float32 of one work item; DataError naming the utterance on any failure.

    ``stats["truncated_segments"]`` counts segments cut at the end of their recording."""
    import torch
    from parastyle.data.audio import load_audio
    utt, entry, where, segment = item
    wav = load_audio(utt, entry, frontend.sample_rate, segment=segment,
                     min_samples=frontend.min_samples, where=where, stats=stats)
    with torch.no_grad():
        feats = frontend(wav)
    if not bool(torch.isfinite(feats).all()):
        raise DataError(f"{where}: utterance {utt!r}: the front-end produced non-finite features")
    return feats.numpy().astype(np.float32, copy=False)


def _tmp_ark(ark: str) -> str:
    p = Path(ark)
    return str(p.with_name(f".{p.name}.tmp"))


def _run_job(job: int, items: List[WorkItem], frontend_conf: Dict[str, Any], ark: str, compress: bool,
             report) -> Tuple[Dict[str, str], Dict[str, int], Dict[str, int]]:
    """Extract ``items`` into the temporary name of ``ark``; ``report(n)`` is called after every utterance.

    Returns ``({utt: "<ark>:offset"}, {utt: num_frames}, stats)``; the locations already name the final
    ``ark``, which the caller renames into place once every job has succeeded.
    """
    import kaldiio
    import torch
    from parastyle.features.frontend import build_frontend
    torch.set_num_threads(1)
    frontend = build_frontend(frontend_conf)
    frames: Dict[str, int] = {}
    stats: Dict[str, int] = {"truncated_segments": 0}
    tmp = _tmp_ark(ark)
    job_scp = f"{tmp}.scp"
    with kaldiio.WriteHelper(f"ark,scp:{tmp},{job_scp}", compression_method=2 if compress else None) as writer:
        for item in items:
            feats = extract_one(frontend, item, stats)
            writer(item[0], feats)
            frames[item[0]] = int(feats.shape[0])
            report(1)
    scp = {}
    for utt, loc in read_kv(job_scp).items():
        if not loc.startswith(tmp + ":"):
            raise DataError(f"extract_feats: unexpected archive location {loc!r} for {utt!r}")
        scp[utt] = ark + loc[len(tmp):]
    os.unlink(job_scp)
    return scp, frames, stats


def _worker(job, items, frontend_conf, ark, compress, q):
    try:
        res = _run_job(job, items, frontend_conf, ark, compress, lambda n: q.put(("progress", n)))
        q.put(("done", job, res))
    except DataError as e:
        q.put(("error", job, str(e)))
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which stops every job
        q.put(("error", job, f"{type(e).__name__}: {e}"))


def extract_feats(data_dir: PathLike, frontend_conf: Dict[str, Any], dump_dir: PathLike, nj: int = 1,
                  compress: bool = False, progress: Optional[bool] = None) -> Dict[str, Any]:
    """Extract features of every utterance of ``data_dir`` (see the module docstring).

    Returns a summary ``{"num_utts", "num_frames", "seconds", "utts_per_s", "nj"}``.
    """
    from tqdm import tqdm
    from parastyle.features.frontend import build_frontend
    d = Path(data_dir)
    frontend = build_frontend(frontend_conf)
    frontend_conf = frontend.to_config()                            # validated, all defaults explicit
    dump = Path(dump_dir).resolve()
    if any(c.isspace() for c in str(dump)):
        raise DataError(f"dump dir {str(dump)!r}: the path contains whitespace, which a Kaldi feats.scp location "
                        f"('<ark>:<offset>') cannot hold; choose a dump dir without spaces")
    items = work_items(d)
    if not items:
        raise DataError(f"{d}/utt2spk: no utterances")
    for name in ("feats.scp", "utt2num_frames", "feats_conf.yaml", "frame_shift", ARK_RECORD):
        (d / name).unlink(missing_ok=True)
    dump.mkdir(parents=True, exist_ok=True)
    nj = max(1, min(int(nj), len(items)))
    bounds = np.linspace(0, len(items), nj + 1).round().astype(int)
    chunks = [items[bounds[j]:bounds[j + 1]] for j in range(nj)]
    arks = [str(dump / f"feats.{j + 1}.ark") for j in range(nj)]
    start = time.time()
    # progress None: a bar on a terminal only; True: always; False: never
    bar = (tqdm(total=len(items), desc=f"extract_feats {d}", unit="utt", mininterval=2.0,
                disable=None if progress is None else False) if progress is not False else None)
    results: Dict[int, Tuple[Dict[str, str], Dict[str, int]]] = {}
    try:
        if nj == 1:
            results[0] = _run_job(0, chunks[0], frontend_conf, arks[0], compress,
                                  (lambda n: bar.update(n)) if bar else (lambda n: None))
        else:
            ctx = mp.get_context("fork")
            q = ctx.Queue()
            procs = [ctx.Process(target=_worker, args=(j, chunks[j], frontend_conf, arks[j], compress, q), daemon=True)
                     for j in range(nj)]
            for p in procs:
                p.start()
            try:
                while len(results) < nj:
                    try:
                        msg = q.get(timeout=1.0)
                    except queue.Empty:
                        dead = [j for j, p in enumerate(procs) if not p.is_alive() and j not in results
                                and p.exitcode not in (0, None)]
                        if dead:
                            raise DataError(f"extract_feats: job {dead[0] + 1} died (exit code "
                                            f"{procs[dead[0]].exitcode}) while extracting {d}")
                        continue
                    if msg[0] == "progress":
                        if bar:
                            bar.update(msg[1])
                    elif msg[0] == "done":
                        results[msg[1]] = msg[2]
                    else:
                        raise DataError(msg[2])
            finally:
                for p in procs:
                    if p.is_alive():
                        p.terminate()
                for p in procs:
                    p.join()
    except BaseException:
        for a in arks:
            Path(_tmp_ark(a)).unlink(missing_ok=True)
            Path(_tmp_ark(a) + ".scp").unlink(missing_ok=True)
        raise
    finally:
        if bar:
            bar.close()
    scp: Dict[str, str] = {}
    frames: Dict[str, int] = {}
    truncated = 0
    for j in range(nj):
        scp.update(results[j][0])
        frames.update(results[j][1])
        truncated += int(results[j][2].get("truncated_segments", 0))
    for a in arks:                          # every job succeeded: the new archives replace the old ones
        os.replace(_tmp_ark(a), a)
    for old in dump.glob("feats.*.ark"):                             # archives of an earlier run
        if str(old) not in arks:
            old.unlink()
    if truncated:
        logger.warning("%s: %d segment(s) end past their recording (by at most %.1f s) and were truncated",
                       d, truncated, MAX_OVERSHOOT_S)
    write_kv(d / "utt2num_frames", {u: str(n) for u, n in frames.items()})
    import yaml
    with atomic_write(d / "feats_conf.yaml") as f:
        yaml.safe_dump(frontend_conf, f, sort_keys=False)
    write_frame_shift(d, frontend.frame_shift_s)
    write_ark_record(d, arks)
    write_kv(d / "feats.scp", scp)                                    # last: marks the extraction complete
    seconds = time.time() - start
    return {"num_utts": len(items), "num_frames": int(sum(frames.values())), "seconds": seconds,
            "utts_per_s": len(items) / max(seconds, 1e-9), "nj": nj, "truncated_segments": truncated}
