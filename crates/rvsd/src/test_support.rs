//! Helpers shared by the unit tests of this crate.

use rvs_control::proto::Request;

/// The request rvsadm sends for a command line (without the program name).
pub fn parse_cmd(c: &str) -> Request {
    let args: Vec<String> = std::iter::once("rvsadm".to_string())
        .chain(c.split_whitespace().map(String::from))
        .collect();
    rvsadm_request(&args)
}

/// Turns an rvsadm command line into its request with rvsadm's own parser.
fn rvsadm_request(args: &[String]) -> Request {
    struct Capture(Vec<Request>);
    impl rvsadm::app::Backend for Capture {
        fn call(
            &mut self,
            req: &Request,
        ) -> Result<rvs_control::proto::Response, rvsadm::app::BackendError> {
            self.0.push(req.clone());
            Ok(match req {
                Request::GetInfo => rvs_control::proto::Response::ok(
                    rvs_control::proto::Payload::Info(rvs_control::model::Info::default()),
                ),
                _ => rvs_control::proto::Response::ok(rvs_control::proto::Payload::Done),
            })
        }
    }
    let mut b = Capture(Vec::new());
    let names = rvsadm::names::NoNames;
    let (mut o, mut e) = (Vec::new(), Vec::new());
    let code = rvsadm::app::App::new(&mut b, &names, &mut o, &mut e).run(args, &mut &b""[..]);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&e));
    b.0.into_iter()
        .find(|r| !matches!(r, Request::GetInfo))
        .expect("a request")
}
