//! Streams that need no key: health watches (`grpc.health.v1.Health/Watch`) and reflection
//! (`ServerReflectionInfo`). Anybody can open them and hold them open, and each holds its
//! connection busy, so nothing idle-closes it: without a bound, one per connection takes every
//! connection the server has, and the next health probe finds no room.
//!
//! So they are bounded: at most a share of the server's connections can be held by them in all
//! (a quarter, see [`KeylessLimits::for_connections`]), and at most [`PER_PEER`] from one
//! address. Past either, a new one is refused at once with RESOURCE_EXHAUSTED. Health checks
//! (unary) are not streams and are never refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Key-less streams one address may hold: a mesh proxy or a client library watches a few
/// services' health at most.
pub const PER_PEER: usize = 16;

/// The paths of the streams that need no key.
const KEYLESS_STREAMS: [&str; 3] = [
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Whether a call to `path` is a stream that needs no key.
pub fn is_keyless_stream(path: &str) -> bool {
    KEYLESS_STREAMS.contains(&path)
}

/// How many key-less streams may be open.
#[derive(Clone, Copy, Debug)]
pub struct KeylessLimits {
    pub total: usize,
    pub per_peer: usize,
}

impl KeylessLimits {
    /// A quarter of the server's connections, so the rest always find room (at least a few,
    /// at most 1,024), and [`PER_PEER`] per address.
    pub fn for_connections(max_connections: usize) -> KeylessLimits {
        KeylessLimits {
            total: (max_connections / 4).clamp(4, 1024),
            per_peer: PER_PEER,
        }
    }
}

/// The key-less streams open, in all and by address.
#[derive(Debug)]
pub struct KeylessStreams {
    limits: KeylessLimits,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_peer: HashMap<Option<IpAddr>, usize>,
}

impl KeylessStreams {
    pub fn new(limits: KeylessLimits) -> Self {
        KeylessStreams {
            limits,
            open: Mutex::default(),
        }
    }

    /// A place for one more stream from `peer`, or why there is none.
    pub fn enter(self: &Arc<Self>, peer: Option<IpAddr>) -> Result<KeylessStream, String> {
        let mut open = self.open.lock().expect("key-less streams poisoned");
        if open.total >= self.limits.total {
            return Err(format!(
                "the server has {} streams open that need no key (health watches, reflection), \
                 its limit; use Health/Check, or retry later",
                self.limits.total
            ));
        }
        let from_peer = open.by_peer.entry(peer).or_default();
        if *from_peer >= self.limits.per_peer {
            return Err(format!(
                "this address has {} streams open that need no key (health watches, \
                 reflection), its limit; close some, or use Health/Check",
                self.limits.per_peer
            ));
        }
        *from_peer += 1;
        open.total += 1;
        Ok(KeylessStream {
            streams: self.clone(),
            peer,
        })
    }
}

/// One key-less stream, counted until dropped.
#[derive(Debug)]
pub struct KeylessStream {
    streams: Arc<KeylessStreams>,
    peer: Option<IpAddr>,
}

impl Drop for KeylessStream {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock().expect("key-less streams poisoned");
        open.total -= 1;
        if let Some(count) = open.by_peer.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                open.by_peer.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_bounded_per_address_and_in_all_and_given_back() {
        let streams = Arc::new(KeylessStreams::new(KeylessLimits {
            total: 5,
            per_peer: 3,
        }));
        let (a, b, c) = (
            Some(IpAddr::from([10, 0, 0, 1])),
            Some(IpAddr::from([10, 0, 0, 2])),
            Some(IpAddr::from([10, 0, 0, 3])),
        );
        let mut held: Vec<KeylessStream> = (0..3).map(|_| streams.enter(a).unwrap()).collect();
        let refused = streams.enter(a).unwrap_err();
        assert!(refused.contains("this address has 3 streams"), "{refused}");
        held.push(streams.enter(b).unwrap());
        held.push(streams.enter(b).unwrap());
        let refused = streams.enter(c).unwrap_err();
        assert!(refused.contains("the server has 5 streams"), "{refused}");
        held.remove(0);
        held.push(streams.enter(c).unwrap());
        drop(held);
        assert_eq!(streams.open.lock().unwrap().total, 0);
        assert!(streams.open.lock().unwrap().by_peer.is_empty());
    }

    #[test]
    fn a_quarter_of_the_connections_at_most() {
        assert_eq!(KeylessLimits::for_connections(172).total, 43);
        assert_eq!(KeylessLimits::for_connections(10_000).total, 1024);
        assert_eq!(KeylessLimits::for_connections(8).total, 4);
    }
}
