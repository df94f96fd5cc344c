//! The discovery decoders (rvsd's `discovery` module) on arbitrary bytes, as a broken or
//! hostile dockerd or etcd could send them: HTTP response heads, chunked bodies split
//! anywhere, line splitting, etcd's watch lines, range answers, keys and values of the key
//! layout and the whole-prefix table, Docker's events, inspect answers and labels. None may
//! panic; a chunked body never yields more bytes than it was given.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use rvsd::discovery::{docker, etcd, http};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    match sel % 8 {
        0 => {
            if let Ok(Some((head, used))) = http::parse_head(body) {
                assert!(used <= body.len());
                let _ = head.framing();
            }
        }
        1 => {
            let mid = usize::from(sel) % (body.len() + 1);
            let mut d = http::ChunkDecoder::default();
            let mut out = Vec::new();
            if let Ok(a) = d.push(&body[..mid], &mut out) {
                assert!(a <= mid);
                if a == mid {
                    let _ = d.push(&body[mid..], &mut out);
                }
            }
            assert!(out.len() <= body.len());
            let mut lines = Vec::new();
            let mut s = http::LineSplitter::default();
            let _ = s.push(body, &mut lines);
            let _ = s.finish();
        }
        2 => {
            let _ = etcd::parse_watch_line(body);
        }
        3 => {
            let _ = etcd::parse_range(body);
        }
        4 => {
            // KEY \0 SERVICE-VALUE \0 SERVER-VALUE
            let mut parts = body.splitn(3, |&b| b == 0);
            let key = parts.next().unwrap_or_default();
            let svc = parts.next().unwrap_or_default();
            let srv = parts.next().unwrap_or_default();
            let _ = etcd::parse_key("/rvs", key);
            if let Ok(spec) = etcd::parse_service(svc) {
                let _ = etcd::parse_server(&spec, srv);
            }
            if let Ok(text) = std::str::from_utf8(body) {
                let _ = etcd::b64_decode(text);
            }
        }
        5 => {
            let _ = docker::parse_event(body);
            let _ = docker::parse_list(body);
        }
        6 => {
            if let Ok(c) = docker::parse_inspect(body) {
                let _ = docker::parse_labels(&c.labels);
            }
        }
        _ => {
            // Lines `KEY\tVALUE`: a whole prefix.
            let mut kvs = BTreeMap::new();
            for line in body.split(|&b| b == b'\n') {
                let mut kv = line.splitn(2, |&b| b == b'\t');
                let k = kv.next().unwrap_or_default();
                let v = kv.next().unwrap_or_default();
                kvs.insert(k.to_vec(), v.to_vec());
            }
            let _ = etcd::desired("/rvs", &kvs);
        }
    }
});
