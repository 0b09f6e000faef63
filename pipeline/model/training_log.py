"""The training's log in data/training: dvclive's curves, one point per finished epoch, and each epoch's held-out
samples. The checkpoint is its single source of truth: opening the log drops whatever a run killed at any moment wrote
after its last checkpoint (a torn row, an empty metrics.json, the samples of an unfinished epoch) and writes the curves
anew from the checkpoint's history."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from dvclive import Live
from PIL import Image

from pipeline.core.fsutil import atomic_write_bytes

SAMPLES = "samples"  # live_dir/plots/images/samples/epoch-NNN.png: the held-out samples of each epoch


def samples_image(live_dir: Path, epoch: int) -> Path:
    """Where the samples colorized at the end of `epoch` are kept (when train.samples > 0), beside dvclive's curves."""
    return live_dir / "plots" / "images" / SAMPLES / f"epoch-{epoch:03d}.png"


class TrainingLog:
    """Rank 0's log of the epochs: their metrics as dvclive curves, their samples as images."""

    def __init__(self, live: Live, live_dir: Path) -> None:
        self.live = live
        self.live_dir = live_dir

    def add_epoch(self, epoch: int, metrics: dict[str, float], samples: Image.Image | None = None) -> None:
        """Record `epoch` (the next one): its samples, written atomically, then its point on every curve."""
        if samples is not None:
            encoded = io.BytesIO()
            samples.save(encoded, "PNG")
            atomic_write_bytes(samples_image(self.live_dir, epoch), encoded.getvalue())
        for name, value in metrics.items():
            self.live.log_metric(f"train/{name}", value)
        self.live.next_step()


@contextmanager
def training_log(live_dir: Path, history: Sequence[dict[str, float]]) -> Iterator[TrainingLog]:
    """The log of a training that has finished len(history) epochs (0: a fresh start): everything in live_dir but the
    samples of those epochs is removed, and the curves are written again from `history`."""
    kept = {samples_image(live_dir, epoch) for epoch in range(1, len(history) + 1)}
    for path in sorted(live_dir.rglob("*")) if live_dir.is_dir() else ():
        if not path.is_dir() and path not in kept:
            path.unlink()
    with Live(dir=str(live_dir), resume=True, save_dvc_exp=False, dvcyaml=None) as live:  # resume: keep the samples
        log = TrainingLog(live, live_dir)
        for epoch, metrics in enumerate(history, 1):
            log.add_epoch(epoch, metrics)
        yield log
