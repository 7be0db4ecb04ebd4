//! The server's counters, gauges and histograms, served at `/metrics` in the Prometheus text
//! format. Labels name sources and connections from the configuration, never event data, so
//! the number of series stays bounded.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SourceLabel {
    pub(crate) source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ConnectionLabel {
    pub(crate) connection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DepthLabel {
    pub(crate) connection: String,
    /// `pending`, `in_flight`, `retrying` or `dead`.
    pub(crate) state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabel {
    /// `ok` or `failed`.
    pub(crate) result: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the server keeps.
pub(crate) struct Metrics {
    registry: Registry,
    /// Events accepted and committed, per source.
    pub(crate) received: Family<SourceLabel, Counter>,
    /// Events refused inside an accepted request (kept as dead letters), per source.
    pub(crate) rejected: Family<SourceLabel, Counter>,
    /// Events dropped as repeats of a recent `messageId`/`insert_id`, per source.
    pub(crate) duplicates: Family<SourceLabel, Counter>,
    /// Time from receiving a request to acknowledging it (after the commit), per source.
    pub(crate) ack_seconds: Histograms<SourceLabel>,
    /// Events handed to a connection's mapping.
    pub(crate) mapped: Family<ConnectionLabel, Counter>,
    /// Events whose every request was delivered.
    pub(crate) delivered: Family<ConnectionLabel, Counter>,
    /// Events scheduled to be tried again later from the store.
    pub(crate) retried: Family<ConnectionLabel, Counter>,
    /// Events dead-lettered.
    pub(crate) dead: Family<ConnectionLabel, Counter>,
    /// HTTP attempts beyond the first, within a delivery.
    pub(crate) http_retries: Family<ConnectionLabel, Counter>,
    /// HTTP requests that finished (after all their attempts).
    pub(crate) requests: Family<ConnectionLabel, Counter>,
    /// Time from receiving an event to its delivery, per connection.
    pub(crate) delivery_seconds: Histograms<ConnectionLabel>,
    /// Events in the store by state, per connection.
    pub(crate) depth: Family<DepthLabel, Gauge>,
    /// Reloads of the configuration and mappings.
    pub(crate) reloads: Family<ResultLabel, Counter>,
    /// The generation of the setup being served (1 at start, +1 per successful reload).
    pub(crate) generation: Gauge,
    /// Client connections open now.
    pub(crate) connections_open: Gauge,
    /// Client connections closed at once because `server.max_connections` were open.
    pub(crate) connections_refused: Counter,
    /// Requests answered 408 because their body did not arrive within `body_timeout_seconds`.
    pub(crate) bodies_timed_out: Counter,
}

fn ack_histogram() -> Histogram {
    // 100 µs to about 3.3 s.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 16))
}

fn delivery_histogram() -> Histogram {
    // 1 ms to about 9 hours: deliveries include durable retries.
    Histogram::new(exponential_buckets(0.001, 3.0, 16))
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ferry");
        let metrics = Metrics {
            received: Family::default(),
            rejected: Family::default(),
            duplicates: Family::default(),
            ack_seconds: Family::new_with_constructor(ack_histogram),
            mapped: Family::default(),
            delivered: Family::default(),
            retried: Family::default(),
            dead: Family::default(),
            http_retries: Family::default(),
            requests: Family::default(),
            delivery_seconds: Family::new_with_constructor(delivery_histogram),
            depth: Family::default(),
            reloads: Family::default(),
            generation: Gauge::default(),
            connections_open: Gauge::default(),
            connections_refused: Counter::default(),
            bodies_timed_out: Counter::default(),
            registry: Registry::default(),
        };
        metrics.register_events(&mut registry);
        metrics.register_operations(&mut registry);
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Registers what is counted of events.
    fn register_events(&self, registry: &mut Registry) {
        registry.register(
            "events_received",
            "Events accepted and committed to the store",
            self.received.clone(),
        );
        registry.register(
            "events_rejected",
            "Events refused inside an accepted request (kept as dead letters)",
            self.rejected.clone(),
        );
        registry.register(
            "events_duplicate",
            "Events dropped as repeats of a recent messageId or insert_id",
            self.duplicates.clone(),
        );
        registry.register(
            "ack_seconds",
            "Time from receiving an ingest request to acknowledging it",
            self.ack_seconds.clone(),
        );
        registry.register(
            "events_mapped",
            "Events handed to a connection's mapping",
            self.mapped.clone(),
        );
        registry.register(
            "events_delivered",
            "Events whose every request was delivered",
            self.delivered.clone(),
        );
        registry.register(
            "events_retried",
            "Events scheduled to be tried again later",
            self.retried.clone(),
        );
        registry.register("events_dead", "Events dead-lettered", self.dead.clone());
    }

    /// Registers what is counted of requests, the store, reloads and connections.
    fn register_operations(&self, registry: &mut Registry) {
        registry.register(
            "http_retries",
            "HTTP attempts beyond the first within a delivery",
            self.http_retries.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests to destinations that finished",
            self.requests.clone(),
        );
        registry.register(
            "delivery_seconds",
            "Time from receiving an event to delivering it",
            self.delivery_seconds.clone(),
        );
        registry.register(
            "queue_depth",
            "Events in the store by state",
            self.depth.clone(),
        );
        registry.register(
            "reloads",
            "Reloads of the configuration and mappings",
            self.reloads.clone(),
        );
        registry.register(
            "setup_generation",
            "Generation of the configuration being served",
            self.generation.clone(),
        );
        registry.register(
            "connections_open",
            "Client connections open now",
            self.connections_open.clone(),
        );
        registry.register(
            "connections_refused",
            "Client connections closed at once because the most allowed were open",
            self.connections_refused.clone(),
        );
        registry.register(
            "request_bodies_timed_out",
            "Requests whose body did not arrive within the body timeout",
            self.bodies_timed_out.clone(),
        );
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

pub(crate) fn source(name: &str) -> SourceLabel {
    SourceLabel {
        source: name.to_owned(),
    }
}

pub(crate) fn connection(name: &str) -> ConnectionLabel {
    ConnectionLabel {
        connection: name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_prometheus_text_format() {
        let metrics = Metrics::new();
        metrics.received.get_or_create(&source("web")).inc_by(3);
        metrics
            .delivery_seconds
            .get_or_create(&connection("braze"))
            .observe(0.25);
        let text = metrics.render();
        assert!(
            text.contains("ferry_events_received_total{source=\"web\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("ferry_delivery_seconds_count{connection=\"braze\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
