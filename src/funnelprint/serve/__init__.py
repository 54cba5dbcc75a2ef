"""The real-time service: events in over HTTP into a durable store (:mod:`.store`); profiles,
similar customers and recommendations out from the loaded models (:mod:`.models`). The
application and its routes are :mod:`.app` (schemas in :mod:`.schemas`), behind API keys
(:mod:`.auth`), request limits and per-route metrics (:mod:`.limits`, :mod:`.metrics`),
with JSON logs (:mod:`.logs`); :mod:`.testing` starts a throwaway PostgreSQL server.

Nothing is imported here: the command line reads this package's defaults without paying
for FastAPI, psycopg and PyTorch."""

#: Where events are stored when no ``--store`` is given.
DEFAULT_STORE = "sqlite:///funnelprint-events.sqlite"
#: Environment variable that carries the settings to worker processes.
SETTINGS_ENV = "FUNNELPRINT_SERVE_SETTINGS"
