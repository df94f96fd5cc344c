//! The sync daemons' counters in the Prometheus text format.

use std::sync::atomic::Ordering;

use rvs_control::model::SyncRole;
use rvs_core::sync::ApplySkip;
use rvs_sync::DropReason;

use super::lag::BOUNDS_MS;
use super::SyncDaemons;
use crate::exposition::{header, sample};
use crate::shard::{self, ShardRef};

/// Append the sync metrics for daemons `d` over `shards`.
pub fn render(d: &SyncDaemons, shards: &[ShardRef], out: &mut String) {
    header(
        out,
        "rvs_sync_daemon_running",
        "gauge",
        "1 while the sync daemon of this role runs.",
    );
    for (r, name) in [(SyncRole::Master, "master"), (SyncRole::Backup, "backup")] {
        sample(
            out,
            "rvs_sync_daemon_running",
            &format!("role=\"{name}\""),
            u8::from(d.runs(r)),
        );
    }
    let (mut waiting, mut tap_full) = (0u64, 0u64);
    for s in shards {
        let g = shard::lock(s);
        waiting += g.director.sync.len() as u64;
        tap_full += g.director.sync.dropped_full();
    }
    let c = &d.counters;
    let tx = crate::lock::lock(&c.tx).clone();
    let rx = crate::lock::lock(&c.rx).clone();
    let skipped = *crate::lock::lock(&c.rx_skipped);
    for (name, kind, help, v) in [
        (
            "rvs_sync_queue_length",
            "gauge",
            "Connection announcements waiting for the master daemon.",
            waiting,
        ),
        (
            "rvs_sync_sent_datagrams_total",
            "counter",
            "Sync messages sent.",
            c.tx_datagrams.load(Ordering::Relaxed),
        ),
        (
            "rvs_sync_sent_bytes_total",
            "counter",
            "Sync message bytes sent (UDP payload).",
            c.tx_bytes.load(Ordering::Relaxed),
        ),
        (
            "rvs_sync_sent_connections_total",
            "counter",
            "Connection records encoded for sending.",
            tx.records,
        ),
        (
            "rvs_sync_send_errors_total",
            "counter",
            "Sync messages the socket refused.",
            c.tx_errors.load(Ordering::Relaxed),
        ),
        (
            "rvs_sync_received_datagrams_total",
            "counter",
            "Sync messages received.",
            rx.datagrams,
        ),
        (
            "rvs_sync_received_empty_total",
            "counter",
            "Sync messages received that announce no record.",
            rx.empty,
        ),
        (
            "rvs_sync_received_connections_total",
            "counter",
            "Connection records decoded.",
            rx.records,
        ),
    ] {
        header(out, name, kind, help);
        sample(out, name, "", v);
    }
    let name = "rvs_sync_dropped_connections_total";
    header(
        out,
        name,
        "counter",
        "Connection announcements the master could not send, by reason.",
    );
    for (reason, v) in [("tap_full", tap_full), ("refused", tx.refused)] {
        sample(out, name, &format!("reason=\"{reason}\""), v);
    }
    let name = "rvs_sync_dropped_datagrams_total";
    header(
        out,
        name,
        "counter",
        "Sync messages dropped (or their rest), by side and reason.",
    );
    sample(
        out,
        name,
        "side=\"send\",reason=\"queue_full\"",
        tx.dropped_queue_full,
    );
    for r in DropReason::ALL {
        let labels = format!("side=\"receive\",reason=\"{}\"", r.as_str());
        sample(out, name, &labels, rx.dropped(r));
    }
    let name = "rvs_sync_skipped_connections_total";
    header(
        out,
        name,
        "counter",
        "Received connection records not applied, by reason.",
    );
    sample(
        out,
        name,
        "reason=\"unknown_option\"",
        rx.skipped_unknown_option,
    );
    sample(
        out,
        name,
        "reason=\"no_service\"",
        c.rx_no_shard.load(Ordering::Relaxed),
    );
    for (i, r) in ApplySkip::ALL.iter().enumerate() {
        sample(out, name, &format!("reason=\"{}\"", r.as_str()), skipped[i]);
    }
    render_lag(d, out);
    render_resync(d, out);
    let name = "rvs_sync_applied_connections_total";
    header(
        out,
        name,
        "counter",
        "Received connection records applied, by result.",
    );
    for (result, v) in [("created", &c.rx_created), ("updated", &c.rx_updated)] {
        sample(
            out,
            name,
            &format!("result=\"{result}\""),
            v.load(Ordering::Relaxed),
        );
    }
}

/// The master's sync lag: histogram, p99 since start, age of the oldest update waiting now.
fn render_lag(d: &SyncDaemons, out: &mut String) {
    let lag = &d.counters.lag;
    let name = "rvs_sync_lag_seconds";
    header(
        out,
        name,
        "histogram",
        "Age of the oldest connection update of each sync message when it was sent.",
    );
    let (cum, sum_ms, count) = lag.snapshot();
    for (i, b) in BOUNDS_MS.iter().enumerate() {
        let le = format!("le=\"{}\"", *b as f64 / 1000.0);
        sample(out, &format!("{name}_bucket"), &le, cum[i]);
    }
    sample(out, &format!("{name}_bucket"), "le=\"+Inf\"", count);
    sample(out, &format!("{name}_sum"), "", sum_ms as f64 / 1000.0);
    sample(out, &format!("{name}_count"), "", count);
    let name = "rvs_sync_lag_p99_seconds";
    header(
        out,
        name,
        "gauge",
        "Bucket bound under which 99 % of the sync messages since start stayed (NaN before the first).",
    );
    let p99 = match lag.p99_ms() {
        None => "NaN".to_string(),
        Some(u64::MAX) => "+Inf".to_string(),
        Some(ms) => (ms as f64 / 1000.0).to_string(),
    };
    sample(out, name, "", p99);
    let name = "rvs_sync_oldest_unsent_seconds";
    header(
        out,
        name,
        "gauge",
        "Age of the oldest connection update the master has not sent yet (0: none waits).",
    );
    sample(out, name, "", lag.waiting_ms() as f64 / 1000.0);
}

/// Bulk resync: what this director asked for and got, and what it served as master.
fn render_resync(d: &SyncDaemons, out: &mut String) {
    let r = &d.counters.resync;
    let name = "rvs_sync_resyncs_total";
    header(
        out,
        name,
        "counter",
        "Bulk resyncs this director ran as backup, by outcome.",
    );
    for (o, v) in [
        ("complete", &r.complete),
        ("partial", &r.partial),
        ("unanswered", &r.unanswered),
    ] {
        sample(
            out,
            name,
            &format!("outcome=\"{o}\""),
            v.load(Ordering::Relaxed),
        );
    }
    for (name, kind, help, v) in [
        (
            "rvs_sync_resync_requests_total",
            "counter",
            "Bulk resync requests sent (a resync asks again when no answer or records were lost).",
            r.requests.load(Ordering::Relaxed) as f64,
        ),
        (
            "rvs_sync_resync_last_connections",
            "gauge",
            "Connection records received by the last bulk resync.",
            r.last_records.load(Ordering::Relaxed) as f64,
        ),
        (
            "rvs_sync_resync_last_duration_seconds",
            "gauge",
            "Duration of the last bulk resync, first request to end.",
            r.last_duration_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        ),
        (
            "rvs_sync_resync_served_total",
            "counter",
            "Bulk resync requests this director answered as master.",
            r.served.load(Ordering::Relaxed) as f64,
        ),
        (
            "rvs_sync_resync_served_connections_total",
            "counter",
            "Connection records sent in bulk resync answers.",
            r.served_records.load(Ordering::Relaxed) as f64,
        ),
        (
            "rvs_sync_preempt_held",
            "gauge",
            "1 while VRRP preemption waits for this director's bulk resync.",
            f64::from(u8::from(d.gate.holding())),
        ),
    ] {
        header(out, name, kind, help);
        sample(out, name, "", v);
    }
}
