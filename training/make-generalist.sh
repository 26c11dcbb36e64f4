#!/usr/bin/env bash
# Make the generalist of issue 12 from scratch (docs/training.md: measured, not the bundled
# default; training/make-default-model.sh makes that). Render and featurise simulated stacks of
# every sample family, each on its own drawn instrument, into a dataset store; train; measure
# generalisation by leaving each family out (which also calibrates the confidence on families
# the network never saw); calibrate the bundle with those readings; and test it on the held-out
# cell stacks of the first default model.
#   training/make-generalist.sh WORK_DIR    (the bundle: WORK_DIR/generalist; WORK_DIR needs ~1 GB;
#   about 2.5 h on 2 cores)
# Every step resumes where it stopped when run again.
set -euo pipefail
work="${1:?usage: training/make-generalist.sh WORK_DIR}"
cd "$(dirname "$0")/.."
focuslock="${FOCUSLOCK:-.venv/bin/focuslock}"
python="${PYTHON:-.venv/bin/python}"
bundle="$work/generalist"
families=sparse-cells,dense-cells,tissue,red-cells,spread-cells,elongated-cells,cell-clusters
families=$families,bacteria,thick-cells,pollen,diatoms,beads,tissue-section

# 1040 positions of 512² (80 per family), ±30 µm in 1 µm steps, features of each plane and its
# x-mirror; each stack on an instrument drawn by its seed (LED position, aberrations, tilt,
# exposure, sensor)
"$focuslock" dataset build "$work/generalist.zarr" --count 1040 --kinds "$families" --seed 0 \
    --size 512 --vary-instrument --mirror
"$focuslock" train "$work/generalist.zarr" --out "$bundle" --force --mirror --fine-range-um 6 \
    --patience 10
"$python" benchmarks/bench_lofo.py "$work/generalist.zarr" --work "$work/lofo" --patience 10
"$focuslock" confidence "$bundle" --readings "$work/lofo"
# 24 held-out positions of 1024² (sparse and dense cells, ideal instrument): the first default
# model's test set
"$focuslock" train-data "$work/test" --count 24 --seed 100000 --size 1024
"$focuslock" evaluate "$bundle" "$work/test" --report "$work/generalist-test-report"
