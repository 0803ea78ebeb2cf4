# make demo / make test on a fresh machine with Python 3.11: everything lands in .venv.
PYTHON ?= python3
VENV ?= .venv
# The CPU build this project is developed with; override to pick another torch build.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

# DDS never leaves this machine: loopback discovery and a domain of our own (see DESIGN.md).
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_DOMAIN_ID ?= $(shell $(PYTHON) -c "import random; print(random.randint(0, 101))")
# Fast DDS over shared memory only, with room for whole images (README, "DDS on one machine").
export FASTDDS_DEFAULT_PROFILES_FILE ?= $(CURDIR)/stereo_depth_node/ros/fastdds_shm.xml

STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[ros,dev]"
	touch $@

setup: $(STAMP)

demo: setup
	$(BIN)/stereo-depth demo --out demo_output

test: setup
	$(BIN)/ruff check stereo_depth_node test launch
	$(BIN)/python -m pytest -q test

bench: setup
	$(BIN)/stereo-depth bench estimator --json bench/estimator_cpu.json

clean:
	rm -rf $(VENV) demo_output .pytest_cache
