# make demo / make test on a fresh machine with Python 3.11: everything lands in .venv.
PYTHON ?= python3
VENV ?= .venv
# The CPU build this project is developed with; override to pick another torch build.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

# DDS never leaves this machine: loopback discovery and a domain of our own (README, "DDS on one machine").
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_DOMAIN_ID ?= $(shell $(PYTHON) -c "import random; print(random.randint(0, 101))")
# Fast DDS over shared memory only, with room for whole images (README, "DDS on one machine").
export FASTDDS_DEFAULT_PROFILES_FILE ?= $(CURDIR)/stereo_depth_node/ros/fastdds_shm.xml

# One stamp per torch spec: `make TORCH=... test` on an existing .venv installs that build.
STAMP := $(VENV)/.installed-$(shell printf '%s' '$(TORCH)' | cksum | cut -d' ' -f1)

.PHONY: setup demo test bench clean train-cpu device-data

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
	$(BIN)/ruff check stereo_depth_node test launch scripts
	$(BIN)/python -m pytest -q --durations=15 test

bench: setup
	$(BIN)/stereo-depth bench estimator --memory-formats contiguous channels_last \
		--json bench/estimator_cpu.json
	$(BIN)/stereo-depth bench memory --json bench/memory_cpu.json

# Continue the shipped psmnet_dws on the CPU with the improved training data, in the background
# of a working session: one thread, lowest priority, stops after TRAIN_CPU_BUDGET seconds and
# resumes from $(TRAIN_CPU_DIR)/last.pt next time (bit-exact: same batches, optimiser and RNG
# states). With Linux autogroups, nice only ranks processes within one session, so the run gets a
# session of its own whose autogroup is niced too; otherwise it would take a full session's share
# from the processes in the other sessions. A fresh run draws its scenes from a seed of the day,
# so that it does not replay the stream the shipped weights were trained on (a resumed run keeps
# its own seed and RNG states).
TRAIN_CPU_DIR ?= runs/train_cpu
TRAIN_CPU_SEED ?= $(shell date -u +%Y%m%d)
TRAIN_CPU_BUDGET ?= 3600
TRAIN_CPU_THREADS ?= 1
train-cpu: setup
	OMP_NUM_THREADS=$(TRAIN_CPU_THREADS) setsid --wait sh -c \
		'echo 19 > /proc/self/autogroup 2>/dev/null; exec nice -n 19 "$$@"' train-cpu \
		$(BIN)/stereo-depth train \
		--config config/train_cpu_continue.yaml --out-dir $(TRAIN_CPU_DIR) \
		--time-budget $(TRAIN_CPU_BUDGET) $(if $(wildcard $(TRAIN_CPU_DIR)/last.pt),\
		--resume $(TRAIN_CPU_DIR)/last.pt,--init-weights stereo_depth_node/weights/psmnet_dws.pt \
		--seed $(TRAIN_CPU_SEED))

# The evaluation data a GPU session carries to the device (docs/device_log.md, "How to run").
device-data: setup
	PYTHON=$(BIN)/python scripts/device_session.sh prepare

clean:
	rm -rf $(VENV) demo_output .pytest_cache
