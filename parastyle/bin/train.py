"""Train a model from a YAML config.

    python -m parastyle.bin.train --config conf/train_ce.yaml --train_data data/train \\
        --valid_data data/dev --lang_dir data/lang --exp exp/ce [--optim.lr 1e-3 --train.max_steps 500 ...]

Distributed: ``torchrun --nproc_per_node 2 -m parastyle.bin.train ...`` (same arguments).
Any config key can be overridden as ``--section.key value`` (value parsed as YAML); an
unknown key is an error listing the valid keys. An exp dir with checkpoints is resumed; a
finished one (``done``) is left as it is. Either is first checked against this call: another
trainer running on it, other training data (``identity.yaml``) or an incompatible config change
(``config.yaml``) is an error (exit status 1) that names the difference.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from parastyle.fileio import DataError
from parastyle.train.config import ConfigError, load_config, parse_overrides


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="YAML training config")
    p.add_argument("--train_data", required=True)
    p.add_argument("--valid_data", default=None)
    p.add_argument("--lang_dir", required=True, help="directory with <factor>.txt label vocabularies")
    p.add_argument("--exp", required=True, help="experiment directory")
    args, rest = p.parse_known_args(argv)
    # under torchrun the other ranks report warnings and errors only (rank 0 logs the progress)
    level = logging.INFO if os.environ.get("RANK", "0") == "0" else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config = load_config(args.config, parse_overrides(rest))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from parastyle.train.checkpoint import CheckpointError
    from parastyle.train.trainer import Trainer, TrainingError
    try:
        Trainer(config, args.train_data, args.valid_data, args.lang_dir, args.exp).run()
    except (DataError, TrainingError, ConfigError, CheckpointError) as e:
        logging.getLogger("parastyle.train").error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
