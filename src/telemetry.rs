//! What the server says about its work besides its answers: log lines on stderr (text, or JSON
//! as log pipelines read it: [`json`]), an access line per call when asked for, and, when the
//! OpenTelemetry environment asks for them, traces.
//!
//! Traces follow the standard OpenTelemetry environment ([`otlp`]): OTLP over gRPC or HTTP
//! (protobuf or JSON), plaintext or TLS, to the endpoint, with the headers, timeout and
//! compression it names; `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` name the service
//! (`servicedesk` unless they do), `OTEL_TRACES_SAMPLER` and `OTEL_BSP_*` work as in every SDK,
//! and `OTEL_SDK_DISABLED=true` switches it off. A setting the server cannot honour is one
//! warning, and the desk serves without traces: telemetry never stops a pod. Unset, nothing is
//! exported and the spans made only for traces ([`TRACES`]) are never built: their callsites
//! stay disabled.
//!
//! Three kinds of span make a request's trace: the call ([`TRACED_CALLS`], a SERVER span named
//! `service/method` with the RPC semantic conventions' attributes, continuing the caller's W3C
//! `traceparent`), the runtime command it submitted, and the store commit that command waited
//! for (both [`TRACES`]). The handlers' own spans stay in the logs.

mod json;
mod otlp;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::config::{Access, LogFormat};
use otlp::{Env, Otlp};

/// The target of a call's span that is not exported (traces off, or a health check): in the
/// logs only, with its method and trace id.
pub const CALLS: &str = "servicedesk::calls";
/// The target of a call's span while traces are exported: in the logs and the traces.
pub const TRACED_CALLS: &str = "servicedesk::traced::calls";
/// The target of the spans built only for traces: runtime commands and store commits.
pub const TRACES: &str = "servicedesk::traced::work";
/// What the trace exporter takes: [`TRACED_CALLS`] and [`TRACES`], nothing else.
const TRACED: &str = "servicedesk::traced";
/// The target of the access lines, one per call as it ends.
pub const ACCESS: &str = "servicedesk::access";

/// The transport's and the exporter's own targets, which at debug write a line per HTTP/2 frame
/// or export: kept at info unless the filter names them.
const CHATTY: [&str; 7] = [
    "h2",
    "hyper",
    "hyper_util",
    "tower",
    "tonic",
    "rustls",
    "opentelemetry",
];

/// Set once the trace exporter is installed.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Which calls get an access line; set once, with the log lines, by [`Telemetry::init`].
static ACCESS_LINES: OnceLock<Access> = OnceLock::new();

/// Which calls get an access line (none before [`Telemetry::init`]).
pub fn access() -> Access {
    ACCESS_LINES.get().copied().unwrap_or_default()
}

/// Whether spans are exported. (Not `tracing::enabled!`: with per-layer filters, that leaves its
/// answer behind for the next span the thread makes, which then misses the log lines' layer.)
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Where log lines and spans go; [`Telemetry::shutdown`] sends the spans still buffered.
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Logs to stderr, filtered by `SERVICEDESK_LOG` (or `RUST_LOG`; `info` by default), with
    /// the access lines `access` asks for, and exports traces when the environment asks for
    /// them. Exporting needs the tokio runtime the server will run on: call it inside
    /// `Runtime::enter`.
    pub fn init(format: LogFormat, access: Access) -> Telemetry {
        let _ = ACCESS_LINES.set(access);
        let asked = Otlp::from_env(&Env(&|name| std::env::var(name).ok()));
        let exporting = asked.and_then(|otlp| match otlp {
            None => Ok(None),
            Some(otlp) => {
                let runtime = tokio::runtime::Handle::current();
                Ok(Some((tracer_provider(otlp.exporter(&runtime)?), otlp)))
            }
        });
        let (traces, said) = match exporting {
            Ok(Some((provider, otlp))) => (Some(provider), Ok(Some(otlp))),
            Ok(None) => (None, Ok(None)),
            Err(unusable) => (None, Err(unusable)),
        };
        let exported = traces.as_ref().map(|provider| {
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("servicedesk"))
                .with_tracked_inactivity(false)
                .with_threads(false)
                .with_location(false)
                .with_filter(Targets::new().with_target(TRACED, tracing::Level::INFO))
        });
        tracing_subscriber::registry()
            .with(log_lines(format))
            .with(exported)
            .init();
        match said {
            Ok(Some(otlp)) => {
                EXPORTING.store(true, Ordering::Relaxed);
                tracing::info!(
                    protocol = otlp.wire.name(),
                    endpoint = %otlp.endpoint,
                    "exporting traces over OTLP"
                );
            }
            Ok(None) => {}
            Err(unusable) => tracing::warn!(
                variable = unusable.variable,
                "{unusable}; the desk serves without exporting traces"
            ),
        }
        Telemetry { traces }
    }

    /// Log lines only: for the commands that serve nothing.
    pub fn logs_only(format: LogFormat) {
        tracing_subscriber::registry()
            .with(log_lines(format))
            .init();
    }

    /// Exports what is still buffered and stops exporting; waits at most a few seconds for an
    /// unreachable collector.
    pub fn shutdown(self) {
        if let Some(provider) = self.traces {
            if let Err(e) = provider.shutdown_with_timeout(std::time::Duration::from_secs(5)) {
                tracing::warn!(error = %e, "traces still buffered at shutdown were not exported");
            }
        }
    }
}

/// The log lines' layer: text (coloured only for a person at a terminal) or [`json`] lines.
fn log_lines<S>(format: LogFormat) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let (filter, quiet) = log_filter(
        ["SERVICEDESK_LOG", "RUST_LOG"]
            .iter()
            .find_map(|name| {
                std::env::var(name)
                    .ok()
                    .filter(|f| EnvFilter::try_new(f).is_ok())
            })
            .as_deref()
            .unwrap_or("info"),
    );
    let filter = filter.and(quiet);
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Json => json::CallSpans
            .and_then(lines.event_format(json::Lines))
            .with_filter(filter)
            .boxed(),
        LogFormat::Text => lines
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .with_filter(filter)
            .boxed(),
    }
}

/// The filter `directives` (valid for [`EnvFilter`]) ask for, never with the trace-only spans,
/// and what keeps the [`CHATTY`] targets at info: a filter that names one (or a target above
/// it, like `hyper` for `hyper_util`) decides it alone.
fn log_filter(directives: &str) -> (EnvFilter, Targets) {
    let filter = EnvFilter::new(directives)
        .add_directive(format!("{TRACES}=off").parse().expect("a valid directive"));
    let named: Vec<&str> = directives
        .split(',')
        .filter_map(|d| d.split(['[', '=']).next())
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.parse::<LevelFilter>().is_err())
        .collect();
    let mut quiet = Targets::new().with_default(LevelFilter::TRACE);
    for chatty in CHATTY {
        if !named.iter().any(|t| chatty.starts_with(t)) {
            quiet = quiet.with_target(chatty, LevelFilter::INFO);
        }
    }
    // A target below a quiet one (hyper_util::client under hyper) that the filter names.
    for target in named {
        if CHATTY.iter().any(|chatty| target.starts_with(chatty)) {
            quiet = quiet.with_target(target, LevelFilter::TRACE);
        }
    }
    (filter, quiet)
}

/// The exporter behind a batching processor, for the service the environment names.
fn tracer_provider(exporter: opentelemetry_otlp::SpanExporter) -> SdkTracerProvider {
    let env = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let named = env("OTEL_SERVICE_NAME").is_some()
        || env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| a.contains("service.name="));
    let mut resource = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
        "service.version",
        env!("CARGO_PKG_VERSION"),
    ));
    if !named {
        resource = resource.with_service_name("servicedesk");
    }
    SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn the_transports_debug_lines_stay_out_unless_the_filter_names_them() {
        let quiet = |directives| log_filter(directives).1;
        let debug = quiet("debug");
        for chatty in [
            "h2::codec",
            "hyper::proto",
            "hyper_util::client",
            "tower::buffer",
        ] {
            assert!(!debug.would_enable(chatty, &Level::DEBUG), "{chatty}");
            assert!(debug.would_enable(chatty, &Level::INFO), "{chatty}");
        }
        for other in ["tonic", "rustls::client", "opentelemetry_sdk"] {
            assert!(!debug.would_enable(other, &Level::DEBUG), "{other}");
        }
        assert!(debug.would_enable("servicedesk::api::edge", &Level::DEBUG));
        // Named, or a target above it named: the filter alone decides.
        assert!(quiet("debug,h2=trace").would_enable("h2::codec", &Level::TRACE));
        assert!(quiet("info,tonic=debug").would_enable("tonic", &Level::DEBUG));
        let below = quiet("debug,hyper_util::client=debug");
        assert!(below.would_enable("hyper_util::client::legacy", &Level::DEBUG));
        assert!(!below.would_enable("hyper_util::server", &Level::DEBUG));
        assert!(!below.would_enable("hyper::proto", &Level::DEBUG));
        // A span filter's field values are not targets.
        assert!(!quiet("debug,[call{method=h2}]=trace").would_enable("h2", &Level::DEBUG));
    }
}
