"""What a test module needs beyond the base install (the serve and test extras, Debian programs): without it the
module is skipped, except under ``MEDSEG_REQUIRE_SERVE`` (which ``.ci/run`` sets, having installed all of it),
where it fails, so CI can never pass by skipping the live server, archive and browser tests."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

__all__ = ["require"]

#: program -> (where Debian puts it when it is not on PATH, the apt packages that bring it)
PROGRAMS = {"Orthanc": ("/usr/sbin/Orthanc", "orthanc orthanc-dicomweb"), "chromium": ("/usr/bin/chromium", "chromium")}


def require(packages: tuple[str, ...] = (), programs: tuple[str, ...] = ()) -> None:
    """Skip (or, under ``MEDSEG_REQUIRE_SERVE``, fail) the calling module when one of the Python ``packages``
    or the ``programs`` (keys of :data:`PROGRAMS`) is missing, naming what to install."""
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    why = f"{', '.join(missing)} not installed (the serve and test extras: pip install -e \".[test,serve]\")" if missing else ""
    for program in programs:
        fallback, apt = PROGRAMS[program]
        if not why and not (shutil.which(program) or os.access(fallback, os.X_OK)):
            why = f"{program} is not installed (apt-get install {apt})"
    if not why:
        return
    if os.environ.get("MEDSEG_REQUIRE_SERVE"):  # .ci/run installs the extras and the programs: there this must run
        pytest.fail(f"{why} but MEDSEG_REQUIRE_SERVE is set", pytrace=False)
    pytest.skip(why, allow_module_level=True)
