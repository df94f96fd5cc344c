//! TCP_CHECK (docs/internals/keepalived.md#checkers-and-their-timers): success = connected within `connect_timeout`; the socket is closed
//! at once.

use std::time::Duration;

use super::{net, MiscWeight};
use crate::config::ConnectOpts;
use crate::error::Result;

pub(crate) async fn check(o: &ConnectOpts, timeout: Duration) -> Result<Option<MiscWeight>> {
    let stream = net::tcp_connect(o, timeout).await?;
    drop(stream);
    Ok(None)
}
