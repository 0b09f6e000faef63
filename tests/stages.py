"""The scrape stage's library function called as its flow calls it: from a whole, validated Params (training's: run_training
in flows.train)."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Params
from pipeline.dataset.scrape import ScrapeResult, UnitMapper, scrape_dataset


def scrape_with(params: Params, raw_root: Path, map_units: UnitMapper = map) -> ScrapeResult:
    return scrape_dataset(params.source, params.data, raw_root, params.seed, params.workers, map_units)
