"""A callback for the SLURM tests: each rank appends what it runs with (rank, world size, torch threads)."""

import json
import os
from pathlib import Path

import torch

from dlrun.callbacks import Callback


class RankProbe(Callback):
    all_ranks = True  # DDP: kept on every rank (dlrun.training.distributed.quiet_rank)

    def __init__(self, path: str):
        self.path = Path(path)

    def on_fit_start(self, loop):
        record = {"rank": int(os.environ.get("RANK", 0)), "world_size": int(os.environ.get("WORLD_SIZE", 1)),
                  "threads": torch.get_num_threads(), "slurm_job": os.environ.get("SLURM_JOB_ID"),
                  "run_dir": str(loop.run_dir)}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
