"""Semantic features of a data dir for the speech LM and its tokenizers (PolySpeech's speech input).

Two sources, chosen by the recipe:

* a frozen SSL layer L (HuBERT / wav2vec 2.0 / WavLM from a local path) through the toolkit's
  dumper :func:`parastyle.features.ssl_layers` (``python -m parastyle.bin.dump_ssl_layers --layers L``)
  on a copy of the data dir made by :func:`copy_data_dir`;
* for machines without SSL weights, the hidden layer of a CTC recogniser trained by the toolkit
  (``ctc_asr``, :meth:`parastyle.models.ctc_asr.CTCASR.encode`): a model that learned the
  phonetic content of the corpus is a semantic encoder too (:func:`dump_ctc_hidden`).

:func:`dump_ctc_hidden` writes ``<out>/semantic.ark`` (one ``(T', H)`` float32 matrix per
utterance, the CTC encoder's frames), ``<out>/utt2num_frames``, ``<out>/frame_shift`` and, last,
``<out>/feats.scp`` (temporary file + rename). The source data dir's ``feats.scp`` (the
acoustic features, e.g. log-mel) is kept next to them as ``<out>/mel.scp``, for the semantic
token decoder that maps tokens back to acoustics.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

from parastyle.fileio import DataError, atomic_write, read_kv, write_kv

#: files derived from the features; not copied into the semantic data dir
_FEATURE_FILES = {"feats.scp", "utt2num_frames", "feats_conf.yaml", "frame_shift", "cmvn.ark"}


def copy_data_dir(src, dst) -> Path:
    """Copy the table files of ``src`` (not its features) to ``dst``; ``src/feats.scp`` becomes ``dst/mel.scp``."""
    src, dst = Path(src), Path(dst)
    if not (src / "utt2spk").is_file():
        raise DataError(f"{src}: not a data dir (utt2spk missing)")
    dst.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        if p.is_file() and p.name not in _FEATURE_FILES and not p.name.startswith("."):
            shutil.copyfile(p, dst / p.name)
    if (src / "feats.scp").is_file():
        with open(src / "feats.scp", encoding="utf-8") as f, atomic_write(dst / "mel.scp") as g:
            g.write(f.read())
    for name in _FEATURE_FILES:
        if (dst / name).exists():
            (dst / name).unlink()
    return dst


def dump_ctc_hidden(exp_dir, data_dir, out_dir, device: str = "cpu", checkpoint: Optional[str] = None,
                    ark_dir=None) -> int:
    """Dump the hidden layer of the ``ctc_asr`` exp for every utterance of ``data_dir`` into ``out_dir``.

    The features are read exactly as the exp was trained (its config: ``feats.scp`` or front-end,
    CMVN). The archive goes to ``ark_dir`` (default ``out_dir``; a data dir that is renamed later needs
    its archives elsewhere, since ``feats.scp`` names them by path). Returns the number of utterances.
    """
    import kaldiio
    import torch

    from parastyle.data.collate import move_batch
    from parastyle.data.datadir import read_frame_shift, write_frame_shift
    from parastyle.train.build import build_dataloader
    from parastyle.train.checkpoint import load_model_from_exp

    model, config, task = load_model_from_exp(exp_dir, checkpoint, map_location=device)
    if config["model"]["name"] != "ctc_asr" or not hasattr(model, "encode"):
        raise DataError(f"{exp_dir}: an exp of model {config['model']['name']!r}; the semantic encoder is a "
                        f"'ctc_asr' exp")
    out = copy_data_dir(data_dir, out_dir)
    utts = set(read_kv(Path(data_dir) / "utt2spk"))
    loader = build_dataloader(config, data_dir, task=task, train=False)
    ark_dir = Path(ark_dir or out)
    ark_dir.mkdir(parents=True, exist_ok=True)
    ark = ark_dir / "semantic.ark"
    frames = {}
    with torch.no_grad(), kaldiio.WriteHelper(f"ark,scp:{ark},{out}/.feats.scp.tmp") as w:
        for batch in loader:
            batch = move_batch(batch, device)
            h, m = model.encode(batch["feats"], batch["mask"])
            for b, u in enumerate(batch["utt_ids"]):
                n = int(m[b].sum())
                w[u] = h[b, :n].float().cpu().numpy()
                frames[u] = n
    missing = utts - set(frames)
    if missing:
        raise DataError(f"{data_dir}: {len(missing)} utterance(s) were not encoded, e.g. {sorted(missing)[:3]}")
    write_kv(out / "utt2num_frames", {u: str(n) for u, n in frames.items()})
    shift = read_frame_shift(data_dir) or task.frame_shift_s
    write_frame_shift(out, float(shift) * int(getattr(model, "frame_subsampling", 1)))
    table = read_kv(out / ".feats.scp.tmp")
    (out / ".feats.scp.tmp").unlink()
    write_kv(out / "feats.scp", table)
    return len(frames)


def dump_speaker_embeddings(data_dir, out_dir=None, device: str = "cpu", ark_dir=None) -> int:
    """resemblyzer d-vectors of every utterance's audio (``<data_dir>/wav.scp``) ->
    ``<ark_dir>/spk_emb.ark`` + ``<out>/spk_emb.scp`` (``out`` default ``data_dir``, ``ark_dir`` default
    ``out``; the scp is written last)."""
    import kaldiio

    from parastyle.data.audio import load_audio
    from parastyle.features.extract import work_items
    from parastyle.metrics.tts import SpeakerEncoder

    out = Path(out_dir or data_dir)
    out.mkdir(parents=True, exist_ok=True)
    enc = SpeakerEncoder(device=device)
    n = 0
    tmp = out / ".spk_emb.scp.tmp"
    ark_dir = Path(ark_dir or out)
    ark_dir.mkdir(parents=True, exist_ok=True)
    with kaldiio.WriteHelper(f"ark,scp:{ark_dir}/spk_emb.ark,{tmp}") as w:
        for utt, entry, where, seg in work_items(data_dir):
            wav = load_audio(utt, entry, sample_rate=enc.sample_rate, segment=seg, where=where)
            try:
                e = enc.embed(wav, enc.sample_rate)
            except ValueError as err:
                raise DataError(f"{where}: utterance {utt!r}: {err}") from None
            w[utt] = e.astype("float32")
            n += 1
    table = read_kv(tmp)
    tmp.unlink()
    write_kv(out / "spk_emb.scp", table)
    return n
