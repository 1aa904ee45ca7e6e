"""pytest-xdist (`-n auto`): each worker builds and simulates in its own sim_build/<worker>/ (itx.sim.rtl.SIM_BUILD),
so no two processes compile into, run from or write results beside the same build."""
import os
from pathlib import Path

import pytest

if "PYTEST_XDIST_WORKER" in os.environ:
    base = os.environ.get("ITX_SIM_BUILD") or Path(__file__).resolve().parent / "sim_build"
    os.environ["ITX_SIM_BUILD"] = str(Path(base) / os.environ["PYTEST_XDIST_WORKER"])


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """With -n, distribute by xdist_group (the unit benches keep their builds and coverage test on one worker); runs
    before xdist's own hook turns "no" into "load". Not in addopts: pytest-benchmark would think xdist is active."""
    if getattr(config.option, "numprocesses", None) and config.option.dist in ("no", "load"):
        config.option.dist = "loadgroup"
