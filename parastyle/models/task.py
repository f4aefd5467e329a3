"""What a model needs to know about its data, built by the trainer from the data dir and vocabularies."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass
class TaskInfo:
    feat_dim: int                                   # D of the (B, T, D) features (1 for raw waveforms)
    factors: Dict[str, List[str]] = field(default_factory=dict)  # factor -> label vocabulary; index = position
    sample_rate: int = 22050
    frame_shift_s: float = 256 / 22050
    tokens: Optional[List[str]] = None              # CTC / LM token vocabulary (index 0 = blank)
    tags: Optional[List[str]] = None                # tag vocabulary for multi-label tagging
    speakers: Optional[List[str]] = None            # speaker vocabulary (speaker-id tasks)
    lang_dir: Optional[str] = None                  # data/lang of the exp: phone / unit vocabularies live here
