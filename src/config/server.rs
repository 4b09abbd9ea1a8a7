//! The `[server]` section: the transport limits set instead of tonic's defaults, each checked
//! on its own, so that a bad value is named with the bound it broke.

use serde::Deserialize;

use super::ConfigError;

/// Transport limits instead of tonic's defaults.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerLimits {
    /// Largest request message accepted, in bytes.
    pub max_message_bytes: usize,
    /// HTTP/2 streams one connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Server streams (watches, agent streams) open at once across all connections; one
    /// more gets RESOURCE_EXHAUSTED.
    pub max_open_streams: usize,
    /// Calls the server works on at once, across all connections (health checks excepted);
    /// more are refused at once with RESOURCE_EXHAUSTED instead of queueing.
    pub max_concurrent_requests: usize,
    pub keepalive_interval_secs: u64,
    pub keepalive_timeout_secs: u64,
    /// Events kept in memory for live subscribers; one further behind catches up from the
    /// store instead of losing events.
    pub live_event_buffer: usize,
    /// Bytes of events, about, kept in memory for live subscribers, with their encodings: the
    /// oldest are let go past it, however few, and whoever still needs them reads the store.
    pub live_event_bytes: usize,
    /// A server stream whose client reads nothing for this long is ended with
    /// RESOURCE_EXHAUSTED naming the sequence to resume from, so it holds no memory for ever.
    pub stalled_stream_secs: u64,
    /// A stream ended that way whose client still takes nothing this much later: its
    /// connection is closed, the only way to free what HTTP/2 holds for a reader that never
    /// opens its window.
    pub stalled_connection_secs: u64,
    /// Calls one client (one key) may have in flight, of `max_concurrent_requests`; by
    /// default a quarter of them, so one caller cannot take the server from the others.
    pub max_requests_per_client: Option<usize>,
    /// Connections open at once; never more than the open-files limit allows.
    pub max_connections: usize,
    /// A connection that sends no request this long after it opened is closed.
    pub first_request_secs: u64,
    /// A connection with no call or stream open for this long is closed.
    pub idle_connection_secs: u64,
    /// A request's message must arrive within this long of the request's start.
    pub request_body_secs: u64,
    /// Origins (`https://host[:port]`) whose pages may call the services with gRPC-Web; none
    /// by default: the console is served from the port itself.
    pub cors_allowed_origins: Vec<String>,
}

impl ServerLimits {
    /// Every limit within its bounds; each one out of them named with the bound it broke (all
    /// of them at once).
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        const MILLION: u64 = 1_000_000;
        const HOUR: u64 = 3600;
        const DAY: u64 = 24 * HOUR;
        let mut bad = Vec::new();
        let mut within = |name: &str, value: u64, low: u64, high: u64, unit: &str| {
            if !(low..=high).contains(&value) {
                bad.push(format!(
                    "[server] {name} = {value} is not within {low}..={high}{unit}"
                ));
            }
        };
        within(
            "max_message_bytes",
            self.max_message_bytes as u64,
            64 * 1024,
            1 << 30,
            " bytes (64 KiB to 1 GiB)",
        );
        within(
            "max_concurrent_streams",
            self.max_concurrent_streams.into(),
            1,
            u32::MAX.into(),
            "",
        );
        within(
            "max_concurrent_requests",
            self.max_concurrent_requests as u64,
            1,
            MILLION,
            "",
        );
        within(
            "max_open_streams",
            self.max_open_streams as u64,
            1,
            MILLION,
            "",
        );
        within(
            "live_event_buffer",
            self.live_event_buffer as u64,
            1,
            MILLION,
            " events",
        );
        within(
            "live_event_bytes",
            self.live_event_bytes as u64,
            1,
            1 << 40,
            " bytes (at most 1 TiB)",
        );
        within(
            "stalled_stream_secs",
            self.stalled_stream_secs,
            1,
            DAY,
            " seconds (a day)",
        );
        within(
            "stalled_connection_secs",
            self.stalled_connection_secs,
            1,
            DAY,
            " seconds (a day)",
        );
        if let Some(n) = self.max_requests_per_client {
            within(
                "max_requests_per_client",
                n as u64,
                1,
                self.max_concurrent_requests as u64,
                " (at most max_concurrent_requests)",
            );
        }
        within(
            "max_connections",
            self.max_connections as u64,
            1,
            MILLION,
            "",
        );
        within(
            "first_request_secs",
            self.first_request_secs,
            1,
            HOUR,
            " seconds (an hour)",
        );
        within(
            "idle_connection_secs",
            self.idle_connection_secs,
            1,
            7 * DAY,
            " seconds (a week)",
        );
        within(
            "request_body_secs",
            self.request_body_secs,
            1,
            HOUR,
            " seconds (an hour)",
        );
        within(
            "keepalive_interval_secs",
            self.keepalive_interval_secs,
            1,
            DAY,
            " seconds (a day)",
        );
        within(
            "keepalive_timeout_secs",
            self.keepalive_timeout_secs,
            1,
            HOUR,
            " seconds (an hour)",
        );
        if let Some(origin) = self.cors_allowed_origins.iter().find(|o| !is_origin(o)) {
            bad.push(format!(
                "[server] cors_allowed_origins: {origin:?} is not an origin as browsers send it; \
                 give each as scheme://host[:port] in lower case, without a path, a default \
                 port or *, e.g. \"https://console.example.com\""
            ));
        }
        match bad.is_empty() {
            true => Ok(()),
            false => Err(ConfigError::Invalid(bad.join("; "))),
        }
    }

    /// Calls one client may have in flight.
    pub fn per_client(&self) -> usize {
        self.max_requests_per_client
            .unwrap_or((self.max_concurrent_requests / 4).max(1))
    }
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_message_bytes: 1024 * 1024,
            max_concurrent_streams: 256,
            max_concurrent_requests: 4096,
            keepalive_interval_secs: 30,
            keepalive_timeout_secs: 10,
            live_event_buffer: 8192,
            live_event_bytes: 64 << 20,
            max_open_streams: 10_000,
            stalled_stream_secs: 30,
            stalled_connection_secs: 60,
            max_requests_per_client: None,
            max_connections: 10_000,
            first_request_secs: 5,
            idle_connection_secs: 300,
            request_body_secs: 10,
            cors_allowed_origins: Vec::new(),
        }
    }
}

/// `http://host[:port]` or `https://host[:port]`, exactly as a browser sends it as Origin.
fn is_origin(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once("://") else {
        return false;
    };
    let host = rest.rsplit_once(':').map_or(rest, |(host, port)| {
        if port.parse::<u16>().is_ok() {
            host
        } else {
            ""
        }
    });
    // As browsers send it: lower case, no default port, no trailing dot; anything else would
    // never match.
    let default_port = matches!(
        (scheme, rest.rsplit_once(':').map(|(_, p)| p)),
        ("http", Some("80")) | ("https", Some("443"))
    );
    matches!(scheme, "http" | "https")
        && !default_port
        && !host.is_empty()
        && !host.ends_with('.')
        && host.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'.' | b'-' | b'[' | b']' | b':')
        })
}
