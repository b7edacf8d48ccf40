"""Data-parallel training with torch.distributed (DDP), launched by torchrun or `trainer.devices=N`.

Nothing home-made: torchrun/torch's elastic launcher start the processes, init_process_group
(env://) connects them, DistributedDataParallel averages gradients. What dlrun adds is the glue:
one run folder for all ranks, each rank's shard of the in-memory data, global metrics, and
"only rank 0 writes".
"""

from __future__ import annotations

import os
import subprocess
import sys


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def adopt_slurm_tasks() -> None:
    """Tasks of one SLURM job (one per GPU, started by the submitit launcher) become torchrun-style
    ranks: submitit exports RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT from SLURM's."""
    if "RANK" in os.environ or int(os.environ.get("SLURM_NTASKS", "1")) < 2 or "SLURM_JOB_ID" not in os.environ:
        return
    from submitit.helpers import TorchDistributedEnvironment

    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def launched_by_torchrun() -> bool:
    """True in a rank of a multi-process run (torchrun, `trainer.devices=N`, or SLURM tasks)."""
    adopt_slurm_tasks()
    return world_size() > 1 and "LOCAL_RANK" in os.environ


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def init(device_type: str) -> None:
    """Join the process group (nccl on CUDA, gloo on CPU) once."""
    import torch.distributed as dist

    if launched_by_torchrun() and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")


def join(device):
    """Join the process group and return this rank's device (its own GPU on CUDA)."""
    import torch

    init(device.type)
    if device.type != "cuda":
        return device
    device = torch.device("cuda", local_rank())
    torch.cuda.set_device(device)
    return device


def leave() -> None:
    """Wait for every rank, then destroy the process group (no-op in a single process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def shard(data, name: str) -> None:
    """Give this rank its share of every split (dlrun.data.loader.TensorLoader.shard)."""
    from dlrun.errors import ConfigError

    for loader in (data.train, data.val, data.test):
        if loader is None:
            continue
        if not hasattr(loader, "shard"):
            raise ConfigError("trainer.devices", world_size(), f"DDP runs on in-memory datasets (data={name} streams "
                              "from files)")
        loader.shard(rank(), world_size())


def wrap(model, device):
    """DistributedDataParallel around the model: gradients are averaged over the ranks in backward()."""
    import torch

    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def quiet_rank(callbacks: dict) -> dict:
    """Ranks other than 0: no files, no terminal output; only the callbacks that change the training
    (stopping, unfreezing, restoring weights) run, so that every process does the same."""
    import logging

    logging.getLogger("dlrun").setLevel(logging.WARNING)
    return {name: cb for name, cb in callbacks.items() if getattr(cb, "all_ranks", False)}


def agree_on_run_stamp() -> None:
    """All ranks must write into ONE run folder, but each process's clock and token differ: rank 0
    picks the stamp and the others take it (through the process group they will train with)."""
    if not launched_by_torchrun() or os.environ.get("DLRUN_RUN_STAMP"):
        return
    import torch
    import torch.distributed as dist

    from dlrun.config.schema import run_stamp

    init("cuda" if torch.cuda.is_available() else "cpu")
    box = [run_stamp() if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    os.environ["DLRUN_RUN_STAMP"] = box[0]


def all_reduce_sum(values: list[float], device) -> list[float]:
    """Sums across ranks (identity in a single process)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def launch(devices: int, argv: list[str], run_dir: str) -> int:
    """`dlrun trainer.devices=N`: start N ranks of the same command through torch's elastic launcher,
    all writing into this process's run folder."""
    args = [a for a in argv if not a.startswith(("trainer.devices=", "hydra.run.dir="))]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={devices}",
           "-m", "dlrun", *args, f"hydra.run.dir={run_dir}", "trainer.devices=1"]
    return subprocess.call(cmd)
