# Two commands do all the set-up: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SYSTEM_FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: run test test-fast data bench figures clean

run: $(VENV)/.installed data
	$(BIN)/dlrun $(ARGS)

# Two worker processes (pytest-xdist), one test file each at a time: about 1.7x faster on two cores, since
# many tests wait on a dlrun subprocess or a SLURM job; a file's module fixtures run once. TEST_WORKERS=0: serial.
TEST_WORKERS ?= 2
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)

# The in-process tests only (no subprocesses, nothing slow, no cluster): under a minute.
test-fast: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m "not slow and not subprocess and not slurm" $(PYTEST_ARGS)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamp files make a second `make run` skip the install; they are redone when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

# Fashion-MNIST: data/ first, then Debian's dataset-fashion-mnist, installed here when apt-get can;
# otherwise dlrun itself falls back to torchvision's download at run time.
data:
	@if ls data/FashionMNIST/raw/train-images-idx3-ubyte* >/dev/null 2>&1 || [ -d $(SYSTEM_FMNIST) ]; then \
		echo "Fashion-MNIST: found"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "Fashion-MNIST: installing Debian's dataset-fashion-mnist"; \
		apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	else \
		echo "Fashion-MNIST: not found; dlrun will try to download it"; \
	fi

# The benchmarks of docs/benchmarks.md (about 45 minutes on 2 cores; not part of `make test`).
bench: $(VENV)/.installed data
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/speed_options.py --model lenet
	$(BIN)/python benchmarks/peers.py --model lenet --epochs 3 --repeats 5

# Each lesson's figure (docs/lessons.md): runs the experiment presets and copies their lesson.png to
# docs/figures/NAME.png; presets that need Fashion-MNIST are skipped without it. Or: make figures NAMES="init"
figures: $(VENV)/.installed
	$(BIN)/python -m dlrun.sweeps.lessons docs/figures $(NAMES)

clean:
	rm -rf $(VENV) outputs
