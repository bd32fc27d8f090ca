#!/usr/bin/env bash
# Train the CIFAR-10 zoo of He et al. 2015 (figure 6, table 6) side by side on one GPU.
#
#   scripts/run_zoo_gpu.sh start     # decode the data once, launch every model in the background
#   scripts/run_zoo_gpu.sh status    # one line per model: last history row, alive or not
#   scripts/run_zoo_gpu.sh collect   # copy histories, backups, logs and checkpoints to $OUT
#   scripts/run_zoo_gpu.sh wait N    # wait up to N seconds, printing status every minute
#
# Every run uses --resume, so `start` continues from the backups in $RUNS (carry them in
# from the previous session). The JAX backend is used; nothing is downloaded: the data is
# data/cifar10-jpeg.tar.gz (carry it: it is gitignored and 20 MB) and Python packages come
# from the device's environment or from wheels in .whl/ (carried, installed with --no-index).
# See docs/training.md for the whole procedure.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-runs}
DATA=${DATA:-data/cifar10-jpeg.tar.gz}
CACHE=${CACHE:-/tmp/keras_resblocks_cache}
MODELS=${MODELS:-"resnet20 resnet32 resnet44 resnet56 resnet110 plain20 plain32 plain44 plain56"}
RECIPE_FLAGS=${RECIPE_FLAGS:-"--recipe he2015 --mixed-precision bfloat16"}
PYTHON=${PYTHON:-python}
export KERAS_BACKEND=jax
# Nine processes share one GPU: no process may grab most of its memory up front.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.10}
export TF_CPP_MIN_LOG_LEVEL=3

install() {
  if ! "$PYTHON" -c "import keras_resblocks" 2>/dev/null; then
    if [ -d .whl ]; then
      "$PYTHON" -m pip install -q --no-index --find-links .whl -e . --no-build-isolation
    else
      "$PYTHON" -m pip install -q --no-deps -e . --no-build-isolation
    fi
  fi
  "$PYTHON" -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"
}

start() {
  install
  [ -f "$DATA" ] || { echo "missing $DATA (carry data/cifar10-jpeg.tar.gz)" >&2; exit 1; }
  mkdir -p "$RUNS"
  # Decode once, before nine processes would each try.
  "$PYTHON" -c "from keras_resblocks.training import load_dataset; import sys; print(load_dataset(sys.argv[1], cache_dir=sys.argv[2]).describe())" "$DATA" "$CACHE"
  for model in $MODELS; do
    if [ -f "$RUNS/$model.pid" ] && kill -0 "$(cat "$RUNS/$model.pid")" 2>/dev/null; then
      echo "$model already running"; continue
    fi
    # shellcheck disable=SC2086
    nohup "$PYTHON" scripts/train.py --model "$model" --dataset "$DATA" --data-cache "$CACHE" \
      $RECIPE_FLAGS --output "$RUNS/$model-cifar10" --work-dir "$RUNS/$model.work" \
      --resume --verbose 2 >> "$RUNS/$model.log" 2>&1 &
    echo $! > "$RUNS/$model.pid"
    echo "started $model (pid $!)"
  done
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

collect() {
  : "${OUT:?set OUT to the folder that comes back}"
  mkdir -p "$OUT/$RUNS"
  # Histories, backups (weights + optimizer state, to resume next session), logs, checkpoints.
  tar -C "$RUNS" --exclude='*.pid' -cf - . | tar -C "$OUT/$RUNS" -xf -
  du -sh "$OUT/$RUNS"
}

case "${1:-}" in
  start) start ;;
  status) status ;;
  collect) collect ;;
  wait)
    deadline=$(( $(date +%s) + ${2:-540} ))
    while [ "$(date +%s)" -lt "$deadline" ]; do status; sleep 60; done ;;
  *) sed -n '2,13p' "$0"; exit 2 ;;
esac
