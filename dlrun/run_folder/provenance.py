"""env.json: where and with what a run was made, so that a result can be traced and repeated."""

from __future__ import annotations

import os
import platform
import shlex
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

ENV_FILE = "env.json"
FIELDS = ("dlrun", "git_commit", "git_dirty", "git_root", "python", "torch", "torchvision", "cuda", "cudnn",
          "device", "device_name", "cpu_count", "torch_threads", "hostname", "command", "cwd", "started_utc")


def _git(cwd: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):  # no git installed, or a very slow file system
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(cwd: Path) -> dict:
    """The commit of the repository holding `cwd`, and whether tracked files differ from it (None: no repository)."""
    commit = _git(cwd, "rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": None, "git_dirty": None, "git_root": None}
    status = _git(cwd, "status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": bool(status) if status is not None else None,
            "git_root": _git(cwd, "rev-parse", "--show-toplevel")}


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    if device == "mps":
        return "Apple MPS"
    return _cpu_model() or platform.processor() or platform.machine()


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _program(argv0: str) -> str:
    """`dlrun` for the console script, `python -m dlrun` for the module."""
    path = Path(argv0)
    return f"python -m {path.parent.name}" if path.name == "__main__.py" else path.name


def _resolved_device(requested: str) -> str:
    """trainer.device=auto as the loop resolves it (cuda, then mps, then cpu); an explicit one as given."""
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def collect(requested_device: str = "auto", threads: int = 0, cwd: Path | None = None,
            argv: list[str] | None = None) -> dict:
    import torch

    import dlrun

    try:  # the installed version, without importing torchvision (its import pulls in torch._dynamo: ~1 s)
        tv = metadata.version("torchvision")
    except metadata.PackageNotFoundError:
        tv = None
    cwd = Path(cwd or os.getcwd())
    device = _resolved_device(requested_device)
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "dlrun": dlrun.__version__,
        **git_state(cwd),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": tv,
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
        "device": device,
        "device_name": _device_name(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads or torch.get_num_threads(),
        "hostname": socket.gethostname(),
        "command": shlex.join(argv) if argv is not None else " ".join([_program(sys.argv[0]), shlex.join(sys.argv[1:])]),
        "cwd": str(cwd),
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_env(run_dir: Path, cfg) -> None:
    """env.json of this start (a resumed run gets the environment it continued in); the caller writes it
    from one process (under DDP: rank 0)."""
    from dlrun.config.job import threads_per_job
    from dlrun.run_folder.records import write_json

    path = Path(run_dir) / ENV_FILE
    try:  # the threads build_loop will set
        write_json(path, collect(cfg.trainer.device, cfg.trainer.num_threads or threads_per_job()))
    except Exception as e:  # provenance is a record, never the reason a run fails
        import logging

        logging.getLogger("dlrun").warning("could not write %s: %s", path, e)


def read_env(run_dir: Path) -> dict:
    import json

    path = Path(run_dir) / ENV_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
