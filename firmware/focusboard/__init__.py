"""focusboard: the focus board's firmware logic, the same under MicroPython and CPython.

The hardware layer is the only part that differs: ``hal_rp2`` drives the RP2040's pins, PIO,
timers and watchdog; ``hal_sim`` models the motor, endstops and LEDs for tests and the twin.
"""

FIRMWARE_VERSION = (1, 1, 0)  # 1.1: colour LEDs (SET_LEDS_RGB)
