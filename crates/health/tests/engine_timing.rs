//! Engine timing on tokio's paused clock. A scripted probe stands in for the network so the
//! clock can be virtual; the real checkers are tested in `checkers.rs` and `engine_net.rs`.

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rvs_health::*;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Answers each check from a table of target health; records (target, time) of every call.
struct Scripted {
    start: Instant,
    healthy: Mutex<HashMap<SocketAddr, bool>>,
    dynamic: Mutex<HashMap<SocketAddr, MiscWeight>>,
    calls: Mutex<Vec<(SocketAddr, Duration)>>,
    urls: Mutex<Vec<(usize, Duration)>>,
}

impl Scripted {
    fn new() -> Arc<Self> {
        Arc::new(Scripted {
            start: Instant::now(),
            healthy: Mutex::new(HashMap::new()),
            dynamic: Mutex::new(HashMap::new()),
            calls: Mutex::new(Vec::new()),
            urls: Mutex::new(Vec::new()),
        })
    }

    fn set(&self, a: SocketAddr, up: bool) {
        self.healthy.lock().unwrap().insert(a, up);
    }

    fn calls_to(&self, a: SocketAddr) -> Vec<Duration> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| *t == a)
            .map(|(_, d)| *d)
            .collect()
    }
}

impl Probe for Scripted {
    fn probe<'a>(
        &'a self,
        checker: &'a CheckerConfig,
        url: usize,
        _ctx: &'a CheckContext,
    ) -> Pin<Box<dyn Future<Output = Result<CheckSuccess>> + Send + 'a>> {
        Box::pin(async move {
            let a = match &checker.kind {
                CheckKind::Tcp(o) => o.connect,
                CheckKind::Http(h) => {
                    self.urls.lock().unwrap().push((url, self.start.elapsed()));
                    h.connect.connect
                }
                _ => panic!("scripted probe only answers TCP_CHECK and HTTP_GET configs"),
            };
            self.calls.lock().unwrap().push((a, self.start.elapsed()));
            if *self.healthy.lock().unwrap().get(&a).unwrap_or(&true) {
                Ok(CheckSuccess {
                    dynamic: self.dynamic.lock().unwrap().get(&a).copied(),
                    agent: None,
                })
            } else {
                Err(Error::ConnectTimeout(a))
            }
        })
    }
}

fn rs_addr(n: u8) -> SocketAddr {
    format!("127.0.2.{n}:80").parse().unwrap()
}

fn tcp(n: u8, t: CheckerTiming) -> CheckerConfig {
    checker(CheckKind::Tcp(ConnectOpts::to(rs_addr(n))), t)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn start(
    cfg: Vec<VirtualServerCheck>,
    probe: Arc<Scripted>,
    random: Arc<dyn RandomSource>,
) -> (Handle, mpsc::Receiver<Action>) {
    let (tx, rx) = mpsc::channel(64);
    let opts = EngineOptions {
        startup_delay: secs(1),
        random,
        probe,
        ..EngineOptions::default()
    };
    (HealthEngine::start_with(cfg, tx, opts).unwrap(), rx)
}

fn t10() -> CheckerTiming {
    CheckerTiming {
        delay_loop: secs(10),
        connect_timeout: secs(1),
        retry: 2,
        delay_before_retry: secs(1),
        warmup: Duration::ZERO,
    }
}

#[tokio::test(start_paused = true)]
async fn down_after_retry_plus_one_failures_spaced_by_delay_before_retry() {
    let p = Scripted::new();
    let cfg = vec![virtual_server(vec![
        real_server(rs_addr(1), 1, vec![tcp(1, t10())]),
        real_server(rs_addr(2), 1, vec![tcp(2, t10())]),
    ])];
    let (h, mut rx) = start(cfg, p.clone(), Arc::new(Fixed(0)));
    assert!(is_add(&next_action(&mut rx).await, rs_addr(1)));
    assert!(is_add(&next_action(&mut rx).await, rs_addr(2)));
    tokio::time::sleep(secs(5)).await;
    p.set(rs_addr(1), false);
    let a = next_action(&mut rx).await;
    assert!(is_remove(&a, rs_addr(1)), "{a:?}");
    // Checks at 1 s (ok), 11 s, 12 s, 13 s: down after retry+1 = 3 failures, 1 s apart.
    assert_eq!(p.start.elapsed(), secs(13));
    assert_eq!(
        p.calls_to(rs_addr(1)),
        vec![secs(1), secs(11), secs(12), secs(13)]
    );
    let st = h.status().await.unwrap();
    let rs = &st[0].real_servers[0];
    assert!(!rs.alive && !rs.set);
    assert_eq!((rs.checkers[0].failures, rs.checkers[0].checks), (3, 4));
    assert!(!rs.checkers[0].up);
    assert!(rs.checkers[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("timed out"));
    // Back up on the first success, next delay_loop later (23 s).
    p.set(rs_addr(1), true);
    let a = next_action(&mut rx).await;
    assert!(is_add(&a, rs_addr(1)), "{a:?}");
    assert_eq!(p.start.elapsed(), secs(23));
    h.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn first_failure_at_start_takes_server_down() {
    let p = Scripted::new();
    p.set(rs_addr(1), false);
    let cfg = vec![virtual_server(vec![
        real_server(rs_addr(1), 1, vec![tcp(1, t10())]),
        real_server(rs_addr(2), 1, vec![tcp(2, t10())]),
    ])];
    let (h, mut rx) = start(cfg, p.clone(), Arc::new(Fixed(0)));
    next_action(&mut rx).await;
    next_action(&mut rx).await;
    let a = next_action(&mut rx).await;
    assert!(is_remove(&a, rs_addr(1)), "{a:?}");
    assert_eq!(p.start.elapsed(), secs(1));
    h.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn warmup_delays_first_check_and_alpha_waits_for_success() {
    let p = Scripted::new();
    let mut t = t10();
    t.warmup = secs(3);
    let mut c = tcp(1, t);
    c.alpha = true;
    let cfg = vec![virtual_server(vec![real_server(rs_addr(1), 7, vec![c])])];
    // The random source picks the whole warmup: first check at 1 s + 3 s.
    let (h, mut rx) = start(cfg.clone(), p.clone(), Arc::new(Fixed(u64::MAX)));
    let a = next_action(&mut rx).await;
    assert_eq!(
        a,
        Action::AddDest {
            vs: vs_key(),
            dest: rs_addr(1),
            weight: 7,
            sorry: false
        }
    );
    assert_eq!(p.start.elapsed(), secs(4));
    assert_eq!(p.calls_to(rs_addr(1)), vec![secs(4)]);
    h.shutdown().await.unwrap();

    // A seeded source: the first check is somewhere in [1 s, 4 s].
    let p = Scripted::new();
    let (h, mut rx) = start(cfg, p.clone(), Arc::new(SplitMix::new(99)));
    next_action(&mut rx).await;
    let first = p.calls_to(rs_addr(1))[0];
    assert!(first >= secs(1) && first <= secs(4), "{first:?}");
    h.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn reload_keeps_unchanged_checkers_running() {
    let p = Scripted::new();
    p.set(rs_addr(1), false);
    let rs1 = real_server(rs_addr(1), 1, vec![tcp(1, t10())]);
    let rs2 = real_server(rs_addr(2), 1, vec![tcp(2, t10())]);
    let rs3 = real_server(rs_addr(3), 1, vec![tcp(3, t10())]);
    let (h, mut rx) = start(
        vec![virtual_server(vec![rs1.clone(), rs2.clone(), rs3.clone()])],
        p.clone(),
        Arc::new(Fixed(0)),
    );
    let got = until(&mut rx, |a| is_remove(a, rs_addr(1))).await;
    assert_eq!(got.len(), 4);
    tokio::time::sleep(secs(4)).await; // t = 5 s
                                       // Same RS 1; RS 2 with a new weight; RS 3 with a changed checker; RS 4 new.
    let mut rs2b = rs2.clone();
    rs2b.weight = 5;
    let mut t = t10();
    t.delay_loop = secs(20);
    let rs3b = real_server(rs_addr(3), 1, vec![tcp(3, t)]);
    let rs4 = real_server(rs_addr(4), 2, vec![tcp(4, t10())]);
    h.reload(vec![virtual_server(vec![rs1, rs2b, rs3b, rs4])])
        .await
        .unwrap();
    assert_eq!(
        next_action(&mut rx).await,
        Action::SetWeight {
            vs: vs_key(),
            dest: rs_addr(2),
            weight: 5,
            sorry: false
        }
    );
    assert!(is_add(&next_action(&mut rx).await, rs_addr(4)));
    // RS 1 stays down (not re-added by the reload) and its checker keeps its schedule: the
    // next check is at 11 s, not at reload + start-up delay.
    p.set(rs_addr(1), true);
    let a = next_action(&mut rx).await;
    assert!(is_add(&a, rs_addr(1)), "{a:?}");
    assert_eq!(p.start.elapsed(), secs(11));
    // RS 3's changed checker restarted: first check 1 s after the reload.
    assert_eq!(p.calls_to(rs_addr(3)), vec![secs(1), secs(6)]);
    assert_eq!(p.calls_to(rs_addr(2)), vec![secs(1), secs(11)]);
    h.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn reload_removes_servers_and_rejects_bad_config() {
    let p = Scripted::new();
    let rs1 = real_server(rs_addr(1), 1, vec![tcp(1, t10())]);
    let rs2 = real_server(rs_addr(2), 1, vec![tcp(2, t10())]);
    let (h, mut rx) = start(
        vec![virtual_server(vec![rs1.clone(), rs2.clone()])],
        p.clone(),
        Arc::new(Fixed(0)),
    );
    next_action(&mut rx).await;
    next_action(&mut rx).await;
    // A duplicated real server is refused; the old config keeps running.
    let bad = vec![virtual_server(vec![rs1.clone(), rs1.clone()])];
    assert!(matches!(h.reload(bad).await, Err(Error::Unsupported(_))));
    h.reload(vec![virtual_server(vec![rs1])]).await.unwrap();
    assert_eq!(
        next_action(&mut rx).await,
        Action::DrainDest {
            vs: vs_key(),
            dest: rs_addr(2),
            sorry: false
        }
    );
    tokio::time::sleep(secs(30)).await;
    assert!(
        p.calls_to(rs_addr(2)).iter().all(|t| *t < secs(2)),
        "removed checker still runs"
    );
    h.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_removes_installed_servers_and_stops() {
    let p = Scripted::new();
    let mut vs = virtual_server(vec![real_server(rs_addr(1), 1, vec![tcp(1, t10())])]);
    vs.omega = true;
    vs.quorum_down = Some(Command::new(["/bin/true", "qdown"]));
    let (h, mut rx) = start(vec![vs], p.clone(), Arc::new(Fixed(0)));
    next_action(&mut rx).await;
    h.shutdown().await.unwrap();
    assert!(is_remove(&next_action(&mut rx).await, rs_addr(1)));
    assert_eq!(
        next_action(&mut rx).await,
        Action::RunCommand(Command::new(["/bin/true", "qdown"]))
    );
    // The engine is gone: the channel closes after the quorum notification.
    assert!(matches!(
        rx.recv().await,
        Some(Action::Notify(Notification::Quorum { up: false, .. }))
    ));
    assert!(rx.recv().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn misc_dynamic_weight_through_engine() {
    let p = Scripted::new();
    p.dynamic
        .lock()
        .unwrap()
        .insert(rs_addr(1), MiscWeight::Weight(8));
    let cfg = vec![virtual_server(vec![
        real_server(rs_addr(1), 1, vec![tcp(1, t10())]),
        real_server(rs_addr(2), 1, vec![tcp(2, t10())]),
    ])];
    let (h, mut rx) = start(cfg, p.clone(), Arc::new(Fixed(0)));
    next_action(&mut rx).await;
    next_action(&mut rx).await;
    let a = next_action(&mut rx).await;
    assert_eq!(
        a,
        Action::SetWeight {
            vs: vs_key(),
            dest: rs_addr(1),
            weight: 8,
            sorry: false
        }
    );
    assert_eq!(p.start.elapsed(), secs(1));
    p.dynamic
        .lock()
        .unwrap()
        .insert(rs_addr(1), MiscWeight::Configured);
    let a = next_action(&mut rx).await;
    assert!(matches!(a, Action::SetWeight { weight: 1, .. }), "{a:?}");
    assert_eq!(p.start.elapsed(), secs(11));
    assert_eq!(h.status().await.unwrap()[0].real_servers[0].weight, 1);
    h.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn http_urls_one_per_delay_loop_and_recovery_through_all_urls() {
    let p = Scripted::new();
    let h = HttpCheck {
        connect: ConnectOpts::to(rs_addr(1)),
        protocol: HttpProtocol::Http10,
        virtualhost: None,
        tls: None,
        urls: vec![HttpUrl::new("/a"), HttpUrl::new("/b")],
        fast_recovery: false,
    };
    let t = CheckerTiming {
        delay_loop: secs(10),
        connect_timeout: secs(1),
        retry: 1,
        delay_before_retry: secs(3),
        warmup: Duration::ZERO,
    };
    let cfg = vec![virtual_server(vec![
        real_server(rs_addr(1), 1, vec![checker(CheckKind::Http(h), t)]),
        real_server(rs_addr(2), 1, vec![tcp(2, t10())]),
    ])];
    let (hd, mut rx) = start(cfg, p.clone(), Arc::new(Fixed(0)));
    next_action(&mut rx).await;
    next_action(&mut rx).await;
    tokio::time::sleep(secs(25)).await;
    p.set(rs_addr(1), false);
    let a = next_action(&mut rx).await;
    assert!(is_remove(&a, rs_addr(1)), "{a:?}");
    // url /b fails at 31 s, retried after delay_before_retry: down at 34 s.
    assert_eq!(p.start.elapsed(), secs(34));
    tokio::time::sleep(secs(11)).await; // t = 45 s
    p.set(rs_addr(1), true);
    let a = next_action(&mut rx).await;
    assert!(is_add(&a, rs_addr(1)), "{a:?}");
    // While down the failed url is tried every max(delay_before_retry, delay_loop); when it
    // passes (54 s) every url is checked again from the first (64 s, 74 s) before going up.
    assert_eq!(p.start.elapsed(), secs(74));
    let got = p.urls.lock().unwrap().clone();
    let want: Vec<(usize, Duration)> = [
        (0, 1),
        (1, 11),
        (0, 21),
        (1, 31),
        (1, 34),
        (1, 44),
        (1, 54),
        (0, 64),
        (1, 74),
    ]
    .into_iter()
    .map(|(u, t)| (u, secs(t)))
    .collect();
    assert_eq!(got, want);
    hd.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn reload_fresh_checker_on_healthy_server_needs_all_retries() {
    let p = Scripted::new();
    let rs1 = real_server(rs_addr(1), 1, vec![tcp(1, t10())]);
    let rs2 = real_server(rs_addr(2), 1, vec![tcp(2, t10())]);
    let (h, mut rx) = start(
        vec![virtual_server(vec![rs1, rs2.clone()])],
        p.clone(),
        Arc::new(Fixed(0)),
    );
    next_action(&mut rx).await;
    next_action(&mut rx).await;
    tokio::time::sleep(secs(5)).await;
    let mut t = t10();
    t.delay_loop = secs(20);
    let rs1b = real_server(rs_addr(1), 1, vec![tcp(1, t)]);
    h.reload(vec![virtual_server(vec![rs1b, rs2])])
        .await
        .unwrap();
    p.set(rs_addr(1), false);
    let a = next_action(&mut rx).await;
    assert!(is_remove(&a, rs_addr(1)), "{a:?}");
    // Fresh checker, first run 1 s after the reload; a server that survived alive is not
    // taken down by one failure: 6 s, 7 s, 8 s.
    assert_eq!(p.start.elapsed(), secs(8));
    assert_eq!(
        p.calls_to(rs_addr(1)),
        vec![secs(1), secs(6), secs(7), secs(8)]
    );
    h.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn reload_removes_a_virtual_server_before_adding_new_ones() {
    let p = Scripted::new();
    let a = virtual_server(vec![real_server(rs_addr(1), 1, vec![tcp(1, t10())])]);
    let mut b = virtual_server(vec![real_server(rs_addr(2), 1, vec![tcp(2, t10())])]);
    b.key = VsKey::Fwmark {
        mark: 7,
        ipv6: false,
    };
    b.sorry_server = Some(SorryServer {
        addr: rs_addr(9),
        inhibit: true,
    });
    let mut c = virtual_server(vec![real_server(rs_addr(3), 1, vec![tcp(3, t10())])]);
    c.key = VsKey::Group { name: "g".into() };
    let (h, mut rx) = start(vec![a, b.clone()], p.clone(), Arc::new(Fixed(0)));
    let got = until(&mut rx, |x| is_add(x, rs_addr(9))).await;
    assert_eq!(got.len(), 3, "{got:?}");
    h.reload(vec![c.clone(), b.clone()]).await.unwrap();
    assert_eq!(
        next_action(&mut rx).await,
        Action::DrainDest {
            vs: vs_key(),
            dest: rs_addr(1),
            sorry: false
        }
    );
    assert_eq!(
        next_action(&mut rx).await,
        Action::AddDest {
            vs: c.key.clone(),
            dest: rs_addr(3),
            weight: 1,
            sorry: false
        }
    );
    // B unchanged: nothing for it; its sorry server stays installed at weight 0.
    let st = h.status().await.unwrap();
    assert_eq!(st.len(), 2);
    assert_eq!(st[1].key, b.key);
    // Removing B drains its real server and its (inhibited) sorry server.
    h.reload(vec![c]).await.unwrap();
    assert_eq!(
        next_action(&mut rx).await,
        Action::DrainDest {
            vs: b.key.clone(),
            dest: rs_addr(2),
            sorry: false
        }
    );
    assert_eq!(
        next_action(&mut rx).await,
        Action::DrainDest {
            vs: b.key.clone(),
            dest: rs_addr(9),
            sorry: true
        }
    );
    h.shutdown().await.unwrap();
    assert!(is_remove(&next_action(&mut rx).await, rs_addr(3)));
}

#[tokio::test(start_paused = true)]
async fn ha_suspend_stops_and_resumes_checks() {
    let p = Scripted::new();
    let mut vs = virtual_server(vec![
        real_server(rs_addr(1), 1, vec![tcp(1, t10())]),
        real_server(rs_addr(2), 1, vec![tcp(2, t10())]),
    ]);
    vs.suspended = true;
    let (h, mut rx) = start(vec![vs.clone()], p.clone(), Arc::new(Fixed(0)));
    next_action(&mut rx).await;
    next_action(&mut rx).await;
    p.set(rs_addr(1), false);
    tokio::time::sleep(secs(35)).await;
    assert!(p.calls_to(rs_addr(1)).is_empty());
    // A reload keeps the run-time suspension.
    h.reload(vec![vs]).await.unwrap();
    tokio::time::sleep(secs(10)).await;
    assert!(p.calls_to(rs_addr(1)).is_empty());
    h.set_suspended(vs_key(), false).await.unwrap();
    let a = next_action(&mut rx).await;
    assert!(is_remove(&a, rs_addr(1)), "{a:?}");
    // Suspended checkers reschedule every delay_loop (1 s + 4 × 10 s): the first check after
    // resuming is at 51 s.
    assert_eq!(p.calls_to(rs_addr(1)), vec![secs(51)]);
    let other = VsKey::Fwmark {
        mark: 1,
        ipv6: false,
    };
    assert!(h.set_suspended(other, true).await.is_err());
    h.shutdown().await.unwrap();
}
