//! The OTLP trace exporter as the standard OpenTelemetry environment describes it, checked in
//! full before anything is built. A cluster-wide injection (the OpenTelemetry Operator's, say)
//! sets these on every pod; a value this server cannot honour is an [`Unusable`] naming the
//! variable and what to set instead, never a guess and never a reason to stop the desk.
//!
//! Each `OTEL_EXPORTER_OTLP_TRACES_*` variable wins over its `OTEL_EXPORTER_OTLP_*` twin; an
//! empty one counts as unset.
//!
//! - `..._PROTOCOL`: `grpc` (the default), `http/protobuf` or `http/json`.
//! - `..._ENDPOINT`: `http://` or, for TLS, `https://`. For HTTP, the traces' variable is the
//!   whole URL and the general one a base that gets `/v1/traces`. With no endpoint but a
//!   protocol, the collector on this host: `http://localhost:4317` (gRPC) or
//!   `http://localhost:4318/v1/traces`. A gRPC endpoint without a scheme is TLS unless
//!   `..._INSECURE=true`.
//! - `..._CERTIFICATE`: the CA (PEM) that signed the collector's certificate, instead of the
//!   system's roots; `..._CLIENT_CERTIFICATE` and `..._CLIENT_KEY`: this server's own, for a
//!   collector that asks for one. Only read for `https://`.
//! - `..._HEADERS`: `key=value` pairs separated by commas, the values percent-decoded, sent
//!   with every export on either protocol.
//! - `..._TIMEOUT`: milliseconds an export may take (10 s by default); `..._COMPRESSION`:
//!   `gzip` or `none`.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Bytes read of a certificate or key file, at most: a path to something endless
/// (`/dev/zero`) must not hold the start.
const PEM_FILE_BYTES: u64 = 1 << 20;
/// How long an export may take unless `..._TIMEOUT` says otherwise, as every SDK has it.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A setting the exporter cannot honour: which variable, and what is wrong and what to set.
#[derive(Debug)]
pub struct Unusable {
    pub variable: &'static str,
    pub problem: String,
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.variable, self.problem)
    }
}

fn unusable(variable: &'static str, problem: impl Into<String>) -> Unusable {
    Unusable {
        variable,
        problem: problem.into(),
    }
}

/// The wire format of the exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

impl Wire {
    /// Its name in `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn name(self) -> &'static str {
        match self {
            Wire::Grpc => "grpc",
            Wire::HttpProtobuf => "http/protobuf",
            Wire::HttpJson => "http/json",
        }
    }
}

/// TLS to the collector, its files read and checked.
#[derive(Debug)]
struct Tls {
    /// The CA certificates (PEM) to trust instead of the system's roots.
    ca: Option<Vec<u8>>,
    /// This server's certificate chain and key (PEM), when the collector asks for one.
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// Where and how traces are exported, every value checked.
#[derive(Debug)]
pub struct Otlp {
    pub wire: Wire,
    /// The whole URL: for HTTP, the path included.
    pub endpoint: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    gzip: bool,
    /// `Some` exactly when the endpoint is `https://`.
    tls: Option<Tls>,
}

/// The traces' variable of a setting and its general twin.
struct Setting {
    traces: &'static str,
    general: &'static str,
}

/// `NAME`: `OTEL_EXPORTER_OTLP_TRACES_NAME` and `OTEL_EXPORTER_OTLP_NAME`.
macro_rules! settings {
    ($($name:ident),+) => {$(
        const $name: Setting = Setting {
            traces: concat!("OTEL_EXPORTER_OTLP_TRACES_", stringify!($name)),
            general: concat!("OTEL_EXPORTER_OTLP_", stringify!($name)),
        };
    )+};
}

settings!(
    PROTOCOL,
    ENDPOINT,
    INSECURE,
    HEADERS,
    TIMEOUT,
    COMPRESSION,
    CERTIFICATE,
    CLIENT_CERTIFICATE,
    CLIENT_KEY
);

/// The environment, as a lookup: empty values count as unset.
pub struct Env<'a>(pub &'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn get(&self, name: &'static str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    /// The setting's value and the variable it came from.
    fn setting(&self, setting: &Setting) -> Option<(&'static str, String)> {
        [setting.traces, setting.general]
            .into_iter()
            .find_map(|name| Some((name, self.get(name)?.trim().to_string())))
    }
}

impl Otlp {
    /// What the environment asks for: `None` when it asks for no traces (nothing set, or
    /// `OTEL_SDK_DISABLED=true`, or `OTEL_TRACES_EXPORTER=none`).
    pub fn from_env(env: &Env) -> Result<Option<Otlp>, Unusable> {
        let disabled = env
            .get("OTEL_SDK_DISABLED")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let exporter = env.get("OTEL_TRACES_EXPORTER");
        if disabled
            || exporter
                .as_deref()
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("none"))
        {
            return Ok(None);
        }
        if let Some(other) = exporter.filter(|v| !v.trim().eq_ignore_ascii_case("otlp")) {
            return Err(unusable(
                "OTEL_TRACES_EXPORTER",
                format!(
                    "{other:?} is not an exporter this server has; set otlp (with an \
                     OTLP endpoint) or none"
                ),
            ));
        }
        let protocol = env.setting(&PROTOCOL);
        if protocol.is_none() && env.setting(&ENDPOINT).is_none() {
            return Ok(None);
        }
        let wire = match protocol {
            None => Wire::Grpc,
            Some((_, p)) if p == "grpc" => Wire::Grpc,
            Some((_, p)) if p == "http/protobuf" => Wire::HttpProtobuf,
            Some((_, p)) if p == "http/json" => Wire::HttpJson,
            Some((variable, p)) => {
                return Err(unusable(
                    variable,
                    format!(
                        "{p:?} is not an OTLP protocol; set grpc (port 4317 by convention), \
                         http/protobuf or http/json (port 4318), or unset it for grpc"
                    ),
                ))
            }
        };
        let endpoint = endpoint(env, wire)?;
        let tls = match endpoint.scheme_str() {
            Some("https") => Some(tls(env)?),
            _ => None,
        };
        let timeout = match env.setting(&TIMEOUT) {
            None => DEFAULT_TIMEOUT,
            Some((variable, ms)) => match ms.parse::<u64>() {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => {
                    return Err(unusable(
                        variable,
                        format!(
                            "{ms:?} is not a number of milliseconds; give the time an export \
                             may take in whole milliseconds, e.g. 10000"
                        ),
                    ))
                }
            },
        };
        let gzip = match env.setting(&COMPRESSION) {
            None => false,
            Some((_, c)) if c.eq_ignore_ascii_case("none") => false,
            Some((_, c)) if c.eq_ignore_ascii_case("gzip") => true,
            Some((variable, c)) => {
                return Err(unusable(
                    variable,
                    format!("{c:?} is not a compression this server has; set gzip or none"),
                ))
            }
        };
        Ok(Some(Otlp {
            wire,
            endpoint,
            headers: headers(env)?,
            timeout,
            gzip,
            tls,
        }))
    }

    /// The exporter. Exports over HTTP are sent on `runtime`: the batching processor sends
    /// from a thread of its own, where no runtime runs.
    pub fn exporter(
        &self,
        runtime: &tokio::runtime::Handle,
    ) -> Result<opentelemetry_otlp::SpanExporter, Unusable> {
        let built = match self.wire {
            Wire::Grpc => self.grpc_exporter(),
            Wire::HttpProtobuf | Wire::HttpJson => {
                let tls = self.tls.as_ref().map(rustls_config).transpose()?;
                self.http_exporter(tls, runtime)
            }
        };
        built.map_err(|e| {
            unusable(
                ENDPOINT.general,
                format!("the OTLP trace exporter cannot be built ({e}); check the OTLP settings"),
            )
        })
    }

    fn grpc_exporter(
        &self,
    ) -> Result<opentelemetry_otlp::SpanExporter, opentelemetry_otlp::ExporterBuildError> {
        let mut metadata = HeaderMap::new();
        for (name, value) in &self.headers {
            metadata.append(name.clone(), value.clone());
        }
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(self.endpoint.to_string())
            .with_timeout(self.timeout)
            .with_metadata(MetadataMap::from_headers(metadata));
        if self.gzip {
            builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
        }
        if let Some(tls) = &self.tls {
            let mut config = match &tls.ca {
                Some(ca) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)),
                None => ClientTlsConfig::new().with_native_roots(),
            };
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            builder = builder.with_tls_config(config);
        }
        builder.build()
    }

    /// With `tls` for an `https://` endpoint.
    fn http_exporter(
        &self,
        tls: Option<rustls::ClientConfig>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<opentelemetry_otlp::SpanExporter, opentelemetry_otlp::ExporterBuildError> {
        use opentelemetry_http::hyper::HyperClient;
        let client: Arc<dyn HttpClient> = match tls {
            None => Arc::new(HyperClient::with_default_connector(self.timeout, None)),
            Some(tls) => {
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_only()
                    .enable_http1()
                    .build();
                Arc::new(HyperClient::new(connector, self.timeout, None))
            }
        };
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(match self.wire {
                Wire::HttpJson => Protocol::HttpJson,
                _ => Protocol::HttpBinary,
            })
            .with_endpoint(self.endpoint.to_string())
            .with_timeout(self.timeout)
            .with_http_client(OnRuntime {
                client,
                headers: self.headers.clone(),
                runtime: runtime.clone(),
                failing: std::sync::Mutex::new(None),
            });
        if self.gzip {
            builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
        }
        builder.build()
    }
}

/// The collector's URL: the traces' endpoint as it is, or the general one (with `/v1/traces`
/// for HTTP), or the local collector's when only a protocol is set.
fn endpoint(env: &Env, wire: Wire) -> Result<Uri, Unusable> {
    let example = match wire {
        Wire::Grpc => "http://otel-collector:4317",
        Wire::HttpProtobuf | Wire::HttpJson => "http://otel-collector:4318",
    };
    let (variable, text) = match env.setting(&ENDPOINT) {
        Some(found) => found,
        None => {
            let local = match wire {
                Wire::Grpc => "http://localhost:4317",
                Wire::HttpProtobuf | Wire::HttpJson => "http://localhost:4318/v1/traces",
            };
            return Ok(Uri::from_static(local));
        }
    };
    // The specification's rule for gRPC: no scheme means TLS unless told it is insecure.
    let text = if wire == Wire::Grpc && !text.contains("://") {
        let insecure = env
            .setting(&INSECURE)
            .is_some_and(|(_, v)| v.eq_ignore_ascii_case("true"));
        format!("{}://{text}", if insecure { "http" } else { "https" })
    } else {
        text
    };
    let malformed = || {
        unusable(
            variable,
            format!(
                "{text:?} is not a URL to send traces to; give http://HOST:PORT, or https:// \
                 for TLS, e.g. {example}"
            ),
        )
    };
    let uri: Uri = text.parse().map_err(|_| malformed())?;
    let Some(authority) = uri.authority() else {
        return Err(malformed());
    };
    if authority.as_str().contains('@') {
        // Not echoed: what precedes the @ is a password, often.
        return Err(unusable(
            variable,
            "credentials in the endpoint's URL are never sent; remove them and pass them in \
             OTEL_EXPORTER_OTLP_HEADERS",
        ));
    }
    if !matches!(uri.scheme_str(), Some("http" | "https")) || authority.host().is_empty() {
        return Err(malformed());
    }
    if wire == Wire::Grpc || variable == ENDPOINT.traces {
        return Ok(uri);
    }
    let base = uri.path().trim_end_matches('/');
    format!(
        "{}://{authority}{base}/v1/traces",
        uri.scheme_str().unwrap_or("http")
    )
    .parse()
    .map_err(|_| malformed())
}

/// The headers sent with every export: `key=value,...`, values percent-decoded. Values are
/// never echoed in a problem: they are API keys, often.
fn headers(env: &Env) -> Result<Vec<(HeaderName, HeaderValue)>, Unusable> {
    let Some((variable, text)) = env.setting(&HEADERS) else {
        return Ok(Vec::new());
    };
    let mut headers = Vec::new();
    for (n, entry) in text.split(',').map(str::trim).enumerate() {
        if entry.is_empty() {
            continue;
        }
        let n = n + 1;
        let Some((key, value)) = entry.split_once('=') else {
            return Err(unusable(
                variable,
                format!(
                    "entry {n} has no '='; write each header as key=value, separated by commas"
                ),
            ));
        };
        let key = key.trim();
        let Ok(name) = HeaderName::from_bytes(key.as_bytes()) else {
            return Err(unusable(
                variable,
                format!("entry {n}: {key:?} is not a header name; use letters, digits and '-'"),
            ));
        };
        let Some(value) = percent_decoded(value.trim())
            .and_then(|v| HeaderValue::from_str(&v).ok())
            .filter(|v| !v.is_empty())
        else {
            return Err(unusable(
                variable,
                format!(
                    "the value of {name} (entry {n}) is empty or not text a header can carry; \
                     percent-encode what it needs (%2C for a comma, %3D for '=')"
                ),
            ));
        };
        headers.push((name, value));
    }
    Ok(headers)
}

/// `text` with each `%XX` replaced by its byte; `None` for a `%` not followed by two hex
/// digits, or bytes that are not UTF-8.
fn percent_decoded(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, after)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(after.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &after[2..];
        } else {
            bytes.push(b);
            rest = after;
        }
    }
    String::from_utf8(bytes).ok()
}

/// The CA and this server's certificate and key, read and parsed.
fn tls(env: &Env) -> Result<Tls, Unusable> {
    let identity = match (env.setting(&CLIENT_CERTIFICATE), env.setting(&CLIENT_KEY)) {
        (None, None) => None,
        (Some((variable, _)), None) | (None, Some((variable, _))) => {
            return Err(unusable(
                variable,
                format!(
                    "a client certificate needs its key and a key its certificate; set both \
                     {} and {} (or neither)",
                    CLIENT_CERTIFICATE.general, CLIENT_KEY.general
                ),
            ))
        }
        (Some((cert_variable, cert_path)), Some((key_variable, key_path))) => {
            let cert = read_pem(cert_variable, &cert_path)?;
            if certificates(&cert).is_empty() {
                return Err(unusable(
                    cert_variable,
                    format!("{cert_path} holds no certificate (PEM); name this server's own"),
                ));
            }
            let key = read_pem(key_variable, &key_path)?;
            if PrivateKeyDer::from_pem_slice(&key).is_err() {
                return Err(unusable(
                    key_variable,
                    format!("{key_path} holds no private key (PEM); name the key of {cert_path}"),
                ));
            }
            Some((cert, key))
        }
    };
    let ca = match env.setting(&CERTIFICATE) {
        None if rustls_native_certs::load_native_certs().certs.is_empty() => {
            return Err(unusable(
                CERTIFICATE.general,
                "this system has no root certificates to check the collector's with; name the \
                 file (PEM) of the CA that signed it",
            ))
        }
        None => None,
        Some((variable, path)) => {
            let pem = read_pem(variable, &path)?;
            if certificates(&pem).is_empty() {
                return Err(unusable(
                    variable,
                    format!(
                        "{path} holds no certificate (PEM); name the file of the CA that \
                         signed the collector's certificate, or unset it for the system's roots"
                    ),
                ));
            }
            Some(pem)
        }
    };
    Ok(Tls { ca, identity })
}

/// A PEM file's bytes, at most [`PEM_FILE_BYTES`] of them.
fn read_pem(variable: &'static str, path: &str) -> Result<Vec<u8>, Unusable> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(PEM_FILE_BYTES).read_to_end(&mut bytes))
        .map_err(|e| {
            unusable(
                variable,
                format!("cannot read {path} ({e}); name a readable PEM file, or unset it"),
            )
        })?;
    Ok(bytes)
}

fn certificates(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

/// TLS for the HTTP client: ring's cryptography, the CA given or the system's roots, this
/// server's certificate when given.
fn rustls_config(tls: &Tls) -> Result<rustls::ClientConfig, Unusable> {
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca {
        Some(ca) => {
            let (_, refused) = roots.add_parsable_certificates(certificates(ca));
            if roots.is_empty() {
                return Err(unusable(
                    CERTIFICATE.general,
                    format!(
                        "none of its {refused} certificates can be a CA; name the file of the \
                         CA that signed the collector's certificate"
                    ),
                ));
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unusable(CERTIFICATE.general, format!("no TLS version to use: {e}")))?
        .with_root_certificates(roots);
    match &tls.identity {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| {
                unusable(CLIENT_KEY.general, format!("the key cannot be read: {e}"))
            })?;
            builder
                .with_client_auth_cert(certificates(cert), key)
                .map_err(|e| {
                    unusable(
                        CLIENT_CERTIFICATE.general,
                        format!("the certificate and key do not make an identity: {e}"),
                    )
                })
        }
    }
}

/// An HTTP client whose requests run on the server's runtime, whichever thread sends them,
/// with the headers checked here. (The exporter adds the headers' variable too, but decoded
/// leniently, dropping what it cannot read, and `with_headers` would decode these twice.)
#[derive(Debug)]
struct OnRuntime {
    client: Arc<dyn HttpClient>,
    headers: Vec<(HeaderName, HeaderValue)>,
    runtime: tokio::runtime::Handle,
    /// The failure last logged, until an export gets through: a collector that keeps failing
    /// the same way is one line, not one per attempt.
    failing: std::sync::Mutex<Option<String>>,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, mut request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        for (name, value) in &self.headers {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        let endpoint = request.uri().clone();
        let client = self.client.clone();
        let sent = self
            .runtime
            .spawn(async move { client.send_bytes(request).await })
            .await?;
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        match &sent {
            Ok(_) => *failing = None,
            Err(e) => {
                let why = failure(e.as_ref());
                if failing.as_deref() != Some(why.as_str()) {
                    tracing::warn!(%endpoint, "cannot send traces to the collector: {why}");
                    *failing = Some(why);
                }
            }
        }
        sent
    }
}

/// Why an export could not be sent, and what to set when a certificate was refused. (The
/// exporter's own line says only "network error".)
fn failure(error: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        chain = format!("{chain}: {source}");
        next = source.source();
    }
    // TLS errors travel inside io::Errors (nested, even), whose source() skips them.
    let mut next = Some(error);
    let tls = std::iter::from_fn(|| {
        let e = next?;
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
        Some(e)
    })
    .find_map(|e| e.downcast_ref::<rustls::Error>());
    match tls {
        Some(e @ rustls::Error::InvalidCertificate(_)) => format!(
            "the collector's certificate is not trusted ({e}); name the CA that signed it in \
             {}",
            CERTIFICATE.general
        ),
        Some(e @ rustls::Error::AlertReceived(_)) => format!(
            "the collector ended the TLS handshake ({e}); if it asks for a client \
             certificate, set {} and {} to one it trusts",
            CLIENT_CERTIFICATE.general, CLIENT_KEY.general
        ),
        _ => chain,
    }
}

#[cfg(test)]
mod tests;
