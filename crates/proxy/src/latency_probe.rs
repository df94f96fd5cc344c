//! Response-time measurement of a TCP flow, for latency-aware scheduling (`pewma`,
//! docs/guide/load-aware.md#the-latency-aware-scheduler-pewma).
//!
//! One sample per connection: the connect time plus the time from the client's first bytes
//! reaching the real server to the real server's first bytes coming back (time to first byte).
//! Counting from the client's first bytes, not from the connect, keeps a client that connects
//! and waits from making the server look slow; a server that speaks first (SMTP, SSH banners)
//! is timed from the connect. Only the first answer of a connection is timed: later requests
//! on a kept-alive connection cannot be told apart from the bytes alone.

use std::time::Duration;

use tokio::time::Instant;

/// Where the measurement of one flow stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LatencyProbe {
    /// Not measured (the service's scheduler does not use it, UDP, or done).
    Off,
    /// Connecting since then.
    Connecting(Instant),
    /// Connected after `connect`; waiting for the server's first bytes, timed from `since`
    /// (the connect, then the client's first bytes once they pass).
    Waiting {
        connect: Duration,
        since: Instant,
        client_spoke: bool,
    },
}

impl LatencyProbe {
    /// Start timing a connect now, if `on`.
    pub fn start(on: bool) -> Self {
        if on {
            LatencyProbe::Connecting(Instant::now())
        } else {
            LatencyProbe::Off
        }
    }

    /// The connect finished.
    pub fn connected(self) -> Self {
        match self {
            LatencyProbe::Connecting(t) => {
                let now = Instant::now();
                LatencyProbe::Waiting {
                    connect: now.saturating_duration_since(t),
                    since: now,
                    client_spoke: false,
                }
            }
            other => other,
        }
    }

    /// Bytes passed (`inbound`: client → server). Returns the new state and, on the server's
    /// first bytes, the sample.
    pub fn bytes(self, inbound: bool) -> (Self, Option<Duration>) {
        match self {
            LatencyProbe::Waiting {
                connect,
                client_spoke: false,
                ..
            } if inbound => (
                LatencyProbe::Waiting {
                    connect,
                    since: Instant::now(),
                    client_spoke: true,
                },
                None,
            ),
            LatencyProbe::Waiting { connect, since, .. } if !inbound => (
                LatencyProbe::Off,
                Some(connect + Instant::now().saturating_duration_since(since)),
            ),
            other => (other, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn connect_plus_time_to_first_byte_after_the_client_spoke() {
        let p = LatencyProbe::start(true);
        tokio::time::advance(Duration::from_millis(3)).await;
        let p = p.connected();
        // The client waits 100 ms before sending: not the server's fault.
        tokio::time::advance(Duration::from_millis(100)).await;
        let (p, s) = p.bytes(true);
        assert_eq!(s, None);
        tokio::time::advance(Duration::from_millis(20)).await;
        let (p, s) = p.bytes(true);
        assert_eq!(s, None, "more client bytes do not restart the clock");
        let (p, s) = p.bytes(false);
        assert_eq!(s, Some(Duration::from_millis(23)));
        assert_eq!(p, LatencyProbe::Off);
        assert_eq!(p.bytes(false).1, None, "one sample per connection");
    }

    #[tokio::test(start_paused = true)]
    async fn server_first_and_off() {
        let p = LatencyProbe::start(true).connected();
        tokio::time::advance(Duration::from_millis(7)).await;
        assert_eq!(p.bytes(false).1, Some(Duration::from_millis(7)));
        let p = LatencyProbe::start(false).connected();
        assert_eq!(p.bytes(true).1, None);
        assert_eq!(p.bytes(false).1, None);
    }
}
