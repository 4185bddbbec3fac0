"""Prometheus metrics of the serve process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServeMetrics:
    """Counters and histograms exposed on /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.alerts = Counter(
            "ad1411_alerts_total", "Alerts received", ["outcome"], registry=self.registry
        )
        self.incidents_opened = Counter(
            "ad1411_incidents_opened_total", "Incidents opened", registry=self.registry
        )
        self.slack_requests = Counter(
            "ad1411_slack_requests_total",
            "Requests on /slack/events",
            ["status"],
            registry=self.registry,
        )
        self.slack_api_errors = Counter(
            "ad1411_slack_api_errors_total",
            "Slack Web API calls that failed after retries",
            ["method"],
            registry=self.registry,
        )
        self.slack_late = Counter(
            "ad1411_slack_finished_after_ack_total",
            "Slack requests acknowledged empty at the ack budget and finished afterwards "
            "(Redis slow or failing over); their text went through response_url",
            registry=self.registry,
        )
        self.procedure_clicks = Counter(
            "ad1411_procedure_clicks_total",
            "Procedure buttons and forms, by what became of them",
            ["outcome"],
            registry=self.registry,
        )
        self.bodies_receiving = Gauge(
            "ad1411_request_bodies_receiving",
            "Request bodies being received now, by route (serve.max_concurrent_uploads caps each)",
            ["route"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "ad1411_http_request_seconds",
            "Time to answer HTTP requests",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
