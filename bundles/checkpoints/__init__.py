"""Checkpoint handling: reading any known container safely (``read_official_state_dict``: the intake of every
converter), strict loading, model cards, release records, and the shape every converter command shares
(``converter.py``: atomic write, printed summary, one-line errors). Each family's converter of official releases
lives in its own package and runs as ``python -m bundles.<family>.convert`` (``bundles/sat/convert.py``)."""
