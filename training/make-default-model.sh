#!/usr/bin/env bash
# Regenerate the bundled default model (controller/models/default) from scratch: the cell model
# of issue 5 with what issue 12 added to it. Render the cell stacks, train, evaluate on the
# held-out cell stacks; fit the subspace of its training features (the unfamiliarity gate); and
# train its probe pair network on every sample family, each stack on its own drawn instrument.
#   training/make-default-model.sh WORK_DIR    (WORK_DIR needs ~80 GB; about 2.5 h on 2 cores)
# Rendering resumes where it stopped when run again; featurised stacks are cached in WORK_DIR.
# (training/make-generalist.sh makes the generalist of docs/training.md, not the default.)
set -euo pipefail
work="${1:?usage: training/make-default-model.sh WORK_DIR}"
cd "$(dirname "$0")/.."
focuslock="${FOCUSLOCK:-.venv/bin/focuslock}"
bundle=controller/models/default
families=sparse-cells,dense-cells,tissue,red-cells,spread-cells,elongated-cells,cell-clusters
families=$families,bacteria,thick-cells,pollen,diatoms,beads,tissue-section

# 800 positions of 512² (sparse and dense cells alternating), ±30 µm in 1 µm steps
"$focuslock" train-data "$work/train" --count 800 --seed 0 --size 512
# 24 held-out positions of 1024² (four patches per frame, like a quarter of the real camera)
"$focuslock" train-data "$work/test" --count 24 --seed 100000 --size 1024
"$focuslock" train "$work/train" --out "$bundle" --force --mirror --fine-range-um 6 --workers 2
"$focuslock" evaluate "$bundle" "$work/test" --report "$bundle/test-report"
# the unfamiliarity gate at the edge of 60 fresh cell stacks drawn as the training data was
"$focuslock" dataset build "$work/cells.zarr" --count 60 --seed 900000 --mirror
"$focuslock" familiarity "$bundle" "$work/cells.zarr"
# the probe pair network: 338 positions of 512² of the 13 families on drawn instruments
"$focuslock" dataset build "$work/gen.zarr" --count 338 --kinds "$families" \
    --seed 3000000 --size 512 --vary-instrument --mirror
"$focuslock" pair-probe "$bundle" "$work/gen.zarr" --mirror
