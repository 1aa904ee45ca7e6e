"""Runs a report's measurements as independent tasks: in this process (workers 0), on a Dask LocalCluster of
single-threaded worker processes (one per core by default), or on an existing Dask cluster (a scheduler address).
Every result is written to the content-hash Cache as it arrives, so an interrupted report resumes where it
stopped, and the report is assembled from the values alone: byte-identical whatever the workers or the order in
which they finish."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Callable

from itx.report.measure import Cache

# The environment of each LocalCluster worker process: one BLAS thread that sleeps instead of spinning. It replaces
# Dask's default, whose MALLOC_TRIM_THRESHOLD_ turns off glibc's dynamic mmap threshold: every large numpy
# temporary is then mapped and page-faulted anew (points measured 2x slower).
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "OMP_WAIT_POLICY": "PASSIVE"}


def default_workers() -> int:
    return len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class Job:
    """fn(*args) is cached under key. stamped: fn returns (weights sha, code version, value), which must equal
    key's "weights" and "code" (a remote worker with other weights or code would mix results silently)."""
    key: dict
    fn: Callable
    args: tuple
    stamped: bool = False

    def value(self, result):
        if not self.stamped:
            return result
        weights, code, value = result
        if (weights, code) != (self.key["weights"], self.key["code"]):
            raise RuntimeError(f"a worker ran weights {weights} / code {code}, this report needs "
                               f"{self.key['weights']} / {self.key['code']}: install the same itx and models there")
        return value


class Executor:
    """map(jobs) -> their values in job order, computing only the cache misses. workers 0 (and no scheduler):
    in this process, no Dask; otherwise a dask.distributed Client on `scheduler` or on a LocalCluster of
    `workers` processes with one thread each."""

    def __init__(self, cache: Cache, workers: int | None = None, scheduler: str | None = None,
                 progress: bool = True) -> None:
        if workers is not None and (isinstance(workers, bool) or workers < 0):
            raise ValueError(f"--workers must be >= 0, got {workers}")
        self.cache, self.progress, self.scheduler = cache, progress, scheduler
        self.workers = default_workers() if workers is None else workers
        self.client = self.cluster = None

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        for part in (self.client, self.cluster):
            if part is not None:
                part.close()

    def _client(self):
        if self.client is None:
            import dask
            from dask.distributed import Client, LocalCluster

            if self.scheduler:
                self.client = Client(self.scheduler)
            else:
                with dask.config.set({"distributed.nanny.pre-spawn-environ": WORKER_ENV}):
                    self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                                dashboard_address=None, silence_logs=logging.ERROR)
                self.client = Client(self.cluster)
        return self.client

    def map(self, jobs: list[Job], desc: str) -> list:
        from tqdm import tqdm

        values = [self.cache.get(j.key) for j in jobs]
        todo = [i for i, v in enumerate(values) if v is None]
        with tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=desc, unit="point",
                  disable=not self.progress) as bar:
            if todo and self.workers == 0 and not self.scheduler:
                for i in todo:
                    values[i] = self.cache.put(jobs[i].key, jobs[i].value(jobs[i].fn(*jobs[i].args)))
                    bar.update()
            elif todo:
                from dask.distributed import as_completed

                client = self._client()
                futures = {client.submit(jobs[i].fn, *jobs[i].args, pure=False): i for i in todo}
                for future in as_completed(futures):
                    i = futures[future]
                    values[i] = self.cache.put(jobs[i].key, jobs[i].value(future.result()))
                    bar.update()
        return values
