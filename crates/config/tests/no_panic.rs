//! Nothing may panic on any input: mutated sample configurations and hostile
//! inputs go through `check_str`. Bounded in count and time; deterministic.

use std::time::{Duration, Instant};

use rvs_config::{check_str, CheckOptions};

const SEEDS: &[&str] = &[
    "global_defs {\n router_id A\n vrrp_garp_interval 0.5\n lvs_sync_daemon eth0 VI id 3\n notification_email {\n a@b\n }\n}\n",
    "virtual_server_group G {\n 10.0.0.1-9 80\n ae00::2-9 80\n 10.0.0.0/30 443\n fwmark 3 inet\n}\n\
     virtual_server group G {\n protocol TCP\n lb_algo sh\n sh-port\n lb_kind TUN type gue port 80 remcsum\n\
     persistence_timeout\n persistence_granularity 255.255.0.0\n quorum 3\n hysteresis 9\n\
     sorry_server 1.2.3.4 80\n sorry_server_inhibit\n sorry_server_lvs_method DR\n\
     real_server 10.0.0.2 80 {\n weight 3\n HTTP_GET {\n url {\n path /\n digest 640205b7b0fc66c1ea91c463fac6334d\n\
     status_code 200-299 503\n }\n }\n SSL_GET {\n url {\n path /x\n }\n }\n MISC_CHECK {\n misc_path \"/bin/x 'a b' \\x41\"\n\
     misc_dynamic\n }\n SMTP_CHECK {\n host {\n connect_ip 1.1.1.1\n }\n }\n DNS_CHECK {\n type A\n }\n\
     UDP_CHECK {\n payload 0a\n require_reply\n }\n PING_CHECK {\n }\n TCP_CHECK {\n connect_timeout 0.000001\n }\n }\n}\n",
    "vrrp_script s {\n script \"killall -0 x\"\n weight -2 reverse\n}\nvrrp_sync_group G {\n group {\n A B\n }\n}\n\
     vrrp_instance A {\n state MASTER\n interface eth0\n virtual_router_id 1\n priority 150\n advert_int 0.5\n\
     authentication {\n auth_type AH\n auth_pass 123456789\n }\n virtual_ipaddress {\n 10.0.0.1/24 dev eth0 brd + label eth0:1\n\
     fe80::1\n }\n unicast_peer {\n 1.1.1.1 min_ttl 3\n }\n track_interface {\n eth1 weight -3\n }\n\
     track_script {\n s weight 4\n }\n virtual_routes {\n 1.0.0.0/8 via 2.2.2.2 or 3.3.3.3\n blackhole 4.0.0.0/8\n }\n\
     virtual_rules {\n from 1.0.0.0/8 table 3\n }\n notify_master \"/bin/a b\" root\n}\n\
     vrrp_instance B {\n interface eth0\n virtual_router_id 1\n version 3\n}\n",
    "$P=1\n$M= \\\nx ${P} \\\ny $P\n$M\n~SEQ(I, 1, 3) ~LST(J, a, b) k${I}${J}\n@main a 1\n@^main b 2\n\"unterminated\n}\n{\n",
];

/// xorshift64*: a deterministic PRNG, no dependency needed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const ALPHABET: &[&str] = &[
    "{",
    "}",
    "\"",
    "#",
    "!",
    "\\",
    "$",
    "@",
    "~SEQ(",
    "~LST(",
    "-",
    "/",
    ".",
    ":",
    "0",
    "9",
    "4294967296",
    "-1",
    " ",
    "\n",
    "\t",
    "é",
    "€",
    "😀",
    "${",
    "$X=",
    "~SEQx(A,0xff,1)",
    "@^",
    "include ",
    "real_server",
    "url",
    "virtual_ipaddress",
    "0.0.0.0",
    "::",
    "1e9",
    "99999999999999999999",
];

fn mutate(rng: &mut Rng, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    for _ in 0..=rng.below(6) {
        let pos = rng.below(chars.len() + 1);
        match rng.below(5) {
            0 if !chars.is_empty() => {
                let p = pos.min(chars.len() - 1);
                chars.remove(p);
            }
            1 => {
                let ins = ALPHABET[rng.below(ALPHABET.len())];
                for (k, c) in ins.chars().enumerate() {
                    chars.insert((pos + k).min(chars.len()), c);
                }
            }
            2 => chars.truncate(pos),
            3 if !chars.is_empty() => {
                // duplicate a slice
                let a = rng.below(chars.len());
                let b = (a + rng.below(80)).min(chars.len());
                let dup: Vec<char> = chars[a..b].to_vec();
                for (k, c) in dup.into_iter().enumerate() {
                    chars.insert((pos + k).min(chars.len()), c);
                }
            }
            _ => {
                if let Some(c) = chars.get_mut(pos) {
                    *c = char::from(b' ' + rng.below(95) as u8);
                }
            }
        }
    }
    // Never let a mutation read real files through an include.
    chars
        .into_iter()
        .collect::<String>()
        .replace("include", "inc_lude")
}

fn corpus_texts() -> Vec<String> {
    let mut v: Vec<String> = SEEDS.iter().map(|s| s.to_string()).collect();
    if let Ok(rd) = std::fs::read_dir("/usr/share/doc/keepalived/samples") {
        let mut files: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            if f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("keepalived.conf"))
            {
                if let Ok(t) = std::fs::read_to_string(&f) {
                    v.push(t);
                }
            }
        }
    }
    v
}

#[test]
fn mutated_configs_never_panic() {
    let opts = CheckOptions {
        config_id: Some("main".into()),
        ..Default::default()
    };
    let texts = corpus_texts();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start = Instant::now();
    let mut n = 0;
    // Bounded in count (3000) and time (60 s on a slow, shared machine).
    while n < 3000 && start.elapsed() < Duration::from_secs(60) {
        let base = &texts[n % texts.len()];
        let m = mutate(&mut rng, base);
        let r = check_str("/nonexistent/fuzz.conf", &m, &opts);
        let _ = r.render();
        let _ = r.exit_status();
        n += 1;
    }
    assert!(n >= 100, "only {n} iterations ran");
}

#[test]
fn hostile_inputs_are_bounded() {
    let opts = CheckOptions {
        config_id: Some("main".into()),
        ..Default::default()
    };
    let deep = "a {\n".repeat(10_000);
    let closes = "}\n".repeat(10_000);
    let long_line = "x".repeat(2_000_000);
    let inputs: Vec<String> = vec![
        deep.clone(),
        format!("{deep}{closes}{closes}"),
        long_line,
        "$A=${A}${A}\n$A\n".into(),
        "$A=$B x\n$B=$A y\n$A\n".into(),
        "~SEQ(I, 0, 1000000000) x\n".into(),
        "~SEQ(I, -9223372036854775808, 9223372036854775807) x\n".into(),
        "~SEQ(A, 0, 60) ~SEQ(B, 0, 60) ~SEQ(C, 0, 60) x\n".into(),
        "\u{0}\u{1}{\u{7f}}\"\"\"\\".into(),
        "virtual_server 1.1.1.1 80 {\n quorum 4294967295\n hysteresis 4294967295\n real_server 2.2.2.2 80 {\n weight 2147483647\n }\n real_server 2.2.2.3 80 {\n weight 2147483647\n }\n}\n".into(),
        "vrrp_instance V {\n advert_int 99999999999999999999.999999999\n preempt_delay .\n}\n".into(),
    ];
    for (i, t) in inputs.iter().enumerate() {
        let start = Instant::now();
        let r = check_str("/nonexistent/hostile.conf", t, &opts);
        let _ = r.render();
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "input {i} took {:?}",
            start.elapsed()
        );
    }
}
