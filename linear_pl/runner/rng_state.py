"""The global random states (torch, numpy, Python) as a checkpoint keeps them.

A user's ``DataLoader(shuffle=True)`` draws each epoch's order from them, and Lightning's checkpoints do not
keep them: without them a resumed run would shuffle differently from an uninterrupted one.
"""

import random
from typing import Any

import numpy as np
import torch


def rng_states() -> dict[str, Any]:
    """The global random states, in types torch's safe loader accepts (no numpy objects)."""
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gaussian),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Put back the random states :func:`rng_states` took."""
    torch.set_rng_state(states["torch"])
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
