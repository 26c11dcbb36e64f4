"""The memory guard: work whose size a user chose (a frame size, a stack, an image header) is
weighed against the memory the machine can give before anything is allocated, and refused with
what it would need, instead of ending in a MemoryError or the kernel's OOM killer."""

from __future__ import annotations

import os
from pathlib import Path

from controller.errors import FocuslockError

GIB = 2**30


class ResourceError(FocuslockError):
    """Work that would need more memory than the machine has."""


def available_memory_bytes() -> int:
    """What can be allocated without swapping: Linux's MemAvailable (free memory plus the cache
    it can drop), else the free physical pages os.sysconf reports, else all physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    page = os.sysconf("SC_PAGE_SIZE")
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * page
    except (ValueError, OSError):  # macOS has no SC_AVPHYS_PAGES
        return int(os.sysconf("SC_PHYS_PAGES")) * page


def require_memory(what: str, need_bytes: float) -> None:
    """Refuse ``what`` (e.g. "sim stack --size 100000") when it would need more than is free."""
    have = available_memory_bytes()
    if need_bytes > have:
        raise ResourceError(f"{what} would need {need_bytes / GIB:.3g} GiB of memory, the machine "
                            f"has {have / GIB:.3g} GiB available")
