"""The colorization model: Lab color, networks, training, the colorizer, metrics, evaluation, the colorize command."""
