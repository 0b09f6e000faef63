"""The library's stage functions called as their flows call them: from a whole, validated Params."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Params
from pipeline.dataset.scrape import ScrapeResult, UnitMapper, scrape_dataset
from pipeline.model.train import TrainingInfo, TrainingRun, train_model


def scrape_with(params: Params, raw_root: Path, map_units: UnitMapper = map) -> ScrapeResult:
    return scrape_dataset(params.source, params.data, raw_root, params.seed, params.workers, map_units)


def train_with(split: Path, models: Path, live: Path, params: Params) -> TrainingInfo:
    return train_model(split, models, live, params.train, TrainingRun(params.seed, params.workers, params.source.kind))
