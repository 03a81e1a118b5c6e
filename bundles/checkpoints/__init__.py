"""Checkpoint handling: reading any known container safely, strict loading, and converters that turn
the official releases of each model family into our state dicts (and back)."""
