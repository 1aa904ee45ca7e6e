"""pytest-xdist (`-n auto`): each worker builds and simulates in its own sim_build/<worker>/ (itx.sim.rtl.SIM_BUILD),
so no two processes compile into, run from or write results beside the same build."""
import os
from pathlib import Path

if "PYTEST_XDIST_WORKER" in os.environ:
    base = os.environ.get("ITX_SIM_BUILD") or Path(__file__).resolve().parent / "sim_build"
    os.environ["ITX_SIM_BUILD"] = str(Path(base) / os.environ["PYTEST_XDIST_WORKER"])
