"""Counters and latency histograms, exposed in Prometheus' text format.

The exposition is small enough to write by hand, which keeps the serve extra
free of a metrics library.
"""

from __future__ import annotations

import threading
from collections import defaultdict

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: tuple[str, str] | None = None) -> str:
    items = [*labels, extra] if extra else list(labels)
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items) + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Histogram:
    def __init__(self) -> None:
        self.counts = [0] * len(LATENCY_BUCKETS)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(LATENCY_BUCKETS):
            if value <= bound:
                self.counts[i] += 1
        self.total += 1
        self.sum += value


class Metrics:
    """What the server counts. Thread-safe; `render()` gives the /metrics text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[Labels, int] = defaultdict(int)
        self.tokens: dict[Labels, int] = defaultdict(int)
        self.latency: dict[Labels, Histogram] = defaultdict(Histogram)
        self.ttft: dict[Labels, Histogram] = defaultdict(Histogram)

    def record(
        self,
        *,
        model: str,
        route: str,
        status: int,
        latency_s: float,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        ttft_s: float | None = None,
    ) -> None:
        with self._lock:
            self.requests[(("model", model), ("route", route), ("status", str(status)))] += 1
            if prompt_tokens:
                self.tokens[(("model", model), ("type", "prompt"))] += prompt_tokens
            if completion_tokens:
                self.tokens[(("model", model), ("type", "completion"))] += completion_tokens
            self.latency[(("model", model),)].observe(latency_s)
            if ttft_s is not None:
                self.ttft[(("model", model),)].observe(ttft_s)

    def render(self, log_queue_depth: int = 0, log_dropped: int = 0) -> str:
        lines: list[str] = []
        with self._lock:
            lines += [
                "# HELP gateway_requests_total Requests answered, by model, route and status.",
                "# TYPE gateway_requests_total counter",
            ]
            lines += [f"gateway_requests_total{_labels(k)} {v}" for k, v in sorted(self.requests.items())]
            lines += [
                "# HELP gateway_tokens_total Tokens processed, by model and type (prompt, completion).",
                "# TYPE gateway_tokens_total counter",
            ]
            lines += [f"gateway_tokens_total{_labels(k)} {v}" for k, v in sorted(self.tokens.items())]
            for name, help_text, table in (
                ("gateway_request_latency_seconds", "Request latency by model.", self.latency),
                ("gateway_time_to_first_token_seconds", "Streamed requests' time to first token.", self.ttft),
            ):
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
                for labels, hist in sorted(table.items()):
                    for bound, count in zip(LATENCY_BUCKETS, hist.counts, strict=True):
                        lines.append(f"{name}_bucket{_labels(labels, ('le', _number(bound)))} {count}")
                    lines.append(f"{name}_bucket{_labels(labels, ('le', '+Inf'))} {hist.total}")
                    lines.append(f"{name}_sum{_labels(labels)} {_number(hist.sum)}")
                    lines.append(f"{name}_count{_labels(labels)} {hist.total}")
            lines += [
                "# HELP gateway_request_log_queue Request-log rows waiting to be written.",
                "# TYPE gateway_request_log_queue gauge",
                f"gateway_request_log_queue {log_queue_depth}",
                "# HELP gateway_request_log_dropped_total Request-log rows dropped (queue full or refused).",
                "# TYPE gateway_request_log_dropped_total counter",
                f"gateway_request_log_dropped_total {log_dropped}",
            ]
        return "\n".join(lines) + "\n"
