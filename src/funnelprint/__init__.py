"""funnelprint: interpretable customer profiles and sequence-aware recommendations
from e-commerce funnel event logs."""

__version__ = "0.1.0"
