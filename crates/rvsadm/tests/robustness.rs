//! Bad input never panics: random command lines from ipvsadm's vocabulary, random bytes on
//! `-R`. Bounded and deterministic (fixed-seed xorshift).

mod common;
use common::*;
use rvsadm::args::parse_command;
use rvsadm::names::NoNames;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[(self.next() % v.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "-A",
    "-E",
    "-D",
    "-C",
    "-R",
    "-S",
    "-a",
    "-e",
    "-d",
    "-L",
    "-l",
    "-Z",
    "--set",
    "-h",
    "-v",
    "--start-daemon",
    "--stop-daemon",
    "-t",
    "-u",
    "--sctp-service",
    "-f",
    "-6",
    "-s",
    "-p",
    "-M",
    "--pe",
    "-b",
    "-o",
    "-r",
    "-g",
    "-i",
    "-m",
    "--fullnat",
    "--tun-type",
    "--tun-port",
    "--tun-nocsum",
    "--tun-csum",
    "--tun-remcsum",
    "-w",
    "-x",
    "-y",
    "-n",
    "-c",
    "--timeout",
    "--daemon",
    "--stats",
    "--rate",
    "--thresholds",
    "--persistent-conn",
    "--tun-info",
    "--nosort",
    "--sort",
    "-X",
    "--exact",
    "--mcast-interface",
    "--syncid",
    "--sync-maxlen",
    "--mcast-group",
    "--mcast-port",
    "--mcast-ttl",
    "--proxy-protocol",
    "--add-laddr",
    "--del-laddr",
    "--get-laddr",
    "-z",
    "10.0.0.1:80",
    "[2001:db8::1]:443",
    "2001:db8::1",
    "1",
    "0",
    "-1",
    "65536",
    "rr",
    "sh",
    "mh",
    "sh-port,mh-port",
    "flag-1",
    "gue",
    "gre",
    "ipip",
    "master",
    "backup",
    "224.0.0.81",
    "ff02::1",
    "v1",
    "v2",
    "--",
    "-",
    "",
    "=",
    "-Ln",
    "-nL",
    "-p=5",
    "--persistent=",
    "--numeric=1",
    "-Lnc",
    "é",
    "-é",
    "[",
    "]:",
    "10.0.0.1:",
    "255.255.255.0",
    "128",
    "--bogus",
    "x",
];

#[test]
fn random_command_lines_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let n = (rng.next() % 9) as usize;
        let mut argv = vec!["ipvsadm".to_string()];
        for _ in 0..n {
            argv.push(rng.pick(WORDS).to_string());
        }
        for stdin in [false, true] {
            let _ = parse_command(&argv, stdin, &NoNames);
        }
    }
}

#[test]
fn random_restore_input_never_panics() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for _ in 0..300 {
        let mut input = String::new();
        for _ in 0..(rng.next() % 20) {
            match rng.next() % 4 {
                0 => input.push('\n'),
                1 => input.push(' '),
                2 => input.push('\t'),
                _ => input.push_str(rng.pick(WORDS)),
            }
        }
        let mut t = MemTable::with(vec![svc(tcp("10.0.0.1", 80), "rr")]);
        let r = run_with(&mut t, &NoNames, &["-R"], &input);
        assert!([0, 1, 2, 255].contains(&r.code), "{input:?} → {}", r.code);
    }
}
