#!/usr/bin/env bash
# Regenerate the bundled default model (controller/models/default) from scratch:
# render the simulated training and test stacks, train, and evaluate on the held-out test stacks.
#   training/make-default-model.sh WORK_DIR     (WORK_DIR needs ~58 GB; about 1.5 h on 2 cores)
# Rendering resumes where it stopped when run again; featurised stacks are cached in WORK_DIR.
set -euo pipefail
work="${1:?usage: training/make-default-model.sh WORK_DIR}"
cd "$(dirname "$0")/.."
focuslock="${FOCUSLOCK:-.venv/bin/focuslock}"
bundle=controller/models/default

# 800 positions of 512² (sparse and dense cells alternating), ±30 µm in 1 µm steps
"$focuslock" train-data "$work/train" --count 800 --seed 0 --size 512
# 24 held-out positions of 1024² (four patches per frame, like a quarter of the real camera)
"$focuslock" train-data "$work/test" --count 24 --seed 100000 --size 1024
"$focuslock" train "$work/train" --out "$bundle" --mirror --fine-range-um 6 --workers 2
"$focuslock" evaluate "$bundle" "$work/test" --report "$bundle/test-report"
