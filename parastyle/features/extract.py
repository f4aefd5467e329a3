"""Feature extraction of a Kaldi data dir into kaldiio archives, in parallel jobs.

For ``nj`` jobs the utterances (C-sorted) are cut into ``nj`` contiguous blocks; job ``j`` writes
``<dump>/feats.<j>.ark`` and reports progress. Only when every job has succeeded are the data
dir's ``utt2num_frames``, ``feats_conf.yaml``, ``frame_shift`` and, last, ``feats.scp`` written (each through a
temporary file and a rename). Any existing ``feats.scp`` is removed before the archives are
rewritten, so a ``feats.scp`` never points at a partial archive: a failed or killed run leaves
no ``feats.scp`` at all, and the failing utterance is named in the error.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from parastyle.data.datadir import write_frame_shift
from parastyle.fileio import DataError, atomic_write, c_sort_key, iter_kv, read_kv, write_kv

PathLike = Union[str, os.PathLike]

# (utt, wav.scp entry, "<file>:<line>", segment or None)
WorkItem = Tuple[str, str, str, Optional[Tuple[float, float]]]


def work_items(data_dir: PathLike) -> List[WorkItem]:
    """Every utterance of ``utt2spk`` with its audio source (``wav.scp``, through ``segments`` if present)."""
    from parastyle.data.datadir import parse_segment
    d = Path(data_dir)
    utts = sorted(read_kv(d / "utt2spk"), key=c_sort_key)
    wav = {key: (n, value) for n, key, value in iter_kv(d / "wav.scp")}
    items: List[WorkItem] = []
    if (d / "segments").is_file():
        segs = {}
        for n, utt, value in iter_kv(d / "segments"):
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


def extract_one(frontend, item: WorkItem) -> np.ndarray:
    """Features ``(T, D)`` float32 of one work item; DataError naming the utterance on any failure."""
    import torch
    from parastyle.data.audio import load_audio
    utt, entry, where, segment = item
    wav = load_audio(utt, entry, frontend.sample_rate, segment=segment,
                     min_samples=frontend.min_samples, where=where)
    with torch.no_grad():
        feats = frontend(wav)
    if not bool(torch.isfinite(feats).all()):
        raise DataError(f"{where}: utterance {utt!r}: the front-end produced non-finite features")
    return feats.numpy().astype(np.float32, copy=False)


def _run_job(job: int, items: List[WorkItem], frontend_conf: Dict[str, Any], ark: str, compress: bool,
             report) -> Tuple[Dict[str, str], Dict[str, int]]:
    """Extract ``items`` into ``ark``; ``report(n)`` is called after every utterance.

    Returns ``({utt: "ark:offset"}, {utt: num_frames})``.
    """
    import kaldiio
    import torch
    from parastyle.features.frontend import build_frontend
    torch.set_num_threads(1)
    frontend = build_frontend(frontend_conf)
    frames: Dict[str, int] = {}
    job_scp = f"{ark[:-len('.ark')]}.scp"
    with kaldiio.WriteHelper(f"ark,scp:{ark},{job_scp}", compression_method=2 if compress else None) as writer:
        for item in items:
            feats = extract_one(frontend, item)
            writer(item[0], feats)
            frames[item[0]] = int(feats.shape[0])
            report(1)
    scp = read_kv(job_scp)
    os.unlink(job_scp)
    return scp, frames


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
    items = work_items(d)
    if not items:
        raise DataError(f"{d}/utt2spk: no utterances")
    for name in ("feats.scp", "utt2num_frames", "feats_conf.yaml", "frame_shift"):
        (d / name).unlink(missing_ok=True)
    dump = Path(dump_dir).resolve()
    dump.mkdir(parents=True, exist_ok=True)
    nj = max(1, min(int(nj), len(items)))
    bounds = np.linspace(0, len(items), nj + 1).round().astype(int)
    chunks = [items[bounds[j]:bounds[j + 1]] for j in range(nj)]
    arks = [str(dump / f"feats.{j + 1}.ark") for j in range(nj)]
    for old in dump.glob("feats.*.ark"):                             # archives of an earlier run
        if str(old) not in arks:
            old.unlink()
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
            Path(a).unlink(missing_ok=True)
        raise
    finally:
        if bar:
            bar.close()
    scp: Dict[str, str] = {}
    frames: Dict[str, int] = {}
    for j in range(nj):
        scp.update(results[j][0])
        frames.update(results[j][1])
    write_kv(d / "utt2num_frames", {u: str(n) for u, n in frames.items()})
    import yaml
    with atomic_write(d / "feats_conf.yaml") as f:
        yaml.safe_dump(frontend_conf, f, sort_keys=False)
    write_frame_shift(d, frontend.frame_shift_s)
    write_kv(d / "feats.scp", scp)                                    # last: marks the extraction complete
    seconds = time.time() - start
    return {"num_utts": len(items), "num_frames": int(sum(frames.values())), "seconds": seconds,
            "utts_per_s": len(items) / max(seconds, 1e-9), "nj": nj}
