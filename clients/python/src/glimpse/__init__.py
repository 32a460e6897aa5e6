"""Glimpse's Python client: `Glimpse` (client.py) over the generated messages and stubs
(glimpse.ranking.v1, glimpse.training.v1, glimpse.data.v1)."""
from glimpse._version import __version__
from glimpse.client import FieldViolation, Glimpse, GlimpseError

__all__ = ["FieldViolation", "Glimpse", "GlimpseError", "__version__"]
