"""What a board is: its pins, LEDs, speed ceilings and boot-time motion settings.

``REFERENCE`` describes the reference board of firmware/README.md. A ``board.json`` beside
main.py (or the simulator's configuration) overrides any key, so a different build needs no
code change. LED positions are (x, y, d) in 0.1 mm, x along image columns, y along rows, d the
distance below the sample, in the index order the LEDs are wired.
"""


def grid_dmm(rows: int, cols: int, pitch_dmm: int, distance_dmm: int) -> list:
    """A flat grid centred on the optical axis, index = row * cols + col, like
    LedArray.planar_grid."""
    return [
        [(2 * c - (cols - 1)) * pitch_dmm // 2, (2 * r - (rows - 1)) * pitch_dmm // 2,
         distance_dmm]
        for r in range(rows)
        for c in range(cols)
    ]


MOTION = {
    "limit_min": -20000,
    "limit_max": 20000,
    "home_position": -20100,
    "speed": 4000,
    "accel": 40000,
    "heartbeat_ms": 500,
}

REFERENCE = {
    "pins": {"step": 2, "dir": 3, "enable": 4, "endstop_min": 6, "endstop_max": None,
             "leds": 16},
    "enable_active_low": True,
    "endstop_active_low": True,
    "led_kind": "ws2812",  # or "pwm": one pin per LED, listed in "led_pins"
    "led_pins": [],
    "leds": grid_dmm(8, 8, 50, 400),
    "max_speed": 20000,
    "max_accel": 400000,
    "motion": MOTION,
}


def merged(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` applied; nested dicts merge key by key."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out
