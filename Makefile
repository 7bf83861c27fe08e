# The two set-up commands of the README. Both create .venv if missing and install the project.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test browser lint format bench clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/pip install --quiet -e ".[torch,vlm,dist,viewer,tensorboard,carla,dev]"
	# nuScenes' official devkit pins numpy<2 but works on numpy 2: install it without its pins.
	$(BIN)/pip install --quiet --no-deps nuscenes-devkit==1.2.0
	$(BIN)/pip install --quiet cachetools descartes fire opencv-python-headless pyquaternion scikit-learn \
		"Shapely~=2.0.3" tqdm parameterized pycocotools
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/riskdistill demo

# Headless Chromium renders the HTML report in its test (Debian package; skipped where apt is unavailable).
browser:
	@command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
		(apt-get install -y -q chromium >/dev/null 2>&1 || \
		 (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) || \
		echo "could not install chromium: the HTML report rendering test will be skipped"

test: $(STAMP) browser
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports  # the layering of docs/architecture.md (contracts in pyproject.toml)
	$(BIN)/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_sim.py
	$(BIN)/python benchmarks/bench_expert.py

clean-venv:
	rm -rf $(VENV)
