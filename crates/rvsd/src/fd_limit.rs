//! The descriptor limit: raised from the soft to the hard limit at start, as nginx
//! (`worker_rlimit_nofile`) and HAProxy do.
//!
//! Why: every proxied service holds listening sockets and every proxied connection two
//! sockets; under systemd's default soft limit of 1 024 a table of a few hundred services
//! already runs out, and accepted connections then cannot reach their real server. The hard
//! limit is what the administrator allows; the soft one is only a default.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// The descriptor limits before and after [`raise`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raised {
    /// The soft limit rvsd was started with (`None`: unlimited).
    pub before: Option<u64>,
    /// The soft limit now.
    pub after: Option<u64>,
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit.
pub fn raise() -> std::io::Result<Raised> {
    let cur = getrlimit(Resource::Nofile);
    if cur.current == cur.maximum {
        return Ok(Raised {
            before: cur.current,
            after: cur.current,
        });
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: cur.maximum,
            maximum: cur.maximum,
        },
    )?;
    Ok(Raised {
        before: cur.current,
        after: getrlimit(Resource::Nofile).current,
    })
}

/// The soft descriptor limit now (`None`: unlimited).
pub fn current() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A soft limit below the hard one is raised to it. The soft limit is lowered only by one
    /// (the limit is process-wide: other tests of this process keep nearly all of it).
    #[test]
    fn raise_lifts_the_soft_limit_to_the_hard_one() {
        let hard = getrlimit(Resource::Nofile).maximum;
        let lowered = hard.map_or(1 << 20, |h| h - 1);
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(lowered),
                maximum: hard,
            },
        )
        .unwrap();
        assert_eq!(current(), Some(lowered));
        let r = raise().unwrap();
        assert_eq!(r.before, Some(lowered));
        assert_eq!(r.after, hard);
        assert_eq!(current(), hard);
    }
}
