"""The built-in models: importing this module registers every one of them."""

from funnelprint.models import baselines, item2vec, traits  # noqa: F401
from funnelprint.models.neural import models  # noqa: F401
