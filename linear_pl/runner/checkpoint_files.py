"""Checkpoint files a command reads: ``--ckpt_path last|best|PATH`` found, loaded safely, checked against the model."""

from pathlib import Path

import torch

from linear_pl.runner.errors import UsageError


def resolve_checkpoint(ckpt_path: str | None, root: Path) -> Path | None:
    """``last`` or ``best``: that file of the newest run under ``root`` that has one; anything else is a path.

    Lightning's own ckpt_path="last" looks only in the new run's (empty) folder and silently trains
    from scratch, which is why this exists.
    """
    if ckpt_path is None:
        return None
    if ckpt_path in ("last", "best"):
        runs = list((root / "lightning_logs").glob(f"version_*/checkpoints/{ckpt_path}.ckpt"))
        if not runs:
            raise UsageError(
                f"--ckpt_path {ckpt_path}: no earlier run with a checkpoint under {root / 'lightning_logs'}"
            )
        return max(runs, key=lambda p: int(p.parent.parent.name.removeprefix("version_")))
    path = Path(ckpt_path)
    if not path.is_file():
        raise UsageError(f"--ckpt_path {ckpt_path}: no such file")
    return path


def load_checkpoint_safely(path: Path) -> dict:
    """torch.load with weights_only=True: a checkpoint that would run code when unpickled is refused."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, not a checkpoint, or unsafe to unpickle: all unusable
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"--ckpt_path {path}: not a usable checkpoint ({reason})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UsageError(f"--ckpt_path {path}: not a usable checkpoint (no state_dict)")
    return checkpoint


def check_checkpoint_fits(path: Path, checkpoint: dict, model: torch.nn.Module) -> None:
    """Fail in one line when the checkpoint's parameters do not fit this run's model."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in checkpoint["state_dict"].items()}
    if expected != found:
        raise UsageError(
            f"--ckpt_path {path}: holds parameters {found}, but this run's model has {expected} "
            "(give the --model, --data and the arguments it was trained with)"
        )


def version_of(checkpoint: Path | None, root: Path) -> int | None:
    """The run version a checkpoint belongs to, if it lies in root/lightning_logs/version_N/checkpoints."""
    if checkpoint is None:
        return None
    run_dir = checkpoint.resolve().parent.parent
    if run_dir.parent == (root / "lightning_logs").resolve() and run_dir.name.startswith("version_"):
        return int(run_dir.name.removeprefix("version_"))
    return None
