#!/usr/bin/env bash
# Everything one call of the GPU machine does, one step per call (docs/device_log.md, "How to
# run", has the exact calls). Results land under $OUT within what the device tool brings back:
# at most 8 files of 16 MiB, no deeper than $OUT/a/b/file. A short summary table is printed last.
#
#   prepare  here, before any device time: copy ../shared/data/stereo_eval and message_filters
#            to .device_data/, download rclpy wheels for the GPU machine (PYTHON=.venv/bin/python)
#   check    CUDA tests, the node frame path (both weight orders), the node over DDS
#            (defaults, publish thread, kept memory, compiled), the network benchmark matrix
#            in what is left                                                             ~6 min
#   train    the shipped psmnet_dws continued (config/train_gpu_continue.yaml), then eval, then
#            where a training step's time goes (bench train-step, batches 8, 16, 32; then
#            batch 8 with the weights channels-last)                                     ~6 min
#   compare  psmnet and psmnet_dws from scratch: same recipe, seed, data and budget, eval  ~6 min
#
# It runs from the repository root with the machine's python3 and the package not installed
# (PYTHONPATH), needs no network, and installs nothing there but the carried rclpy wheels, into
# a throw-away venv. DEVICE_DRY_RUN=1 runs every step on the
# CPU with tiny sizes in about a minute (test/test_device_dry_run.py), so it cannot rot between
# device sessions. Budgets can be changed through DEVICE_BENCH_BUDGET_S, DEVICE_TRAIN_BUDGET_S and
# DEVICE_COMPARE_BUDGET_S (seconds).
set -uo pipefail

STEP=${1:?usage: scripts/device_session.sh prepare|check|train|compare}
cd "$(dirname "$0")/.." || exit 2
PYTHON=${PYTHON:-python3}
DATA=${DEVICE_DATA:-.device_data/stereo_eval}
WHEELS=${DEVICE_WHEELS:-.device_data/wheels}
# A dry run has rclpy already, and the carried wheels are for the GPU machine's Python.
[[ ${DEVICE_DRY_RUN:-0} == 1 ]] && WHEELS=${DEVICE_WHEELS:-}
# All that the check step reads of the evaluation data (test/test_cuda.py's real pair).
TEDDY=.device_data/stereo_eval/middlebury2003/teddy
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# DDS never leaves the machine (README, "DDS on one machine"), should anything start rclpy.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-42}

if [[ ${DEVICE_DRY_RUN:-0} == 1 ]]; then
    # One thread: on a busy CPU, OpenMP threads waiting for each other made a tiny forward pass
    # 100 times slower (11 s instead of 0.08 s at 96x64 on a loaded 2-core machine).
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
    DEVICE=cpu SIZES="96x64" MAXD=16 SYNTHETIC=1
    BENCH_BUDGET=${DEVICE_BENCH_BUDGET_S:-30} CHECK_DEADLINE_S=600
    TRAIN_BUDGET=${DEVICE_TRAIN_BUDGET_S:-6} COMPARE_BUDGET=${DEVICE_COMPARE_BUDGET_S:-4}
    MATRIX_OPTS=(--models psmnet_dws --precisions fp32 --variants eager compile
                 --compile-backend eager --compile-reserve 0
                 --warmup 1 --repeats 2 --estimator-repeats 1)
    NODE_OPTS=(--warmup 1 --repeats 2 --compile no eager
               --memory-formats contiguous channels_last)
    LIVE_OPTS=(--latency-sets 2 --seconds 2) MIN_MATRIX_S=0
    TRAIN_BENCH_OPTS=(--warmup 1 --repeats 1 --profile-steps 1 --batch-sizes 3)
    TRAIN_ORDER_OPTS=(--warmup 1 --repeats 1 --profile-steps 0)
    LIVE_PASSES=(eager eager_publish_thread eager_malloc_kept)
else
    DEVICE=cuda SIZES="640x480 1242x375" MAXD=192 SYNTHETIC=8
    BENCH_BUDGET=${DEVICE_BENCH_BUDGET_S:-60} CHECK_DEADLINE_S=${DEVICE_CHECK_DEADLINE_S:-330}
    TRAIN_BUDGET=${DEVICE_TRAIN_BUDGET_S:-240} COMPARE_BUDGET=${DEVICE_COMPARE_BUDGET_S:-150}
    MATRIX_OPTS=()
    # The frame path per stage as the node runs by default (torch's order on CUDA) and with the
    # weights channels-last, whose 3-D convolutions cuDNN may run without converting layouts;
    # compile:=true is measured end to end by bench live (about 75 s a size on an H200).
    NODE_OPTS=(--warmup 3 --repeats 20 --compile no --memory-formats contiguous channels_last)
    LIVE_OPTS=(--latency-sets 20 --seconds 6) MIN_MATRIX_S=20
    # Batches of 16 and 32 beside the config's 8: whether a larger batch uses the card better
    # (about 50 s more; 32 may not fit, and then its row says so).
    TRAIN_BENCH_OPTS=(--warmup 3 --repeats 5 --profile-steps 3 --batch-sizes 16 32)
    TRAIN_ORDER_OPTS=(--warmup 3 --repeats 5 --profile-steps 0)
    LIVE_PASSES=(eager eager_publish_thread eager_malloc_kept
                 compiled_publish_thread_malloc_kept)
fi

# glibc keeping freed blocks up to 64 MiB and its heaps untrimmed below 1 GiB (the README's
# GLIBC_TUNABLES line): on the 2-core machine it saved the page faults of every image buffer.
MALLOC_KEPT=glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=1073741824

die() { echo "device_session: $*" >&2; exit 2; }
FAILED=()
# Run a part of a step; a failure is recorded and the step goes on with its other parts.
part() {
    local start=$SECONDS
    "${@:2}" || { FAILED+=("$1"); echo "device_session: $1 failed" >&2; }
    echo "device_session: $1 took $((SECONDS - start)) s"
}

prepare() {
    local source=${SHARED_EVAL:-../shared/data/stereo_eval}
    local ros_python=${SHARED_ROS_PYTHON:-../shared/ros_python}
    [[ -d $source ]] || die "no $source to copy"
    [[ -d $ros_python/message_filters ]] || die "no $ros_python/message_filters to copy"
    rm -rf .device_data/stereo_eval .device_data/ros_python && mkdir -p .device_data
    cp -r "$source" .device_data/stereo_eval || die "copy failed"
    cp -r "$ros_python" .device_data/ros_python || die "copy failed"
    "$PYTHON" scripts/device_wheels.py "$WHEELS" || die "downloading the rclpy wheels failed"
    echo "copied $source and $ros_python to .device_data; rclpy wheels in $WHEELS"
    carry_size "check" "$WHEELS" .device_data/ros_python "$TEDDY"
    carry_size "train" .device_data/stereo_eval
}

# What a call moves to the device (the tracked tree and the carried paths), against its limit.
carry_size() {
    local bytes
    bytes=$( (git ls-files -z | xargs -0 stat -c %s; find "${@:2}" -type f -exec stat -c %s {} +) |
             awk '{s += $1} END {print s}')
    echo "$1 call: $((bytes / 1048576)) MiB of 64 MiB (carry: ${*:2})"
    ((bytes < 64 * 1048576)) || die "the $1 call would move more than 64 MiB"
}

# A GPU training config ($2) as it is; in a dry run the same file with tiny sizes.
train_config() {
    local out=$1 source=$2
    if [[ ${DEVICE_DRY_RUN:-0} != 1 ]]; then
        echo "$source"
        return
    fi
    "$PYTHON" - "$source" "$out" <<'EOF' || die "cannot write the dry-run config"
import sys
import yaml
config = yaml.safe_load(open(sys.argv[1]))
config.update(max_disparity=16, crop_height=64, crop_width=128, batch_size=2, device="cpu",
              precision="fp32", validate_every=2, validation_batches=1, log_every=1,
              checkpoint_every_s=1)
yaml.safe_dump(config, open(sys.argv[2], "w"))
EOF
    echo "$out"
}

# Mirror the trainer's last.pt into $OUT/ckpt whenever it changes (every 2 minutes in the GPU
# recipe), split into parts under 16 MiB, so that a call cut off at its limit still returns the
# newest state. The trainer replaces last.pt atomically, so a copy is always a whole checkpoint.
snapshot() {
    local source=$1 scratch=$2
    cp "$source" "$scratch/last.pt" || return
    rm -rf "$OUT/ckpt.new" && mkdir -p "$OUT/ckpt.new"
    split -b 16000K -d -a 1 "$scratch/last.pt" "$OUT/ckpt.new/last.pt.part"
    rm -rf "$OUT/ckpt" && mv "$OUT/ckpt.new" "$OUT/ckpt"
    echo "checkpoint mirrored to \$OUT/ckpt: $(sha256sum "$scratch/last.pt" | cut -c1-64)" \
         "($(stat -c %s "$scratch/last.pt") bytes; rebuild with cat last.pt.part* > last.pt)"
}

# Until $scratch/stop exists: a loop told to stop, not killed, never leaves a half-written copy.
mirror_loop() {
    local source=$1 scratch=$2 seen="" stamp
    while sleep 5 && [[ ! -e $scratch/stop ]]; do
        stamp=$(stat -c %Y "$source" 2>/dev/null) || continue
        [[ $stamp == "$seen" ]] && continue
        seen=$stamp
        snapshot "$source" "$scratch"
    done
}

# stereo-depth, from this checkout, without installing it.
cli() { "$PYTHON" -m stereo_depth_node.cli "$@"; }

# Small results in one archive, so that the file count stays within the limit. A file that a
# failed part did not write is named and left out; the rest still come back.
pack() {
    local dir=$1 name present=()
    for name in "${@:2}"; do
        if [[ -f $dir/$name ]]; then present+=("$name"); else echo "pack: no $name"; fi
    done
    tar -cf "$OUT/results.tar" -C "$dir" "${present[@]}" &&
        echo "packed ${present[*]} into \$OUT/results.tar"
}

# Everything in $1 (files and folders) as $OUT/results.tar, rewritten after each part, so that a
# call cut off at its limit still returns what the finished parts wrote.
pack_all() {
    local names
    mapfile -t names < <(ls "$1")
    ((${#names[@]})) && tar -cf "$OUT/results.tar" -C "$1" "${names[@]}"
}

summary() {
    echo "== summary: $STEP ($(date -u +%FT%TZ)); failed parts: ${FAILED[*]:-none} =="
}

# rclpy from the wheels that `prepare` downloaded, in a venv of its own which sees the machine's
# packages (torch) through a .pth file: the machine's python3 is itself a venv, so
# --system-site-packages would not reach them. The ROS wheels load their libraries from the
# venv's lib/, where pip puts them. message_filters comes from the carried ros_python copy.
ros_from_wheels() {
    local env=$SCRATCH/rosenv own
    "$PYTHON" -m venv "$env" || return
    own=$("$env/bin/python3" -c 'import site; print(site.getsitepackages()[0])') || return
    "$PYTHON" -c 'import site; print(*site.getsitepackages(), sep="\n")' \
        > "$own/machine_packages.pth" || return
    "$env/bin/python3" -m pip install -q --no-index --no-deps --no-compile --ignore-installed \
        "$WHEELS"/*.whl || return
    PYTHON=$env/bin/python3
    PYTHONPATH="$PYTHONPATH:$PWD/.device_data/ros_python"
    "$PYTHON" -c "import rclpy, message_filters; print('rclpy from', rclpy.__file__)"
}

check() {
    local results=$SCRATCH/results pass environment flags
    mkdir -p "$results"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
        --format=csv
    [[ -n $WHEELS && -d $WHEELS ]] && part rclpy-install ros_from_wheels
    "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
    part cuda-tests "$PYTHON" -m pytest -m cuda test/test_cuda.py -q -s -p no:cacheprovider \
        --junitxml "$results/pytest_cuda.xml"
    pack_all "$results"
    # shellcheck disable=SC2086  # SIZES is a list of sizes
    part bench-node "$PYTHON" -m stereo_depth_node.ros.bench_node --model psmnet_dws \
        --sizes $SIZES --max-disparity "$MAXD" --device "$DEVICE" "${NODE_OPTS[@]}" \
        --json "$results/bench_node.json" --markdown "$results/bench_node.md"
    pack_all "$results"
    # The node in its own process over DDS (the targets are end to end), one pass each: as it
    # runs by default; with a thread of its own publishing while the next set is matched
    # (publish_thread:=true); with glibc keeping freed memory in the node and the client; and
    # with compile:=true and both. Its logs come back too, should compiling fail in the node.
    for pass in "${LIVE_PASSES[@]}"; do
        environment=() flags=()
        [[ $pass == *publish_thread* ]] && flags+=(--param publish_thread:=true)
        [[ $pass == *malloc_kept* ]] && environment+=("GLIBC_TUNABLES=$MALLOC_KEPT")
        [[ $pass == compiled* ]] && flags+=(--compile)
        # shellcheck disable=SC2086
        part "bench-live-$pass" env "${environment[@]}" "$PYTHON" \
            -m stereo_depth_node.ros.bench_live --model psmnet_dws --sizes $SIZES \
            --max-disparity "$MAXD" --device "$DEVICE" "${LIVE_OPTS[@]}" "${flags[@]}" \
            --log-dir "$results/live_logs_$pass" \
            --json "$results/bench_live_$pass.json" --markdown "$results/bench_live_$pass.md"
        pack_all "$results"
    done
    # The matrix last: its budget bounds the step, and cases past it are listed as skipped. It
    # gets what is left before CHECK_DEADLINE_S (the call's 420 s less the matrix's own tail of
    # FLOP counting, the estimator rows and a compile that may overrun), at most BENCH_BUDGET;
    # with less than MIN_MATRIX_S left it does not start.
    local budget=$((CHECK_DEADLINE_S - SECONDS))
    ((budget > BENCH_BUDGET)) && budget=$BENCH_BUDGET
    echo "device_session: matrix budget ${budget} s (${SECONDS} s into the step)"
    if ((budget >= MIN_MATRIX_S)); then
        # shellcheck disable=SC2086
        part bench-matrix "$PYTHON" -m stereo_depth_node.device_bench --sizes $SIZES \
            --max-disparity "$MAXD" --device "$DEVICE" --budget "$budget" "${MATRIX_OPTS[@]}" \
            --json "$results/bench_matrix.json" --markdown "$results/bench_matrix.md"
        pack_all "$results"
    fi
    summary
    grep -o 'tests="[0-9]*" [^>]*' "$results/pytest_cuda.xml" 2>/dev/null
    cat "$results"/bench_*.md 2>/dev/null
}

train() {
    local run=$SCRATCH/run ship=$SCRATCH/ship config mirror
    mkdir -p "$run" "$ship"
    config=$(train_config "$SCRATCH/train_dry.yaml" config/train_gpu_continue.yaml) || exit 2
    mirror_loop "$run/last.pt" "$SCRATCH" &
    mirror=$!
    # A new seed each day: a continuation of weights shipped from an earlier session must not
    # see that session's scenes again.
    part train cli train --config "$config" --out-dir "$run" --time-budget "$TRAIN_BUDGET" \
        --device "$DEVICE" --init-weights stereo_depth_node/weights/psmnet_dws.pt \
        --seed "${DEVICE_TRAIN_SEED:-$(date -u +%Y%m%d)}"
    touch "$SCRATCH/stop"
    wait "$mirror"
    [[ -f $run/last.pt ]] || die "training wrote no checkpoint"
    snapshot "$run/last.pt" "$SCRATCH"
    # The new weights as they would ship (fp16) under their own name, scored beside the shipped.
    part ship cli ship "$run/last.pt" --name psmnet_dws_gpu --out-dir "$ship" \
        --loss-curve "$run/log.jsonl" --loss-plot "$run/psmnet_dws_gpu_loss.png" \
        --notes "trained on the GPU machine by scripts/device_session.sh train"
    cp "$ship/psmnet_dws_gpu.pt" "$OUT/"
    part eval cli eval --methods psmnet_dws "psmnet_dws:$ship/psmnet_dws_gpu.pt" --data "$DATA" \
        --synthetic "$SYNTHETIC" --device "$DEVICE" --json "$run/eval.json" \
        --markdown "$run/eval.md" --update-cards "$ship"
    cp "$ship/psmnet_dws_gpu.json" "$run/"
    local results=(eval.json eval.md log.jsonl config.yaml psmnet_dws_gpu.json
                   psmnet_dws_gpu_loss.png)
    part pack pack "$run" "${results[@]}"
    # Last, so that it can only cost itself: where a training step's time goes on this card
    # (phases, the device's busy share, the operators that take most), for making the GPU
    # training faster in later sessions.
    part bench-train-step "$PYTHON" -m stereo_depth_node.train_bench --config "$config" \
        --device "$DEVICE" "${TRAIN_BENCH_OPTS[@]}" --json "$run/bench_train_step.json" \
        --markdown "$run/bench_train_step.md"
    part pack pack "$run" "${results[@]}" bench_train_step.json bench_train_step.md
    # The config's step again with the weights channels-last (on CUDA `auto` keeps torch's
    # order, which the pass above ran): whether cuDNN's bf16 3-D convolutions train faster so.
    part bench-train-step-channels-last "$PYTHON" -m stereo_depth_node.train_bench \
        --config "$config" --device "$DEVICE" --memory-format channels_last \
        "${TRAIN_ORDER_OPTS[@]}" --json "$run/bench_train_step_channels_last.json" \
        --markdown "$run/bench_train_step_channels_last.md"
    part pack pack "$run" "${results[@]}" bench_train_step.json bench_train_step.md \
        bench_train_step_channels_last.json bench_train_step_channels_last.md
    summary
    tail -n 3 "$run/log.jsonl"
    cat "$run/eval.md"
}

compare() {
    local run=$SCRATCH/run config model
    mkdir -p "$run"
    config=$(train_config "$SCRATCH/train_dry.yaml" config/train_gpu.yaml) || exit 2
    # Same recipe, seed (so the same synthetic batches) and wall-clock budget; from scratch.
    for model in psmnet psmnet_dws; do
        cli train --config "$config" --model "$model" --out-dir "$run/$model" \
            --time-budget "$COMPARE_BUDGET" --device "$DEVICE" || die "training $model failed"
        part "ship-$model" cli ship "$run/$model/last.pt" --name "${model}_compare" \
            --out-dir "$run" --loss-curve "$run/$model/log.jsonl" \
            --loss-plot "$run/${model}_loss.png" \
            --notes "scripts/device_session.sh compare: ${COMPARE_BUDGET} s from scratch"
        cp "$run/${model}_compare.pt" "$OUT/"
        cp "$run/$model/log.jsonl" "$run/${model}_log.jsonl"
    done
    part eval cli eval --methods "psmnet:$run/psmnet_compare.pt" \
        "psmnet_dws:$run/psmnet_dws_compare.pt" --data "$DATA" --synthetic "$SYNTHETIC" \
        --device "$DEVICE" --json "$run/eval.json" --markdown "$run/eval.md" \
        --update-cards "$run"
    part pack pack "$run" eval.json eval.md psmnet_log.jsonl psmnet_dws_log.jsonl \
        psmnet_compare.json psmnet_dws_compare.json psmnet_loss.png psmnet_dws_loss.png
    summary
    cat "$run/eval.md"
}

case $STEP in
    prepare) prepare; exit ;;
    check|train|compare) ;;
    *) die "unknown step $STEP (prepare, check, train or compare)" ;;
esac
[[ -n ${OUT:-} ]] || die "OUT is not set (the device tool sets it; elsewhere: OUT=some/folder)"
[[ -d $DATA ]] || die "no $DATA: run '$0 prepare' here and name .device_data in carry"
# test/test_cuda.py reads its real pair from here.
STEREO_EVAL_DIR=$(realpath "$DATA") && export STEREO_EVAL_DIR
mkdir -p "$OUT"
SCRATCH=$(mktemp -d)
# Everything printed also goes to $OUT/log_STEP.txt, which comes back even after a timeout.
exec > >(tee "$OUT/log_$STEP.txt") 2>&1
TEE=$!
# Close the pipe and let tee finish, so that the log is whole when the script has returned.
trap 'exec >&- 2>&-; wait "$TEE"; rm -rf "$SCRATCH"' EXIT
echo "device_session $STEP: $(date -u +%FT%TZ), dry run ${DEVICE_DRY_RUN:-0}, device $DEVICE"
"$STEP"
[[ ${#FAILED[@]} -eq 0 ]]
