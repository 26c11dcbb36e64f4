"""The root of focuslock's own errors: what the CLI reports as a clear one-line message."""


class FocuslockError(Exception):
    """A problem the user can act on (bad input, bad config, a device fault), not a bug."""
