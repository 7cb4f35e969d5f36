//! Prometheus metrics. Labels never carry a user id, device id or token; the certificate id is
//! an operator-chosen, bounded label.

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric of the process, registered once.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub devices: IntGaugeVec,
    pub tokens_bound: IntGauge,
    pub users: IntGauge,
    pub store_commit_seconds: Histogram,
    pub store_group_size: Histogram,
    pub recipients: IntCounterVec,
    pub skipped: IntCounterVec,
    pub notifications: IntCounterVec,
    pub vendor_requests: IntCounterVec,
    pub vendor_seconds: HistogramVec,
    pub vendor_batch_size: HistogramVec,
    pub accept_to_vendor_seconds: Histogram,
    pub push_queue_depth: IntGaugeVec,
    pub push_queue_capacity: IntGauge,
    pub store_queue_depth: IntGauge,
    pub store_queue_capacity: IntGauge,
    pub store_busy: IntCounter,
    /// Commit groups the disk refused (disk full, read-only, I/O error), by reason.
    pub store_write_failures: IntCounterVec,
    /// 1 while the store can write.
    pub store_writable: IntGauge,
    pub tokens_unbound: IntCounter,
    /// Journaled notifications a shutdown left unsent (`saved`), those a start queued again
    /// (`resent`) and those it could not (`dropped`).
    pub outbox: IntCounterVec,
    pub certificates: IntGaugeVec,
    pub ws_connections: IntGauge,
    pub ws_frames: IntCounterVec,
    pub ws_disconnects: IntCounterVec,
    pub online_deliveries: IntCounterVec,
    pub webhooks: IntCounterVec,
    pub webhook_requests: IntCounterVec,
    /// Delivery receipts: notifications the vendor says reached the phone, per certificate.
    pub receipts_delivered: IntCounterVec,
    /// Delivery receipts: notifications the user tapped, per certificate.
    pub receipts_clicked: IntCounterVec,
    /// Receipt requests refused (forged, malformed, too large, too many), by reason.
    pub receipts_refused: IntCounterVec,
    /// `recipients` children resolved once (online, push_queued, skipped): the hot path skips
    /// the label lookup.
    pub recipients_by_outcome: [IntCounter; 3],
    /// `skipped` children by `SkipReason` ordinal.
    pub skipped_by_reason: Vec<IntCounter>,
    /// Cluster mode only (no series in embedded mode): nodes in this node's view, by state.
    pub cluster_nodes: IntGaugeVec,
    /// Cluster mode: 1 for this node's incarnation while its lease is held, else 0.
    pub cluster_node: IntGaugeVec,
    /// Cluster mode: 1 on `reachable` or `unreachable`, as the last membership poll found Redis.
    pub cluster_redis: IntGaugeVec,
    /// Cluster mode: Redis-side events by kind (redis_error, cas_conflict, reaped_device,
    /// unreplicated_write).
    pub cluster_events: IntCounterVec,
    /// Cluster mode: 1 for each certificate whose queue this node consumes (its owner).
    pub cert_owned: IntGaugeVec,
    /// Cluster mode: notifications in a certificate's durable queue, as its owner reads it.
    pub cert_queue_depth: IntGaugeVec,
    /// Cluster mode: the share of its qps a certificate's owner sends at now (below 1 while
    /// backing off after "too fast" answers).
    pub cert_rate_factor: GaugeVec,
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    // Names are unique constants below; a failure here is a programming error caught by tests.
    if let Err(e) = r.register(Box::new(c.clone())) {
        tracing::error!(error = %e, "metric registration failed");
    }
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    reg(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition"),
    )
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    reg(
        r,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition"),
    )
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    reg(
        r,
        IntGauge::new(name, help).expect("valid metric definition"),
    )
}

fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    reg(
        r,
        HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
            .expect("valid metric definition"),
    )
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    reg(
        r,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
            .expect("valid metric definition"),
    )
}

const LATENCY: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let lat = LATENCY.to_vec();
        let recipients = counter_vec(
            &r,
            "pushgate_recipients_total",
            "Message recipients by outcome (online, push_queued, skipped).",
            &["outcome"],
        );
        let skipped = counter_vec(
            &r,
            "pushgate_skipped_total",
            "Devices that got nothing for a message, by reason.",
            &["reason"],
        );
        Metrics {
            http_requests: counter_vec(
                &r,
                "pushgate_http_requests_total",
                "HTTP requests by route pattern, method and status.",
                &["route", "method", "status"],
            ),
            http_duration: histogram_vec(
                &r,
                "pushgate_http_request_duration_seconds",
                "HTTP request latency by route pattern and method.",
                &["route", "method"],
                lat.clone(),
            ),
            devices: gauge_vec(
                &r,
                "pushgate_devices",
                "Registered devices by state (online, background, push_online, offline).",
                &["state"],
            ),
            tokens_bound: reg(
                &r,
                IntGauge::new(
                    "pushgate_push_tokens_bound",
                    "Vendor push tokens bound to a device.",
                )
                .expect("valid metric definition"),
            ),
            users: reg(
                &r,
                IntGauge::new(
                    "pushgate_users",
                    "Users with at least one registered device.",
                )
                .expect("valid metric definition"),
            ),
            store_commit_seconds: histogram(
                &r,
                "pushgate_store_commit_duration_seconds",
                "Time to write and sync one group commit.",
                lat.clone(),
            ),
            store_group_size: histogram(
                &r,
                "pushgate_store_commit_group_size",
                "Requests answered by one group commit.",
                vec![
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
                ],
            ),
            recipients_by_outcome: ["online", "push_queued", "skipped"]
                .map(|o| recipients.with_label_values(&[o])),
            skipped_by_reason: crate::registry::SkipReason::ALL
                .iter()
                .map(|r| skipped.with_label_values(&[r.as_str()]))
                .collect(),
            recipients,
            skipped,
            notifications: counter_vec(
                &r,
                "pushgate_notifications_total",
                "Notifications finished by the vendor senders, by outcome class.",
                &["vendor", "outcome"],
            ),
            vendor_requests: counter_vec(
                &r,
                "pushgate_vendor_requests_total",
                "Vendor HTTP requests by endpoint kind and result class.",
                &["vendor", "kind", "result"],
            ),
            vendor_seconds: histogram_vec(
                &r,
                "pushgate_vendor_request_duration_seconds",
                "Vendor request latency.",
                &["vendor"],
                lat.clone(),
            ),
            vendor_batch_size: histogram_vec(
                &r,
                "pushgate_vendor_batch_size",
                "Notifications per vendor request.",
                &["vendor", "kind"],
                vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0],
            ),
            accept_to_vendor_seconds: histogram(
                &r,
                "pushgate_accept_to_vendor_seconds",
                "From API accept to the vendor request that carried the notification.",
                lat,
            ),
            push_queue_depth: gauge_vec(
                &r,
                "pushgate_push_queue_depth",
                "Notifications waiting in a certificate's sender.",
                &["certificate"],
            ),
            push_queue_capacity: gauge(
                &r,
                "pushgate_push_queue_capacity",
                "Notifications one certificate's sender may hold; beyond it recipients are skipped (push_queue_full).",
            ),
            store_queue_depth: gauge(
                &r,
                "pushgate_store_queue_depth",
                "Durable changes waiting for the store writer.",
            ),
            store_queue_capacity: gauge(
                &r,
                "pushgate_store_queue_capacity",
                "Durable changes the store writer's queue holds; beyond it requests get 503.",
            ),
            store_busy: reg(
                &r,
                IntCounter::new(
                    "pushgate_store_busy_total",
                    "Changes refused with 503 because the store writer's queue was full.",
                )
                .expect("valid metric definition"),
            ),
            store_write_failures: counter_vec(
                &r,
                "pushgate_store_write_failures_total",
                "Commit groups the store's disk refused, by reason (disk_full, read_only, io, poisoned); their changes were answered 503 store_unavailable.",
                &["reason"],
            ),
            store_writable: gauge(
                &r,
                "pushgate_store_writable",
                "1 while the store can write; 0 from a refused write until one succeeds again (/readyz is 503 meanwhile).",
            ),
            outbox: counter_vec(
                &r,
                "pushgate_outbox_total",
                "Journaled notifications a shutdown left unsent (saved), those a start queued again (resent), and those it could not queue (dropped: certificate deleted or queue full).",
                &["result"],
            ),
            tokens_unbound: reg(
                &r,
                IntCounter::new(
                    "pushgate_tokens_unbound_total",
                    "Tokens unbound because the vendor called them invalid.",
                )
                .expect("valid metric definition"),
            ),
            certificates: gauge_vec(
                &r,
                "pushgate_certificates",
                "Certificates by health state (healthy, broken, quota_paused).",
                &["state"],
            ),
            ws_connections: reg(
                &r,
                IntGauge::new("pushgate_ws_connections", "Live WebSocket connections.")
                    .expect("valid metric definition"),
            ),
            ws_frames: counter_vec(
                &r,
                "pushgate_ws_frames_total",
                "WebSocket frames by direction and type.",
                &["direction", "type"],
            ),
            ws_disconnects: counter_vec(
                &r,
                "pushgate_ws_disconnects_total",
                "WebSocket connections ended, by reason.",
                &["reason"],
            ),
            cluster_nodes: gauge_vec(
                &r,
                "pushgate_cluster_nodes",
                "Cluster mode: gateway nodes registered in Redis, by state (live, dead) as this node sees them.",
                &["state"],
            ),
            cluster_node: gauge_vec(
                &r,
                "pushgate_cluster_node",
                "Cluster mode: 1 for this node's current incarnation while its lease is held.",
                &["node"],
            ),
            cluster_redis: gauge_vec(
                &r,
                "pushgate_cluster_redis",
                "Cluster mode: 1 on the state (reachable, unreachable) of Redis Cluster at the last poll.",
                &["state"],
            ),
            cluster_events: counter_vec(
                &r,
                "pushgate_cluster_events_total",
                "Cluster mode: Redis-side events by kind (redis_error, cas_conflict, reaped_device, unreplicated_write, lease_lost_unsent: notifications a node gave back unsent to the next owner of a certificate whose lease it lost).",
                &["kind"],
            ),
            cert_owned: gauge_vec(
                &r,
                "pushgate_cert_owned",
                "Cluster mode: 1 for each certificate whose durable queue this node consumes.",
                &["certificate"],
            ),
            cert_queue_depth: gauge_vec(
                &r,
                "pushgate_cert_queue_depth",
                "Cluster mode: notifications in a certificate's durable queue (set by its owner).",
                &["certificate"],
            ),
            cert_rate_factor: reg(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "pushgate_cert_rate_factor",
                        "Cluster mode, on a certificate's owner: the share of its qps it sends at now (1, or less while backing off after the vendor's \"too fast\"; a new owner starts from the previous one's).",
                    ),
                    &["certificate"],
                )
                .expect("valid metric definition"),
            ),
            online_deliveries: counter_vec(
                &r,
                "pushgate_online_deliveries_total",
                "Messages over live connections by result (acked, fell_back_to_push, dropped).",
                &["result"],
            ),
            webhooks: counter_vec(
                &r,
                "pushgate_webhooks_total",
                "State.StateChange webhooks by result.",
                &["result"],
            ),
            webhook_requests: counter_vec(
                &r,
                "pushgate_webhook_requests_total",
                "State.StateChange webhook requests by result (ok: answered 2xx; failed: error status, timeout or connection error).",
                &["result"],
            ),
            receipts_delivered: counter_vec(
                &r,
                "pushgate_receipts_delivered_total",
                "Notifications the vendor's delivery receipts say reached the phone.",
                &["vendor", "certificate"],
            ),
            receipts_clicked: counter_vec(
                &r,
                "pushgate_receipts_clicked_total",
                "Notifications the vendor's receipts say the user tapped.",
                &["vendor", "certificate"],
            ),
            receipts_refused: counter_vec(
                &r,
                "pushgate_receipts_refused_total",
                "Receipt requests refused, changing nothing (unverified, malformed, too_large, rate_limited, unknown_certificate, unsupported).",
                &["vendor", "reason"],
            ),
            registry: r,
        }
    }

    /// Counts one skipped device by reason.
    pub fn skip(&self, r: crate::registry::SkipReason) {
        if let Some(c) = self.skipped_by_reason.get(r as usize) {
            c.inc();
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let enc = TextEncoder::new();
        if let Err(e) = enc.encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
