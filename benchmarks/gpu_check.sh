#!/usr/bin/env bash
# GPU checks for the CuPy backend, meant for one short run on a lent GPU machine
# (see the issue "CuPy on a real GPU"). Everything it prints also goes to $OUT/.
#
#   bash benchmarks/gpu_check.sh            # OUT defaults to ./gpu-out
#
# Expects: CuPy for the machine's CUDA (pip install -e ".[cuda13]"), PyTorch with CUDA
# for the cross-checks, and Fashion-MNIST in $TINYCNN_DATA (copy the four .gz files
# into an ignored folder such as data/fashion-mnist and carry it).
set -uo pipefail
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
export TINYCNN_DATA="${TINYCNN_DATA:-data/fashion-mnist}"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python -c "import cupy; print('cupy', cupy.__version__, cupy.cuda.runtime.getDeviceCount(), 'devices')" \
    2>&1 | tee "$OUT/cupy.txt"

# 1. The whole test suite; the gpu-marked tests run here (CuPy gradient checks and
#    PyTorch cross-checks on the device).
timeout 240 python -m pytest -q -x -p no:cacheprovider 2>&1 | tail -30 | tee "$OUT/pytest.txt"

# 2. Same seed and settings on both backends, 2 epochs: accuracies within 0.5 points.
for backend in cupy numpy; do
    timeout 200 python examples/fashion_mnist.py --backend "$backend" --epochs 2 --seed 0 \
        --verbose 2 --json 2>&1 | tail -3 | tee "$OUT/train_$backend.txt"
done

# 3. Epoch time against PyTorch eager on the same GPU.
timeout 200 python benchmarks/epoch_time.py --backend cupy --frameworks tinycnn,torch \
    --batch-sizes 64,128,512 --steps 50 --reps 3 --json 2>&1 | tail -20 | tee "$OUT/epoch_time.txt"
