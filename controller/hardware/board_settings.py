"""What the focus board's steps, limits and LEDs mean to the driver, checked against the wire.

Every number here ends up in a CONFIGURE packet (controller/hardware/protocol.py), whose integer
fields have fixed widths; a setting that does not fit them (``steps_per_um = 1e30``, a travel of
±1e300 µm) is refused when the settings are made, naming the value and the range, so nothing
is opened, encoded or sent with it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from controller.hardware.board_link import LinkSettings
from controller.hardware.interfaces import HardwareError
from controller.optics import WS2812_BLUE_UM, WS2812_GREEN_UM, WS2812_RED_UM, LedArray

# The ranges of the protocol's integer fields (protocol.CONFIG, MOVE_REQUEST, SET_POSITION_REQUEST):
# a number outside its field cannot be sent, so the driver refuses it before encoding anything.
STEP_FIELD = (-(1 << 31), (1 << 31) - 1)  # positions, limits and moves: int32 steps
RATE_FIELD_MAX = (1 << 32) - 1  # speed (steps/s) and acceleration (steps/s²): uint32
HEARTBEAT_FIELD_MAX_MS = (1 << 16) - 1  # uint16 ms


@dataclass(frozen=True)
class FocusBoardSettings:
    """What the board's steps and LEDs mean, and how the driver paces it.

    Built by box.py from the config's ``[board]`` table (config.BoardSettings), which names the
    port; this holds what the driver does with the board once it is reached.
    ``steps_per_um`` > 0: positive steps move the objective away from the sample (conventions);
    wire the driver's DIR (or set ``dir_invert`` in the board's settings) to make it so.
    """

    steps_per_um: float = 10.0
    travel_um: tuple[float, float] = (-1000.0, 1000.0)
    speed_um_s: float = 200.0
    accel_um_s2: float = 2000.0
    home_clearance_um: float = 10.0  # the min endstop sits this far below the lower limit
    heartbeat_s: float = 0.5  # the board's deadline; the driver beats at a quarter of it
    settle_s: float = 0.05  # mechanics settle after the last step
    link: LinkSettings = field(default_factory=LinkSettings)
    leds: LedArray | None = None  # None: use the geometry the board reports
    led_na_tolerance: float = 0.02  # how far a pattern's LED may be from a real one
    led_geometry_tolerance_mm: float = 0.5
    # The peak wavelengths (µm) of each LED's red, green and blue emitters (a WS2812: the
    # datasheet's 620-630, 515-530 and 465-475 nm), and how far a pattern LED's wavelength may
    # be from the emitter that lights it: under half the closest two peaks' spacing, so no
    # wavelength could mean two emitters, and wide enough for each datasheet range.
    led_emitters_um: tuple[float, float, float] = (WS2812_RED_UM, WS2812_GREEN_UM,
                                                   WS2812_BLUE_UM)
    led_wavelength_tolerance_um: float = 0.025

    def __post_init__(self) -> None:
        numbers = (("steps_per_um", self.steps_per_um), ("travel_um", self.travel_um[0]),
                   ("travel_um", self.travel_um[1]), ("speed_um_s", self.speed_um_s),
                   ("accel_um_s2", self.accel_um_s2), ("home_clearance_um", self.home_clearance_um),
                   ("heartbeat_s", self.heartbeat_s), ("settle_s", self.settle_s))
        for name, value in numbers:
            if not math.isfinite(value):
                raise HardwareError(f"board: {name} must be finite, got {value}")
        if not self.steps_per_um > 0:
            raise HardwareError(f"board: steps_per_um must be > 0, got {self.steps_per_um}")
        if not self.travel_um[0] < self.travel_um[1]:
            raise HardwareError(f"board: travel_um must be (min, max), got {self.travel_um}")
        if not (self.speed_um_s > 0 and self.accel_um_s2 > 0 and self.heartbeat_s > 0):
            raise HardwareError("board: speed, acceleration and heartbeat must be > 0")
        if not (self.home_clearance_um >= 0 and self.settle_s >= 0):
            raise HardwareError("board: home_clearance_um and settle_s must be >= 0")
        self._check_emitters()
        self._check_fields()

    def _check_emitters(self) -> None:
        peaks = self.led_emitters_um
        if len(peaks) != 3 or not all(math.isfinite(p) and p > 0 for p in peaks):
            raise HardwareError(f"board: led_emitters_um must be the red, green and blue "
                                f"emitters' peaks in µm, got {peaks}")
        spacing = min(abs(a - b) for a, b in itertools.combinations(peaks, 2))
        tolerance = self.led_wavelength_tolerance_um
        if not (math.isfinite(tolerance) and 0 < tolerance < spacing / 2):
            raise HardwareError(
                f"board: led_wavelength_tolerance_um must be > 0 and below half the closest "
                f"emitters' spacing ({spacing / 2:g} µm), got {tolerance}")

    def _check_fields(self) -> None:
        """Every CONFIGURE number must fit its field, and the travel must span whole steps."""
        low, high = self.limit_steps
        home = self.home_steps
        lowest, highest = STEP_FIELD
        if not (lowest <= home and high <= highest):
            raise HardwareError(
                f"board: travel_um {self.travel_um} at {self.steps_per_um:g} steps/µm is "
                f"{home:.6g}..{high:.6g} steps (with the home clearance); the protocol carries "
                f"{lowest}..{highest}")
        if low >= high:
            raise HardwareError(
                f"board: travel_um {self.travel_um} at {self.steps_per_um:g} steps/µm is "
                f"{low}..{high} steps: the limits must be at least one step apart")
        for name, steps in (("speed_um_s", self.speed_steps), ("accel_um_s2", self.accel_steps)):
            if steps > RATE_FIELD_MAX:
                raise HardwareError(
                    f"board: {name} {getattr(self, name):g} at {self.steps_per_um:g} steps/µm "
                    f"is {steps:.6g} steps; the protocol carries at most {RATE_FIELD_MAX}")
        if self.heartbeat_ms > HEARTBEAT_FIELD_MAX_MS:
            raise HardwareError(
                f"board: heartbeat_s {self.heartbeat_s:g} is {self.heartbeat_ms:.6g} ms; the "
                f"protocol carries at most {HEARTBEAT_FIELD_MAX_MS}")

    @property
    def limit_steps(self) -> tuple[int, int]:
        """The travel limits in steps, as CONFIGURE sends them and the board enforces them."""
        low, high = (self.steps_per_um * z for z in self.travel_um)
        if not (math.isfinite(low) and math.isfinite(high)):
            raise HardwareError(f"board: travel_um {self.travel_um} at {self.steps_per_um:g} "
                                f"steps/µm is beyond any step count")
        return round(low), round(high)

    @property
    def home_steps(self) -> int:
        """Where homing puts the position: the clearance below the lower limit, at least a step."""
        clearance = self.home_clearance_um * self.steps_per_um
        if not math.isfinite(clearance):
            raise HardwareError(f"board: home_clearance_um {self.home_clearance_um:g} at "
                                f"{self.steps_per_um:g} steps/µm is beyond any step count")
        return self.limit_steps[0] - max(1, round(clearance))

    @property
    def speed_steps(self) -> int:
        return self._rate_steps(self.speed_um_s)

    @property
    def accel_steps(self) -> int:
        return self._rate_steps(self.accel_um_s2)

    @property
    def heartbeat_ms(self) -> int:
        return round(self.heartbeat_s * 1000)

    def _rate_steps(self, per_um: float) -> int:
        """A rate in steps as CONFIGURE sends it (at least 1); one that overflows a float is
        beyond the field, which __post_init__ then says."""
        steps = per_um * self.steps_per_um
        return max(1, round(steps)) if math.isfinite(steps) else RATE_FIELD_MAX + 1
