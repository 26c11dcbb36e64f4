"""The simulator's user-facing error: a bad sample, stack or stage configuration."""

from controller.errors import FocuslockError


class SimError(FocuslockError, ValueError):
    """A virtual-microscope configuration that cannot be simulated (the message names why)."""
