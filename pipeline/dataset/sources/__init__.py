"""Image sources for the scrape stage, found by name, as networks are: the module <kind>.py defines one `Source`
subclass (base.py), selected by `source.kind: <kind>`, whose params model (params.py) is `source.<kind>`. Adding a
source is adding its module and its params model."""
