"""focuslock's controller: everything that runs on the focus-lock box (and its virtual twin)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("focuslock")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
