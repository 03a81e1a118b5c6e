"""Engines: the loops that drive inference over cases, evaluation, and training."""
