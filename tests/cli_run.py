"""One ``focuslock`` command run in-process, as a test sees it: exit status and stderr."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from controller.cli import main


def run_cli(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit status (argparse's refusals included) and stderr; a traceback fails the test."""
    try:
        code = main(list(argv))
    except SystemExit as stop:
        code = 0 if stop.code is None else int(stop.code)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err
