//! The sync daemons' counters in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use rvs_control::model::SyncRole;
use rvs_core::sync::ApplySkip;
use rvs_sync::DropReason;

use super::SyncDaemons;
use crate::shard::{self, ShardRef};

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Append the sync metrics for daemons `d` over `shards`.
pub fn render(d: &SyncDaemons, shards: &[ShardRef], out: &mut String) {
    header(
        out,
        "rvs_sync_daemon_running",
        "gauge",
        "1 while the sync daemon of this role runs.",
    );
    for (r, name) in [(SyncRole::Master, "master"), (SyncRole::Backup, "backup")] {
        let _ = writeln!(
            out,
            "rvs_sync_daemon_running{{role=\"{name}\"}} {}",
            u8::from(d.runs(r))
        );
    }
    let (mut waiting, mut tap_full) = (0u64, 0u64);
    for s in shards {
        let g = shard::lock(s);
        waiting += g.director.sync.len() as u64;
        tap_full += g.director.sync.dropped_full;
    }
    let c = &d.counters;
    let tx = c.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let rx = c.rx.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let skipped = *c.rx_skipped.lock().unwrap_or_else(|p| p.into_inner());
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
        let _ = writeln!(out, "{name} {v}");
    }
    let name = "rvs_sync_dropped_connections_total";
    header(
        out,
        name,
        "counter",
        "Connection announcements the master could not send, by reason.",
    );
    for (reason, v) in [("tap_full", tap_full), ("refused", tx.refused)] {
        let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {v}");
    }
    let name = "rvs_sync_dropped_datagrams_total";
    header(
        out,
        name,
        "counter",
        "Sync messages dropped (or their rest), by side and reason.",
    );
    let _ = writeln!(
        out,
        "{name}{{side=\"send\",reason=\"queue_full\"}} {}",
        tx.dropped_queue_full
    );
    for r in DropReason::ALL {
        let _ = writeln!(
            out,
            "{name}{{side=\"receive\",reason=\"{}\"}} {}",
            r.as_str(),
            rx.dropped(r)
        );
    }
    let name = "rvs_sync_skipped_connections_total";
    header(
        out,
        name,
        "counter",
        "Received connection records not applied, by reason.",
    );
    let _ = writeln!(
        out,
        "{name}{{reason=\"unknown_option\"}} {}",
        rx.skipped_unknown_option
    );
    let _ = writeln!(
        out,
        "{name}{{reason=\"no_service\"}} {}",
        c.rx_no_shard.load(Ordering::Relaxed)
    );
    for (i, r) in ApplySkip::ALL.iter().enumerate() {
        let _ = writeln!(out, "{name}{{reason=\"{}\"}} {}", r.as_str(), skipped[i]);
    }
    let name = "rvs_sync_applied_connections_total";
    header(
        out,
        name,
        "counter",
        "Received connection records applied, by result.",
    );
    let _ = writeln!(
        out,
        "{name}{{result=\"created\"}} {}",
        c.rx_created.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "{name}{{result=\"updated\"}} {}",
        c.rx_updated.load(Ordering::Relaxed)
    );
}
