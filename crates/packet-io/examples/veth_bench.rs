//! Packets per second through a veth pair with rvs-packet-io (root only).
//!
//! Creates two namespaces joined by a veth pair, opens a [`Port`] at each end, and for
//! `SECONDS` (default 3) transmits 64-byte frames in `sendmmsg` batches from one end while the
//! other end receives them through its TPACKET_V3 ring, both on one thread. Prints transmit
//! and receive rates and the kernel's ring drops, then removes the namespaces.
//!
//! `taskset -c 0 cargo run --release -p rvs-packet-io --example veth_bench [SECONDS]`

use std::process::ExitCode;
use std::time::{Duration, Instant};

use rvs_lab::{Lab, Netns};
use rvs_packet_io::{Port, PortConfig};

/// Opens a port on `ifname` inside namespace `ns` (the socket stays there).
fn open_in(ns: &Netns, ifname: &'static str, cfg: PortConfig) -> Result<Port, String> {
    ns.exec(move || Port::open(ifname, &cfg))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

fn run(seconds: u64) -> Result<(), String> {
    // The namespaces are deleted when the lab drops, also on an error.
    let mut lab = Lab::new("vethbench").map_err(|e| e.to_string())?;
    let a = lab.add_netns("a").map_err(|e| e.to_string())?;
    let b = lab.add_netns("b").map_err(|e| e.to_string())?;
    lab.veth(&a, "a0", &b, "b0").map_err(|e| e.to_string())?;

    let cfg = PortConfig {
        block_size: 1 << 20,
        block_count: 64,
        tx_batch: 64,
        ..PortConfig::default()
    };
    let mut tx = open_in(&a, "a0", cfg.clone())?;
    let mut rx = open_in(&b, "b0", cfg)?;
    let mut frame = [0u8; 64];
    frame[0..6].copy_from_slice(&rx.mac());
    frame[6..12].copy_from_slice(&tx.mac());
    frame[12..14].copy_from_slice(&[0x88, 0xb5]);
    let batch: Vec<&[u8]> = vec![&frame[..]; 64];

    let (mut sent, mut received) = (0u64, 0u64);
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    while Instant::now() < end {
        // A few batches, then empty the ring, so neither side starves on a single core.
        for _ in 0..4 {
            sent += tx.send_batch(&batch).map_err(|e| e.to_string())? as u64;
        }
        rx.recv_batch(Duration::ZERO, |f| {
            if f.data().len() == 64 {
                received += 1;
            }
        })
        .map_err(|e| e.to_string())?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Frames still in flight or in partially filled blocks.
    for _ in 0..100 {
        let n = rx
            .recv_batch(Duration::from_millis(10), |f| {
                if f.data().len() == 64 {
                    received += 1;
                }
            })
            .map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
    }
    let txs = tx.stats().map_err(|e| e.to_string())?;
    let rxs = rx.stats().map_err(|e| e.to_string())?;
    println!("64-byte frames over veth, {elapsed:.2} s, one thread");
    println!(
        "tx: {sent} frames, {:.0} pps ({} send errors)",
        sent as f64 / elapsed,
        txs.tx_errors
    );
    println!(
        "rx: {received} frames, {:.0} pps; kernel ring drops {}, queue freezes {}",
        received as f64 / elapsed,
        rxs.kernel_drops,
        rxs.kernel_freezes
    );
    Ok(())
}

fn main() -> ExitCode {
    let seconds = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .clamp(1, 60);
    match run(seconds) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("veth_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
