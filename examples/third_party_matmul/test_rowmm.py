"""pytest entry of the example: `itx vectors gemm` writes the vectors, rowmm is built for their widths and shape
(parameters from the manifest) and verified under Icarus by tb_rowmm.py."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from itx.sim import kit

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("widths", [[], ["--in-bits", "10", "--acc-bits", "16"]], ids=["config", "10-16"])
def test_rowmm(tmp_path, widths):
    """Three GEMMs (1, 5 and 9 rows) at hw/config.toml's widths, and at 10/16 bits where the sums wrap."""
    out = tmp_path / "vectors"
    subprocess.run([sys.executable, "-m", "itx.cli", "vectors", "gemm", "--out", str(out), "--shape", "5x4x3",
                    "--shape", "1x4x3", "--shape", "9x4x3", "--count", "3", "--seed", "1", *widths], check=True)
    vec = kit.read_vectors(out)
    (k, n), = {g.b.shape for g in vec.gemms}  # rowmm's K and N are parameters: one shape of B per build
    kit.run(toplevel="rowmm", sources=[HERE / "rtl" / "rowmm.v"], test_module="tb_rowmm", module_dir=HERE,
            parameters={"DW": vec.in_bits, "ACCW": vec.acc_bits, "KDIM": k, "NDIM": n},
            args={"vectors": str(out)}, build_dir=tmp_path / "build")
