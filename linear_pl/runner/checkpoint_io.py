"""Writing checkpoints so that a kill at any moment leaves the old file or the new one: in the background,
through a flushed temporary file beside the target, renamed over it."""

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from linear_pl.runner.errors import RunFilesError


def to_host(value: Any) -> Any:
    """A copy of a checkpoint in host memory: every tensor copied (training goes on changing the
    originals in place), every dict, list and tuple rebuilt; other values are shared."""
    if torch.is_tensor(value):
        return value.detach().to(device="cpu", copy=True)  # host memory, whatever the accelerator
    if isinstance(value, dict):  # OrderedDict, Lightning's AttributeDict: their type kept
        copied = type(value)((k, to_host(v)) for k, v in value.items())
        if hasattr(value, "__dict__"):
            vars(copied).update(vars(value))  # a state_dict's _metadata
        return copied
    if type(value) in (list, tuple):
        return type(value)(to_host(v) for v in value)
    return value


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint so that a kill at any moment leaves either the old file or the new one, in the
    background: training goes on while it is written.

    Lightning's own save goes through a temporary file in $TMPDIR and then moves it; when $TMPDIR is
    on another filesystem the move is a plain copy, and a kill during it leaves a truncated file.
    Here the temporary file sits beside its target, is flushed to disk, then renamed over it.

    ``save_checkpoint`` copies the checkpoint to host memory and hands the copy to a thread that writes
    it; one write at a time, so host memory holds at most one copy (a save waits for the write before
    it). :meth:`link` gives a written file a second name (no second write); :meth:`wait` waits for the
    write in flight and raises its error, if any.
    Loading always uses torch's safe loader: a checkpoint may come from anywhere.
    """

    def __init__(self) -> None:
        super().__init__()
        self._thread: threading.Thread | None = None
        self._error: OSError | None = None
        self._lock = threading.Lock()
        self._writing: Path | None = None  # the file being written, until its write and links are done
        self._then_link: list[Path] = []  # second names for it, made by the writer once it is on disk
        self.writer_cpu_seconds = 0.0  # of the latest finished write
        self.writer_cpu_total = 0.0  # of all of them
        self.writes: list[tuple[float, float]] = []  # (when its state was taken, when it was on disk), monotonic

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if get_filesystem(path).protocol not in ("file", ("file", "local")):
            return super().save_checkpoint(checkpoint, path)
        self.wait()
        taken = time.monotonic()
        copy = to_host(checkpoint)
        self._writing = Path(path)
        self._thread = threading.Thread(target=self._write, args=(copy, Path(path), taken), name="checkpoint")
        self._thread.start()

    def _write(self, checkpoint: dict[str, Any], path: Path, taken: float) -> None:
        start = time.thread_time()
        try:
            write_atomically(path, checkpoint)
            self.writes.append((taken, time.monotonic()))
            with self._lock:  # no name is added once the writer has taken them
                names, self._then_link, self._writing = self._then_link, [], None
            for name in names:
                link_atomically(path, name)
        except OSError as error:
            self._error = error
        finally:
            with self._lock:
                self._writing, self._then_link = None, []
            self.writer_cpu_seconds = time.thread_time() - start
            self.writer_cpu_total += self.writer_cpu_seconds

    def link(self, source: Path, path: Path) -> None:
        """``path`` as a second name of ``source``: no second write. Where ``source`` is being written, the
        writer makes it once the write is done, and training does not wait for that."""
        with self._lock:
            if self._writing == source:
                self._then_link.append(path)
                return
        self.wait()
        try:
            link_atomically(source, path)
        except OSError as error:
            raise RunFilesError.of(error) from error

    def busy(self) -> bool:
        """Whether a write is in flight."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self) -> None:
        """Wait for the write in flight; a failed write's error here, once, as :class:`RunFilesError`."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None:
            raise RunFilesError.of(error) from error

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)


def ours(io: object) -> bool:
    """Whether the trainer's checkpoint IO is the run's own (a local directory's writer in the background)."""
    return isinstance(io, AtomicCheckpointIO)


def write_atomically(path: Path, checkpoint: dict[str, Any] | bytes) -> None:
    """A checkpoint, or any bytes (one already serialized, a sweep's file), to ``path`` through a flushed
    temporary file beside it: a reader never sees half a file, nor a crash leaves one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            if isinstance(checkpoint, bytes):
                f.write(checkpoint)
            else:
                torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_directory(path.parent)


def link_atomically(source: Path, path: Path) -> None:
    """``path`` as a second name of the written file ``source``: a hard link made beside ``path`` and
    renamed over it (a flushed copy where the filesystem has no hard links)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_directory(path.parent)


def fsync_directory(folder: Path) -> None:
    """Make a rename in ``folder`` itself durable."""
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
