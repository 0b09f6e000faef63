"""Reading torch files (model, checkpoint) without running code from them."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch


def load_weights(path: Path) -> Any:
    """`torch.load` of `path` onto the CPU as weights only: tensors, dicts, lists, strings and numbers. A pickle that
    would build anything else (and so could run code) is refused; that, or damaged bytes, is a ValueError saying why."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's notes on pickle protocols of foreign files
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except OSError:
            raise
        except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for other bytes
            raise ValueError(_reason(exc)) from exc


def _reason(exc: Exception) -> str:
    """One line: what the weights-only unpickler refused, or the first line of another error."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if lines and lines[0].startswith("Weights only load failed"):
        refused = next((line.removeprefix("WeightsUnpickler error: ") for line in lines[1:] if "GLOBAL" in line or "Unsupported" in line), "")
        return "refused: it holds more than tensors and plain data" + (f" ({refused})" if refused else "")
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
