#!/usr/bin/env bash
# Train the CIFAR-10 zoo of He et al. 2015 (figure 6, table 6) side by side on one GPU.
#
# Here (the machine with the package registry and ../shared/data):
#   scripts/run_zoo_gpu.sh prepare        # data/ and .whl/ to carry; checks the 64 MiB limit
#   scripts/run_zoo_gpu.sh unpack DIR     # DIR: the files that came back; restores runs/
# There (the GPU machine, through the device tool's `run`):
#   scripts/run_zoo_gpu.sh start          # install, decode the data once, launch MODELS (setsid)
#   scripts/run_zoo_gpu.sh status         # one line per model: last history row, alive or not
#   scripts/run_zoo_gpu.sh wait N         # wait up to N seconds (or until all stop), status each minute
#   scripts/run_zoo_gpu.sh collect        # pack runs/ into at most 8 files of < 16 MiB in $OUT
#
# Every run uses --resume, so `start` continues from the backups in runs/ (carry them).
# The JAX backend is used; nothing is downloaded there: the data is data/cifar10-jpeg.tar.gz
# and Keras, namex and optree come as wheels in .whl/ (both gitignored, both carried).
# See docs/training.md for the whole procedure and the session plan.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-runs}
DATA=${DATA:-data/cifar10-jpeg.tar.gz}
SHARED_DATA=${SHARED_DATA:-../shared/data/cifar10-jpeg.tar.gz}
CACHE=${CACHE:-/tmp/keras_resblocks_cache}
MODELS=${MODELS:-"resnet20 resnet32 resnet44 resnet56 resnet110 plain20 plain32 plain44 plain56"}
RECIPE_FLAGS=${RECIPE_FLAGS:-"--recipe he2015 --mixed-precision bfloat16"}
WHEELS=${WHEELS:-"keras==3.15.1 namex==0.1.0 optree==0.20.0"}
PYTHON=${PYTHON:-python3}
SITE=/tmp/site
PART_BYTES=${PART_BYTES:-$((15 * 1024 * 1024))}   # each file that comes back stays under 16 MiB
export KERAS_BACKEND=jax
# Several processes share one GPU: none may grab most of its memory up front.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.10}
export TF_CPP_MIN_LOG_LEVEL=3
export PYTHONUNBUFFERED=1
[ -d "$SITE" ] && export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"

prepare() {
  mkdir -p data .whl "$RUNS"
  [ -f "$DATA" ] || cp "$SHARED_DATA" "$DATA"
  # shellcheck disable=SC2086
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $WHEELS
  tracked=$(git ls-files -z | du -cb --files0-from=- | tail -n 1 | cut -f1)
  carried=$(du -cb data .whl "$RUNS" | tail -n 1 | cut -f1)
  total=$((tracked + carried))
  echo "to carry: data .whl $RUNS ($((carried / 1024 / 1024)) MiB) + tracked tree" \
       "($((tracked / 1024)) KiB) = $((total / 1024 / 1024)) MiB of the 64 MiB limit"
  if [ "$total" -gt $((64 * 1024 * 1024)) ]; then
    echo "over the limit: carry the backups of fewer models (see docs/training.md)" >&2
    exit 1
  fi
}

install() {
  if ! "$PYTHON" -c "import keras" 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" .whl/*.whl
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  fi
  if ! "$PYTHON" -c "import keras_resblocks" 2>/dev/null; then
    # Only our own code: numpy, safetensors, huggingface_hub, pillow are on the device.
    "$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation -e .
  fi
  "$PYTHON" -c "import jax, keras, keras_resblocks; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"
}

start() {
  install
  [ -f "$DATA" ] || { echo "missing $DATA (run 'prepare' here and carry data/)" >&2; exit 1; }
  mkdir -p "$RUNS"
  # Decode once, before several processes would each try.
  "$PYTHON" -c "from keras_resblocks.training import load_dataset; import sys; print(load_dataset(sys.argv[1], cache_dir=sys.argv[2]).describe())" "$DATA" "$CACHE"
  for model in $MODELS; do
    if [ -d "$RUNS/$model-cifar10" ]; then echo "$model finished already"; continue; fi
    if [ -f "$RUNS/$model.pid" ] && kill -0 "$(cat "$RUNS/$model.pid")" 2>/dev/null; then
      echo "$model already running"; continue
    fi
    # setsid: the device ends a command's leftover processes unless they have their own session.
    # shellcheck disable=SC2086
    setsid nohup "$PYTHON" scripts/train.py --model "$model" --dataset "$DATA" --data-cache "$CACHE" \
      $RECIPE_FLAGS --output "$RUNS/$model-cifar10" --work-dir "$RUNS/$model.work" \
      --resume --verbose 2 >> "$RUNS/$model.log" 2>&1 < /dev/null &
    echo $! > "$RUNS/$model.pid"
    echo "started $model (pid $!)"
  done
}

running() {
  local n=0
  for model in $MODELS; do
    if [ -f "$RUNS/$model.pid" ] && kill -0 "$(cat "$RUNS/$model.pid")" 2>/dev/null; then n=$((n + 1)); fi
  done
  echo "$n"
}

status() {
  for model in $MODELS; do
    state=stopped
    if [ -f "$RUNS/$model.pid" ] && kill -0 "$(cat "$RUNS/$model.pid")" 2>/dev/null; then state=running; fi
    [ -d "$RUNS/$model-cifar10" ] && state="$state, checkpoint written"
    last=$(tail -n 1 "$RUNS/$model.work/history.csv" 2>/dev/null || echo "no history yet")
    echo "$model [$state] $last"
  done
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader || true
}

# Two archives, each split into parts under 16 MiB: results (histories, logs, finished
# checkpoints) and backups (only of unfinished runs: what the next session resumes from).
collect() {
  : "${OUT:?set OUT to the folder that comes back}"
  local results=() backups=()
  for model in $MODELS; do
    for f in "$RUNS/$model.log" "$RUNS/$model.work/history.csv" "$RUNS/$model-cifar10"; do
      [ -e "$f" ] && results+=("${f#"$RUNS"/}")
    done
    if [ ! -d "$RUNS/$model-cifar10" ] && [ -d "$RUNS/$model.work/backup" ]; then
      backups+=("$model.work/backup")
    fi
  done
  [ ${#results[@]} -gt 0 ] && tar -C "$RUNS" -czf - "${results[@]}" | split -b "$PART_BYTES" -d - "$OUT/results.tgz.part"
  [ ${#backups[@]} -gt 0 ] && tar -C "$RUNS" -czf - "${backups[@]}" | split -b "$PART_BYTES" -d - "$OUT/backups.tgz.part"
  ls -l "$OUT"
  parts=$(find "$OUT" -maxdepth 1 -name '*.part*' | wc -l)
  if [ "$parts" -gt 8 ]; then
    echo "$parts files: more than the 8 that come back; collect fewer MODELS at a time" >&2
    exit 1
  fi
}

unpack() {
  local from=${1:?give the folder the files came back to}
  mkdir -p "$RUNS"
  for archive in results backups; do
    if ls "$from/$archive.tgz.part"* >/dev/null 2>&1; then
      cat "$from/$archive.tgz.part"* | tar -C "$RUNS" -xzf -
      echo "unpacked $archive into $RUNS/"
    fi
  done
}

case "${1:-}" in
  prepare) prepare ;;
  start) start ;;
  status) status ;;
  collect) collect ;;
  unpack) unpack "${2:-}" ;;
  wait)
    deadline=$(( $(date +%s) + ${2:-540} ))
    while [ "$(date +%s)" -lt "$deadline" ] && [ "$(running)" -gt 0 ]; do status; sleep 60; done
    status ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
esac
