"""Progress bars on a terminal only.

A bar redrawn with carriage returns is unreadable in a log file or a CI console (hundreds of partial lines
glued together), so bars show only when stderr is a terminal; the log lines (training steps, finished
cases) carry the same information everywhere.
"""

from __future__ import annotations

import sys

__all__ = ["show_progress"]


def show_progress(requested: bool) -> bool:
    """True when a progress bar was ``requested`` and stderr is an interactive terminal."""
    return bool(requested) and sys.stderr.isatty()
