"""The paper's analyses reproduced on the virtual microscope: one module per experiment, all
through one runner (runner.py); docs/experiments.md has the results."""
