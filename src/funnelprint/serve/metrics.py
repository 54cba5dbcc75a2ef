"""Prometheus metrics of the service: requests and their latency per route, events stored,
refused and of unknown products, and the model versions loaded. With several worker
processes the figures are summed over them (prometheus-client's multiprocess mode, set up
by ``funnelprint serve`` through ``PROMETHEUS_MULTIPROC_DIR``)."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

disable_created_metrics()  # one series per counter is enough

#: Buckets for request latency (seconds): the interesting range is 1 ms to 1 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The service's metrics in their own registry (several apps can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("funnelprint_http_requests_total", "HTTP requests",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("funnelprint_http_request_duration_seconds",
                                 "Time from request to response", ["method", "route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.events_stored = Counter("funnelprint_events_stored_total",
                                     "Events committed to the store", registry=r)
        self.events_refused = Counter("funnelprint_events_refused_total",
                                      "Events refused as invalid", ["reason"], registry=r)
        self.events_duplicate = Counter("funnelprint_events_duplicate_total",
                                        "Events skipped because their event_id was stored",
                                        registry=r)
        self.unknown_products = Counter("funnelprint_unknown_product_events_total",
                                        "Stored events of products the default model does "
                                        "not know", registry=r)
        self.models = Gauge("funnelprint_model_info",
                            "1 for each model serving (name, key, version); 0 for one replaced",
                            ["name", "key", "version"], registry=r,
                            multiprocess_mode="liveall")
        self._loaded: list[tuple[str, str, str]] = []
        self.reloads = Counter("funnelprint_model_reloads_total", "Model reloads",
                               ["outcome"], registry=r)

    def set_models(self, versions: dict[str, tuple[str, str]]) -> None:
        """``versions``: name -> (key, version) of every model now serving."""
        for labels in self._loaded:
            self.models.labels(*labels).set(0)
        self._loaded = [(name, key, version) for name, (key, version) in versions.items()]
        for name, (key, version) in versions.items():
            self.models.labels(name, key, version).set(1)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            _multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


__all__ = ["LATENCY_BUCKETS", "Metrics"]
