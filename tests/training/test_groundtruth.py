"""Ground truth from the incoherent channel against the simulator's known focal plane."""

import numpy as np
import pytest

from controller.groundtruth import GroundTruthError, find_focus
from controller.stackio import FocalStack
from tests.conftest import sim_stack


@pytest.mark.slow
def test_focus_found_within_tolerance_on_both_cell_kinds():
    found = []
    for kind in ("sparse-cells", "dense-cells"):
        for seed in range(50, 56):
            stack = sim_stack(kind, seed)
            assert stack.focus_z_um is not None
            found.append(find_focus(stack).focus_z_um - stack.focus_z_um)
    errors = np.abs(found)
    assert np.median(errors) <= 0.15  # the tolerance at 1 µm spacing
    assert errors.max() < 0.5


def test_focus_moves_with_the_sample_not_with_the_stack():
    """The same sample 2.2 µm further: the measured focus moves by 2.2 µm (whatever the sample's
    own offset between its sharpest plane and its mid-plane)."""
    near = find_focus(sim_stack("sparse-cells", 3, focus_um=0.4)).focus_z_um
    far = find_focus(sim_stack("sparse-cells", 3, focus_um=2.6)).focus_z_um
    assert far - near == pytest.approx(2.2, abs=0.15)


def test_stack_without_incoherent_channel_is_refused():
    stack = sim_stack("sparse-cells", 4)
    autofocus_only = FocalStack(stack.images[:1], stack.z_um, stack.channels[:1], stack.optics)
    with pytest.raises(GroundTruthError, match="no incoherent ground-truth channel.*'autofocus' "
                                               r"\(1 LED\)"):
        find_focus(autofocus_only)


def test_focus_outside_the_stack_is_refused():
    stack = sim_stack("dense-cells", 5, focus_um=6.8)  # planes reach 7 µm: no peak inside
    with pytest.raises(GroundTruthError, match="not inside the stack's z range"):
        find_focus(stack)
