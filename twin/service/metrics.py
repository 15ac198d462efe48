"""Prometheus metrics of one twin service (its own registry, so several can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages_in = Counter(
            "pumptwin_messages_in", "Device messages received, by channel", ["channel"], registry=r
        )
        self.rejects = Counter(
            "pumptwin_rejects",
            "Messages refused, by reason (schema, not_json, device_id_mismatch ...)",
            ["reason"],
            registry=r,
        )
        self.dropped = Counter(
            "pumptwin_dropped", "Valid messages not applied: duplicate or stale", ["reason"], registry=r
        )
        self.gaps = Counter(
            "pumptwin_sequence_gaps",
            "Messages lost: sequence numbers that left a device's window of numbers seen unseen",
            registry=r,
        )
        self.tick_errors = Counter(
            "pumptwin_tick_errors", "Devices whose clock-driven rules failed in a tick, by error", ["error"], registry=r
        )
        self.rebirths = Counter("pumptwin_rebirth_requests", "Rebirth commands sent after a gap", registry=r)
        self.telemetry_shed = Counter(
            "pumptwin_telemetry_shed",
            "Telemetry samples shed because ingest fell behind (never alarms or state)",
            registry=r,
        )
        self.processing = Histogram(
            "pumptwin_processing_seconds",
            "Time to process one message",
            registry=r,
            buckets=(0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05),
        )
        self.backlog = Gauge("pumptwin_ingest_backlog", "Messages received and not yet processed", registry=r)
        self.lag = Gauge(
            "pumptwin_processing_lag_seconds",
            "How long the latest processed message waited between arrival from the broker and processing",
            registry=r,
        )
        self.active_alarms = Gauge(
            "pumptwin_active_alarms", "Alarms not in the normal state, by priority", ["priority"], registry=r
        )
        self.devices = Gauge("pumptwin_devices", "Devices known, by presence", ["presence"], registry=r)
        self.commands = Counter("pumptwin_commands", "Commands by outcome", ["state"], registry=r)
        self.alarm_transitions = Counter(
            "pumptwin_alarm_transitions", "Alarm lifecycle transitions, by event", ["event"], registry=r
        )
        self.influx_points = Gauge(
            "pumptwin_influx_points",
            "InfluxDB writer counters (accepted, written, spooled, dead_lettered, shed)",
            ["kind"],
            registry=r,
        )
        self.stream_subscribers = Gauge("pumptwin_stream_subscribers", "Live stream clients", registry=r)
        self.stream_dropped = Gauge(
            "pumptwin_stream_dropped_subscribers",
            "Live stream clients dropped because they fell a whole ring of events behind (told to reload)",
            registry=r,
        )
        self.acknowledged = Counter(
            "pumptwin_acknowledged", "QoS 1 messages acknowledged to the broker after they were durable", registry=r
        )
        self.unacknowledged = Gauge(
            "pumptwin_unacknowledged", "Messages received and held unacknowledged (waiting to be durable)", registry=r
        )
