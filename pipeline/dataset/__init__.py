"""Building the dataset: sources, scrape, clean, resize, split (one module per DVC stage)."""
