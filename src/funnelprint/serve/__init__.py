"""The real-time service: events in over HTTP into a durable store (:mod:`.store`), profiles,
similar customers and recommendations out from the loaded models (:mod:`.models`), behind
API keys (:mod:`.auth`), with Prometheus metrics (:mod:`.metrics`); the application itself
is :mod:`.app`."""

from funnelprint.serve.app import Settings, create_app
from funnelprint.serve.store import Store, StoreError, open_store

__all__ = ["Settings", "Store", "StoreError", "create_app", "open_store"]
