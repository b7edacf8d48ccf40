"""benchmarks/gpu_check.py without a GPU: it says so and exits 0; its timing part runs on a CPU too."""

import importlib.util
from pathlib import Path

import pytest
import torch

from conftest import write_fashion_mnist as write_fake_mnist

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the check itself runs (minutes)")
def test_without_cuda_it_says_so_and_exits_0(gpu_check, capsys):
    assert gpu_check.main([]) == 0
    assert "no CUDA device here" in capsys.readouterr().out


def test_the_timing_table_on_a_cpu(gpu_check, tmp_path, capsys):
    write_fake_mnist(tmp_path / "FashionMNIST" / "raw", n_train=200, n_test=50)
    code = gpu_check.main(["--device", "cpu", "--data-root", str(tmp_path), "--epochs", "2", "--batch", "50",
                           "--models", "lenet", "--precisions", "32,16"])
    out = capsys.readouterr().out
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("| lenet | 32 |"))
    dlrun_s, bare_s, ratio = (float(cell.strip().rstrip("x")) for cell in row.split("|")[3:6])
    assert dlrun_s > 0 and bare_s > 0  # the cells are rounded to 0.01 s: the ratio lies within their rounding
    assert (dlrun_s - 0.005) / (bare_s + 0.005) - 0.01 <= ratio <= (dlrun_s + 0.005) / (bare_s - 0.005) + 0.01
    assert "| lenet | 16 | - | - | fp16 needs CUDA |" in out and "cuda tests: not run" in out
