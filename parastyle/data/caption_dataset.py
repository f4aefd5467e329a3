"""Dataset ``clap``: a :class:`~parastyle.data.dataset.StyleDataset` that draws one of a clip's captions.

ParaSpeechCaps gives several captions for some clips (``text_description`` is a list). The
training draws a random one each time the clip is drawn, instead of always the first. The
captions of such clips are in ``<data>/captions.json`` (``{"<utt>": ["<caption 1>", ...]}``,
written by the corpus preparation next to ``utt2caption``, which keeps the first caption for
scoring and retrieval). Select it with ``data.dataset: clap``.

* Training: item ``index`` of epoch ``e`` gets caption ``k`` with ``k`` drawn by
  ``random.Random(f"{seed}:{e}:{index}:caption")``: a function of ``(seed, epoch, index)`` only,
  so any number of workers, and a run resumed mid-epoch, see the same captions.
* Evaluation (``train=False``): the ``utt2caption`` caption (the first one), always.
* A clip absent from ``captions.json`` keeps its ``utt2caption`` caption. Entries for utterances
  outside the data dir are ignored (a subset dir shares its parent's file). An entry that is not a
  non-empty list of non-empty strings, or whose list does not contain the clip's ``utt2caption``
  caption (a stale file), is an error naming the utterance.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Dict, List, Optional

from parastyle.data.dataset import StyleDataset
from parastyle.fileio import DataError
from parastyle.train.build import DATASETS, build_dataset

CAPTIONS_JSON = "captions.json"


def read_captions_json(data_dir, utts) -> Dict[str, List[str]]:
    """``{utt: [captions]}`` of ``<data_dir>/captions.json`` restricted to ``utts`` ({} when absent)."""
    path = Path(data_dir) / CAPTIONS_JSON
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 ({e})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object utterance -> list of captions")
    keep = set(utts)
    out = {}
    for utt, caps in data.items():
        if utt not in keep:
            continue
        if not isinstance(caps, list) or not caps or not all(isinstance(c, str) and c.strip() for c in caps):
            raise DataError(f"{path}: utterance {utt!r}: expected a non-empty list of non-empty captions, got {caps!r}")
        out[utt] = list(caps)
    return out


class CaptionDataset:
    """Wraps a :class:`StyleDataset`; in training replaces ``item["caption"]`` by a drawn caption.

    Every attribute not defined here (``utts``, ``tags``, ``data_dir``, ``lengths``, ``collate`` ...)
    is the wrapped dataset's, so samplers and loaders see a StyleDataset.
    """

    def __init__(self, base: StyleDataset, train: bool, seed: int = 0):
        self.base = base
        self.train = bool(train)
        self.seed = int(seed)
        self.choices = read_captions_json(base.data_dir, base.utts)
        where = base.data_dir / CAPTIONS_JSON
        for utt, caps in self.choices.items():
            first = (base.captions or {}).get(utt)
            if first is None:
                raise DataError(f"{where}: utterance {utt!r} has captions but no line in "
                                f"{base.data_dir}/utt2caption (write its first caption there)")
            if first not in caps:
                raise DataError(f"{where}: utterance {utt!r}: its utt2caption caption {first!r} is not among its "
                                f"{len(caps)} captions (stale {CAPTIONS_JSON}: prepare the data dir again)")

    def __getattr__(self, name: str) -> Any:
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def caption_index(self, index: int, num: int) -> int:
        """Caption drawn for item ``index`` in the current epoch: a function of (seed, epoch, index)."""
        return random.Random(f"{self.seed}:{self.base.epoch}:{index}:caption").randrange(num)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        item = self.base[index]
        caps: Optional[List[str]] = self.choices.get(item["utt_id"])
        if self.train and caps is not None:
            item["caption"] = caps[self.caption_index(index, len(caps))]
        return item


@DATASETS.register("clap")
def build_caption_dataset(config: Dict[str, Any], data_dir, factors, train: bool, cmvn_path=None) -> CaptionDataset:
    conf = dict(config)
    conf["data"] = dict(config["data"], dataset="style")
    base = build_dataset(conf, data_dir, factors, train, cmvn_path)
    return CaptionDataset(base, train, seed=int(config["train"]["seed"]))
