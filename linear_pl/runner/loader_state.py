"""Train loaders that resume within an epoch: the same batches, in the same order, from where a checkpoint was saved.

Lightning saves the ``state_dict()`` of every train loader that has one in each checkpoint, and on a
resume within an epoch hands it back to ``load_state_dict()`` just before it asks the loader for the
epoch's iterator (``FitLoop.setup_data``). A plain ``torch.utils.data.DataLoader`` has neither, so
Lightning starts the epoch's iterator afresh and trains its first batches again (with a warning).

:func:`resumable` gives a ``DataLoader`` (the user's own, of any subclass) both methods, by making its
class a subclass with :class:`ResumableLoader` mixed in: Lightning's DDP sampler injection rebuilds the
loader with ``type(loader)``, so it stays resumable. Its state is small: how many batches the epoch's
iterator had served, and torch's global random state at the two moments the iterator draws from it
(its creation, where the workers' base seed is drawn, and the first index, where a ``RandomSampler``
draws the epoch's order). Resuming replays those two draws from the saved states and skips the
batches already trained at the index level (no sample is loaded, with or without workers), then puts
the random state back, so that everything after continues from the checkpoint's state.

torchdata's ``StatefulDataLoader`` does the same for a loader built as one (Lightning saves it as
is; this leaves it alone), but converting a user's ``DataLoader`` to it would change the order that
its ``shuffle=True`` draws, and still needs the global random state replayed as here.
"""

import functools
from collections.abc import Iterator
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.data import sized_len
from lightning_utilities.core.apply_func import apply_to_collection
from torch.utils.data import DataLoader, IterableDataset

from linear_pl.runner.internals import (
    iterator_served,
    keeps_its_own_state,
    set_iterator_served,
    train_loader_source,
    train_loaders,
)

_CLASSES: dict[type, type] = {}


class ResumableLoader:
    """What a ``DataLoader`` class gains: ``state_dict`` / ``load_state_dict`` of the epoch under way.

    Not a base class: a loader's ``__class__`` can only be set to a class of the same layout, and a
    second base changes it (CPython 3.11). :func:`_make_resumable` copies these methods into a subclass
    of the loader's own class, which it records as ``_base``.

    Only torch's global random state is replayed: it is what ``DataLoader``, ``RandomSampler`` and
    ``DistributedSampler`` draw from. A sampler of the user's that draws from Python's or numpy's
    generator gets the same order only when the checkpoint was saved at an epoch's end.
    """

    _base: type = DataLoader
    # Class attributes as defaults: Lightning may rebuild the loader through the user's own __init__.
    _resume: dict | None = None  # the state to resume from, for the next iterator
    _live: Any = None  # the epoch's iterator
    _iter_rng: torch.Tensor | None = None  # torch's random state when the iterator was made
    _index_rng: torch.Tensor | None = None  # ... and when it drew its first index
    _replay_index_rng: torch.Tensor | None = None
    _skip = 0

    def __iter__(self) -> Iterator:
        resume, self._resume = self._resume, None
        self._skip, self._replay_index_rng = 0, None
        outer = torch.get_rng_state()
        if resume is not None:
            epoch = resume.get("sampler_epoch")
            for sampler in (getattr(self, "sampler", None), getattr(self.batch_sampler, "sampler", None)):
                if epoch is not None and hasattr(sampler, "set_epoch"):
                    sampler.set_epoch(epoch)  # with workers the order is drawn now, before Lightning sets it
            torch.set_rng_state(resume["iter_rng"])
            if not isinstance(self.dataset, IterableDataset):
                self._skip, self._replay_index_rng = resume["taken"], resume["index_rng"]
        self._iter_rng, self._index_rng = torch.get_rng_state(), None
        iterator = self._base.__iter__(self)
        self._live = iterator
        if resume is not None:
            torch.set_rng_state(outer)
            if isinstance(self.dataset, IterableDataset):  # no indices to skip: its batches are fetched
                for _ in range(resume["taken"]):
                    next(iterator)
            else:
                set_iterator_served(iterator, resume["taken"])
        return iterator

    @property
    def _index_sampler(self) -> "_RecordedIndices":
        return _RecordedIndices(self, self._base._index_sampler.fget(self))

    def state_dict(self) -> dict[str, Any]:
        served = 0 if self._live is None else iterator_served(self._live)
        # Lightning fetches one batch ahead from a loader without a length: that one was not trained.
        ahead = 0 if sized_len(self) is not None else 1
        epoch = getattr(getattr(self, "sampler", None), "epoch", None)  # a DistributedSampler's
        return {
            "taken": max(served - ahead, 0),
            "iter_rng": self._iter_rng,
            "index_rng": self._index_rng,
            "sampler_epoch": epoch if isinstance(epoch, int) else None,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume = state_dict if state_dict.get("iter_rng") is not None else None


class _RecordedIndices:
    """The loader's index sampler, iterated lazily as torch iterates it; records (or, resuming, replays)
    torch's random state at the first index, and skips the indices of the batches already trained."""

    def __init__(self, loader: ResumableLoader, sampler: Any) -> None:
        self.loader, self.sampler = loader, sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator:
        loader = self.loader
        skip, replay = loader._skip, loader._replay_index_rng
        loader._skip, loader._replay_index_rng = 0, None  # once: persistent workers iterate this again
        outer = torch.get_rng_state()
        if replay is not None:
            torch.set_rng_state(replay)
        loader._index_rng = torch.get_rng_state()
        indices = iter(self.sampler)  # a generator's draw happens at its first next, below
        try:
            for _ in range(skip):
                next(indices)
            first = next(indices)
        except StopIteration:
            return
        finally:
            if replay is not None:
                torch.set_rng_state(outer)
        yield first
        yield from indices


def resumable(loaders: Any) -> Any:
    """Each ``DataLoader`` in ``loaders`` (one, or a list or dict of them), made resumable; others as they are."""
    return apply_to_collection(loaders, DataLoader, _make_resumable)


def _make_resumable(loader: DataLoader) -> DataLoader:
    if keeps_its_own_state(loader):  # torchdata's StatefulDataLoader, ...
        return loader
    cls = type(loader)
    if cls not in _CLASSES:
        methods = {k: v for k, v in vars(ResumableLoader).items() if k not in ("__dict__", "__weakref__", "__doc__")}
        _CLASSES[cls] = type(cls.__name__, (cls,), {**methods, "_base": cls, "__module__": cls.__module__})
    loader.__class__ = _CLASSES[cls]
    return loader


def make_train_loaders_resumable(trainer: L.Trainer) -> None:
    """Make the loaders the fit will train on resumable, by wrapping the hook that returns them."""
    source = train_loader_source(trainer)
    if source is None:
        return
    instance, name = source.instance, source.name
    if not isinstance(instance, (L.LightningModule, L.LightningDataModule)):
        source.instance = resumable(instance)  # loaders given to fit() directly
        return
    original = getattr(instance, name)
    if getattr(original, "_makes_resumable", False):
        return

    @functools.wraps(original)  # Lightning's is_overridden follows __wrapped__
    def loaders() -> Any:
        return resumable(original())

    loaders._makes_resumable = True
    setattr(instance, name, loaders)


def undo_train_loaders_resumable(trainer: L.Trainer) -> None:
    """Give the data module or model its own hook back (the loaders it made keep their class)."""
    source = train_loader_source(trainer)
    if source is not None and getattr(vars(source.instance).get(source.name), "_makes_resumable", False):
        delattr(source.instance, source.name)


def unresumable_loaders(trainer: L.Trainer) -> list[str]:
    """The type names of the train loaders that cannot resume within an epoch."""
    return [type(loader).__name__ for loader in train_loaders(trainer) if not keeps_its_own_state(loader)]
