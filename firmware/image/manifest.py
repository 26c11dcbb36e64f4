# ruff: noqa: F821 - the manifest functions are given by MicroPython's tools/makemanifest.py
# The focus board image: the Pico's stock frozen modules, then the firmware and its main.py.
# Paths are relative to this file. A frozen main.py runs at power-up (before one on the board's
# filesystem), so the image needs no file copied onto the board.
include("$(PORT_DIR)/boards/manifest.py")
package("focusboard", base_path="..")
module("main.py", base_path="..")
