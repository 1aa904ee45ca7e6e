"""Outputs appear whole or not at all: a run writes into a staging directory beside its target and renames it
into place at the end, so an interrupted, failed or concurrent run never leaves a half-written or mixed set.

staged_dir(target): the target directory is replaced as a whole (stale files of an earlier run go with it);
only an empty directory or one this kind of run wrote (it holds `marker`) is ever replaced. A lock beside the
target (flock, released by the kernel if the process dies) refuses a second writer with a one-line error.
staged_files(out): for a shared directory (reports/): the files are staged, then moved in one quick step.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

from itx.golden.errors import UserError


def check_target(target: str | Path, marker: str | None = None, what: str = "output directory") -> Path:
    """Refuse before any long work: an empty path, a file where a directory goes, or (with `marker`) a non-empty
    directory this kind of run did not write (it would be replaced as a whole)."""
    if not str(target).strip():
        raise UserError(f"{what}: empty path")
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise UserError(f"{target}: {what} exists and is not a directory")
    if marker and target.is_dir() and any(target.iterdir()) and not (target / marker).is_file():
        raise UserError(f"{target}: {what} is not empty and holds no {marker}; refusing to replace it "
                        "(choose a new or empty directory)")
    parent = target.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UserError(f"{target}: {what} cannot be created ({parent} is not a writable directory)")
    return target


@contextmanager
def _lock(target: Path):
    """Exclusive flock on <parent>/.<name>.lock; the file is removed on release (re-checked by inode, so a
    writer never locks a file another one already unlinked)."""
    path = target.parent / f".{target.name}.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"{target}: another run is writing this directory (lock {path}); wait for it or "
                            "choose another output") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        os.unlink(path)
        os.close(fd)


@contextmanager
def _sigint_deferred():
    """Ctrl-C waits until the block is done (the two renames of a swap must not be split)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = []
    previous = signal.signal(signal.SIGINT, lambda *_: pending.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt


@contextmanager
def staged_dir(target: str | Path, marker: str | None = None, what: str = "output directory"):
    """Yield an empty staging directory; on success it replaces `target` whole, on any exception (Ctrl-C
    included) it is removed and `target` is untouched."""
    target = check_target(target, marker, what).resolve()   # "." and symlinked parents renamed by real path
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target):
        check_target(target, marker, what)      # as it is now that we hold the lock
        for kind in ("tmp", "old"):     # left by a killed run (we hold the lock: no live run owns them)
            for stale in target.parent.glob(f".{target.name}.{kind}-*"):
                shutil.rmtree(stale, ignore_errors=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        old = None
        try:
            yield stage
            os.chmod(stage, 0o777 & ~_umask())
            with _sigint_deferred():
                if target.exists():
                    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
                    os.replace(target, old / "set")
                try:
                    os.replace(stage, target)
                except BaseException:
                    if old is not None:
                        os.replace(old / "set", target)     # the earlier set stays
                    raise
        finally:
            shutil.rmtree(stage, ignore_errors=True)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_files(out: str | Path, what: str = "output directory"):
    """Yield a staging directory beside `out`; on success its files move into `out` together (each move an atomic
    rename, the group not split by Ctrl-C), on any exception none does and `out` is not even created."""
    out = check_target(out, None, what).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with _lock(out):
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            yield stage
            with _sigint_deferred():
                out.mkdir(exist_ok=True)
                for f in sorted(stage.iterdir()):
                    os.chmod(f, 0o666 & ~_umask())
                    os.replace(f, out / f.name)
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
