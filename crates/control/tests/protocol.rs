//! Codec round trips and a real handshake over a Unix socket.

use rvs_control::*;
use std::net::IpAddr;
use std::os::unix::net::UnixListener;

fn sample_service() -> ServiceEntry {
    ServiceEntry {
        spec: ServiceSpec {
            key: ServiceKey::Addr {
                protocol: Protocol::Tcp,
                addr: "10.0.0.1".parse().unwrap(),
                port: 80,
            },
            scheduler: "wlc".into(),
            flags: ServiceFlags {
                persistent: true,
                ..Default::default()
            },
            timeout: 360,
            netmask: 0xFFFF_FF00,
            pe_name: None,
            proxy_protocol: ProxyProtocol::V2,
        },
        stats: Stats {
            conns: 5,
            ..Default::default()
        },
        dests: vec![DestEntry {
            spec: DestSpec {
                addr: "192.168.1.2".parse().unwrap(),
                port: 80,
                weight: 1,
                method: ForwardMethod::FullNat,
                u_threshold: 0,
                l_threshold: 0,
                tun_type: TunnelType::Ipip,
                tun_port: 0,
                tun_csum: TunnelCsum::NoCsum,
            },
            active_conns: 1,
            inactive_conns: 2,
            persist_conns: 3,
            stats: Stats::default(),
        }],
    }
}

#[test]
fn frames_round_trip_and_split() {
    let req = Request::AddService(sample_service().spec);
    let frame = encode(&req).unwrap();
    assert_eq!(
        u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize,
        frame.len() - 4
    );
    // Incomplete input asks for more.
    for cut in 0..frame.len() {
        assert!(decode::<Request>(&frame[..cut]).unwrap().is_none());
    }
    let mut two = frame.clone();
    two.extend_from_slice(&encode(&Request::Flush).unwrap());
    let (a, used) = decode::<Request>(&two).unwrap().unwrap();
    assert_eq!(a, req);
    let (b, _) = decode::<Request>(&two[used..]).unwrap().unwrap();
    assert_eq!(b, Request::Flush);
}

#[test]
fn oversized_and_garbage_frames_are_errors() {
    let mut bad = (u32::MAX).to_be_bytes().to_vec();
    bad.extend_from_slice(b"{}");
    assert!(matches!(
        decode::<Request>(&bad),
        Err(CodecError::TooLarge { .. })
    ));
    let mut junk = 3u32.to_be_bytes().to_vec();
    junk.extend_from_slice(b"xyz");
    assert!(matches!(decode::<Request>(&junk), Err(CodecError::Json(_))));
}

#[test]
fn response_with_error_and_warnings_round_trips() {
    let r = Response::err(RemoteError::with_detail(
        ErrorKind::Unsupported,
        "--start-daemon: connection sync is not supported yet",
    ))
    .warn("w1");
    let f = encode(&r).unwrap();
    let (back, _) = decode::<Response>(&f).unwrap().unwrap();
    assert_eq!(back, r);
    let ok = Response::ok(Payload::Services(vec![sample_service()]));
    let (back, _) = decode::<Response>(&encode(&ok).unwrap()).unwrap().unwrap();
    assert_eq!(back, ok);
}

fn serve_one(
    listener: UnixListener,
    server_protocol: u32,
) -> std::thread::JoinHandle<Vec<Request>> {
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut seen = Vec::new();
        while let Some(req) = read_frame::<Request, _>(&mut s).unwrap() {
            let resp = match &req {
                Request::Hello { protocol, .. } => {
                    if *protocol == server_protocol {
                        Response::ok(Payload::Hello {
                            protocol: server_protocol,
                            server: "test-server".into(),
                        })
                    } else {
                        Response::err(RemoteError::with_detail(
                            ErrorKind::ProtocolMismatch,
                            format!("server speaks {server_protocol}, client {protocol}"),
                        ))
                    }
                }
                Request::GetInfo => Response::ok(Payload::Info(Info::default())),
                _ => Response::err(RemoteError::new(ErrorKind::Esrch)),
            };
            let stop = matches!(resp.result, Err(ref e) if e.kind == ErrorKind::ProtocolMismatch);
            seen.push(req);
            write_frame(&mut s, &resp).unwrap();
            if stop {
                break;
            }
        }
        seen
    })
}

#[test]
fn client_handshake_and_calls() {
    let dir = std::env::temp_dir().join(format!("rvs-control-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ok.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let h = serve_one(listener, PROTOCOL_VERSION);
    let mut c = Client::connect(&path, "test-client").unwrap();
    assert_eq!(c.server(), "test-server");
    let info = c.call(&Request::GetInfo).unwrap();
    assert_eq!(info.result, Ok(Payload::Info(Info::default())));
    let addr: IpAddr = "10.0.0.1".parse().unwrap();
    let del = c
        .call(&Request::DelService(ServiceKey::Addr {
            protocol: Protocol::Udp,
            addr,
            port: 53,
        }))
        .unwrap();
    assert_eq!(del.result.unwrap_err().kind, ErrorKind::Esrch);
    drop(c);
    let seen = h.join().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(matches!(
        seen[0],
        Request::Hello {
            protocol: PROTOCOL_VERSION,
            ..
        }
    ));

    // A server speaking another version is refused with a clear error.
    let path2 = dir.join("old.sock");
    let _ = std::fs::remove_file(&path2);
    let h2 = serve_one(UnixListener::bind(&path2).unwrap(), PROTOCOL_VERSION + 1);
    let err = Client::connect(&path2, "test-client").unwrap_err();
    assert!(matches!(err, ClientError::Handshake { .. }), "{err}");
    assert!(err.to_string().contains("server speaks"), "{err}");
    h2.join().unwrap();

    // Nothing listening: a connect error naming the path.
    let err = Client::connect(&dir.join("none.sock"), "t").unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }));
    assert!(err.to_string().contains("none.sock"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The wire format is a contract with other binaries: changing it needs a PROTOCOL_VERSION bump.
#[test]
fn wire_format_is_stable() {
    let req = Request::AddDest {
        service: ServiceKey::Fwmark {
            mark: 7,
            family: Family::Inet6,
        },
        dest: DestSpec {
            addr: "2001:db8::1".parse().unwrap(),
            port: 0,
            weight: 3,
            method: ForwardMethod::Tunnel,
            u_threshold: 10,
            l_threshold: 5,
            tun_type: TunnelType::Gue,
            tun_port: 6080,
            tun_csum: TunnelCsum::RemCsum,
        },
    };
    assert_eq!(
        serde_json::to_string(&req).unwrap(),
        r#"{"add_dest":{"service":{"fwmark":{"mark":7,"family":"inet6"}},"dest":{"addr":"2001:db8::1","port":0,"weight":3,"method":"tunnel","u_threshold":10,"l_threshold":5,"tun_type":"gue","tun_port":6080,"tun_csum":"remcsum"}}}"#
    );
    let hello = Request::Hello {
        protocol: PROTOCOL_VERSION,
        client: "rvsadm 0.1.0".into(),
    };
    assert_eq!(
        serde_json::to_string(&hello).unwrap(),
        r#"{"hello":{"protocol":4,"client":"rvsadm 0.1.0"}}"#
    );
    let resp = Response::err(RemoteError::new(ErrorKind::Esrch));
    assert_eq!(
        serde_json::to_string(&resp).unwrap(),
        r#"{"result":{"Err":{"kind":"esrch","detail":null}},"warnings":[]}"#
    );
    assert_eq!(
        serde_json::to_string(&Response::ok(Payload::Done)).unwrap(),
        r#"{"result":{"Ok":"done"},"warnings":[]}"#
    );
    assert_eq!(
        serde_json::to_string(&Request::GetServices).unwrap(),
        r#""get_services""#
    );
    assert_eq!(
        serde_json::to_string(&Request::GetVrrp).unwrap(),
        r#""get_vrrp""#
    );
    assert_eq!(
        serde_json::to_string(&Request::SetSysctl {
            name: "sloppy_tcp".into(),
            value: "1".into()
        })
        .unwrap(),
        r#"{"set_sysctl":{"name":"sloppy_tcp","value":"1"}}"#
    );
    let state = serde_json::to_string(&VrrpState::Master).unwrap();
    assert_eq!(state, r#""master""#);
    assert_eq!(
        serde_json::to_string(&Request::Batch(vec![Request::Flush])).unwrap(),
        r#"{"batch":["flush"]}"#
    );
    assert_eq!(
        serde_json::to_string(&Response::ok(Payload::Batch(vec![Response::err(
            RemoteError::with_detail(ErrorKind::CannotListen, "x")
        )])))
        .unwrap(),
        r#"{"result":{"Ok":{"batch":[{"result":{"Err":{"kind":"cannot_listen","detail":"x"}},"warnings":[]}]}},"warnings":[]}"#
    );
}

#[test]
fn display_of_keys() {
    let k = ServiceKey::Addr {
        protocol: Protocol::Udp,
        addr: "2001:db8::1".parse().unwrap(),
        port: 53,
    };
    assert_eq!(k.to_string(), "UDP [2001:db8::1]:53");
    let f = ServiceKey::Fwmark {
        mark: 1,
        family: Family::Inet6,
    };
    assert_eq!(f.to_string(), "FWM 1 IPv6");
    assert_eq!(ForwardMethod::FullNat.name(), "FullNat");
}

#[test]
fn ipvsadm_defaults() {
    let k6 = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: "2001:db8::1".parse().unwrap(),
        port: 80,
    };
    let s = ServiceSpec::with_defaults(k6);
    assert_eq!(
        (s.scheduler.as_str(), s.netmask, s.timeout),
        ("wlc", 128, 0)
    );
    let s4 = ServiceSpec::with_defaults(ServiceKey::Fwmark {
        mark: 1,
        family: Family::Inet,
    });
    assert_eq!(s4.netmask, 0xFFFF_FFFF);
    let d = DestSpec::with_defaults("10.0.0.2".parse().unwrap(), 80);
    assert_eq!((d.weight, d.method), (1, ForwardMethod::Route));
}

#[test]
fn vrrp_status_round_trips() {
    let e = VrrpInstanceEntry {
        name: "VI_1".into(),
        vrid: 51,
        interface: "eth0".into(),
        version: 3,
        family: Family::Inet6,
        state: VrrpState::Master,
        base_priority: 150,
        effective_priority: 90,
        advert_int_cs: 50,
        transitions: 2,
        became_master: 1,
        adverts_sent: 1234,
        priority_zero_sent: 0,
        adverts_received: 7,
        adverts_rejected: 3,
        priority_zero_received: 1,
        rejects: vec![VrrpRejects {
            reason: "ttl".into(),
            count: 3,
        }],
        in_state_ms: Some(61_500),
        sync_group: Some("G1".into()),
        vips: vec!["2001:db8::100".parse().unwrap()],
    };
    let r = Response::ok(Payload::Vrrp(vec![e]));
    let (back, _) = decode::<Response>(&encode(&r).unwrap()).unwrap().unwrap();
    assert_eq!(back, r);
    let (req, _) = decode::<Request>(&encode(&Request::GetVrrp).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(req, Request::GetVrrp);
    for s in [
        VrrpState::Init,
        VrrpState::Backup,
        VrrpState::Master,
        VrrpState::Fault,
        VrrpState::Stop,
    ] {
        assert_eq!(VrrpState::from_name(s.name()), Some(s));
    }
    assert_eq!(VrrpState::from_name("master"), None);
}
