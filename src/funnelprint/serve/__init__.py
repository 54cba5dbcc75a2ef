"""The real-time service: events in over HTTP into a durable store (:mod:`.store`); profiles,
similar customers and recommendations out from the loaded models (:mod:`.models`). The
application and its routes are :mod:`.app` (schemas in :mod:`.schemas`), behind API keys
(:mod:`.auth`), request limits and per-route metrics (:mod:`.limits`, :mod:`.metrics`),
with JSON logs (:mod:`.logs`); :mod:`.testing` starts a throwaway PostgreSQL server."""

from funnelprint.serve.app import Settings, create_app
from funnelprint.serve.store import Store, StoreError, open_store

__all__ = ["Settings", "Store", "StoreError", "create_app", "open_store"]
