import os

import pytest
from hypothesis import settings

# Derandomized so that CI and a developer see the same examples, byte for byte.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="module")
def one_blas_thread():
    """Small GEMMs on a busy machine: multi-threaded OpenBLAS spin-waits (10-1000x slower)."""
    from itx.evaluation import one_blas_thread
    with one_blas_thread():
        yield
