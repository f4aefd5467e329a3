"""Helpers of the multi-process tests (torch.distributed with gloo on CPU)."""
from __future__ import annotations

import os
import socket
from datetime import timedelta


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for the rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def set_rank_env(rank: int, port: int, world_size: int = 2) -> None:
    """torchrun's environment for ``rank`` (what ``parastyle.train.distributed`` reads), one thread."""
    import torch
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)


def init_gloo(rank: int, port: int, world_size: int) -> None:
    """Join a gloo process group over TCP (30 s timeout), one thread."""
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=30))


def _trainer_rank(rank: int, port: int, conf, train, dev, lang, exp) -> None:
    import torch
    from parastyle.train.trainer import Trainer
    set_rank_env(rank, port)
    try:
        Trainer(conf, train, dev, lang, exp).run()
    finally:
        torch.distributed.destroy_process_group()


def train_on_two_ranks(conf, train, dev, lang, exp) -> None:
    """Train ``conf`` with the Trainer in 2 forked gloo processes (each rank gets its half of every
    global batch) into ``exp``."""
    import torch.multiprocessing as mp
    mp.start_processes(_trainer_rank, args=(free_port(), conf, train, dev, lang, exp), nprocs=2,
                       start_method="fork")


def spawn_ranks(worker, out_dir, world_size: int) -> list:
    """Run ``worker(rank, port, out_dir)`` in ``world_size`` spawned processes; each saves
    ``<out_dir>/<rank>.pt``, returned in rank order."""
    import torch
    import torch.multiprocessing as mp
    mp.spawn(worker, args=(free_port(), str(out_dir)), nprocs=world_size, join=True)
    return [torch.load(os.path.join(str(out_dir), f"{r}.pt")) for r in range(world_size)]
