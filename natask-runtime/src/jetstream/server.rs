//! The nats-server features natask uses that not every release has, and
//! the one check of a server's version against them.

use std::fmt;

/// A JetStream feature newer than the oldest server natask runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Feature {
    /// Pausing a consumer (a queue, fleet-wide).
    ConsumerPause,
    /// Per-message TTL (the locks of unique tasks).
    MessageTtl,
}

impl Feature {
    /// The first release with the feature.
    fn since(self) -> (u64, u64) {
        match self {
            Feature::ConsumerPause | Feature::MessageTtl => (2, 11),
        }
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor) = self.since();
        write!(f, "nats-server {major}.{minor}")
    }
}

/// Whether a server reporting `version` ("2.11.0", "2.12.0-beta.1") has
/// `feature`. An unreadable version (none before the first connection) is
/// given the benefit of the doubt: the server then answers for itself.
pub(crate) fn supports(version: &str, feature: Feature) -> bool {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= feature.since(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pausing_needs_nats_server_2_11() {
        let pause = Feature::ConsumerPause;
        assert!(!supports("2.10.24", pause));
        assert!(!supports("1.99.0", pause));
        assert!(supports("2.11.0", pause));
        assert!(supports("2.12.0-beta.1", pause));
        assert!(supports("3.0.0", pause));
        assert!(supports("", pause), "unknown before the first connection");
        assert_eq!(pause.to_string(), "nats-server 2.11");
    }
}
