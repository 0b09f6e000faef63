"""Image sources for the scrape stage: each one fills data/raw/<category>/ and reports provenance rows."""
