"""Command-line interface. Nothing else in the package imports it."""
