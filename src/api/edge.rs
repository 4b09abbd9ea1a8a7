//! The edge of every call, in front of every service:
//!
//! - load shedding across every connection: at most `limit` calls in flight at once, the next
//!   one answered RESOURCE_EXHAUSTED at once instead of queueing without bound. Health checks
//!   are never shed, so probes keep telling the truth under load. A streaming call counts
//!   until its response starts, like a unary call until it returns;
//! - an oversized request gets the code the gRPC ecosystem uses for it, RESOURCE_EXHAUSTED
//!   (tonic's decoder says OUT_OF_RANGE, which this API keeps for a watch resumed before what
//!   retention kept);
//! - one log line per call at debug level: method, code, time, never metadata.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Semaphore;
use tonic::codegen::http;
use tower::{Layer, Service};

use super::status;

/// Paths never shed.
const HEALTH: &str = "/grpc.health.v1.Health/";

#[derive(Clone)]
pub struct EdgeLayer {
    permits: Arc<Semaphore>,
    limit: usize,
}

impl EdgeLayer {
    pub fn new(limit: usize) -> Self {
        EdgeLayer {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            permits: self.permits.clone(),
            limit: self.limit,
        }
    }
}

#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    permits: Arc<Semaphore>,
    limit: usize,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Edge<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        // The method, for the debug line: copied only when that line is written.
        let path =
            tracing::enabled!(tracing::Level::DEBUG).then(|| request.uri().path().to_owned());
        if request.uri().path().starts_with(HEALTH) {
            let call = self.inner.call(request);
            return Box::pin(async move {
                let response = call.await;
                if let Some(path) = path {
                    tracing::debug!(method = %path, "call");
                }
                response
            });
        }
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let started = std::time::Instant::now();
                let call = self.inner.call(request);
                Box::pin(async move {
                    let response = call.await;
                    drop(permit);
                    response.map(|response| finish(response, path, started))
                })
            }
            Err(_) => {
                if let Some(path) = path {
                    tracing::debug!(method = %path, "call shed");
                }
                let refused = status::overloaded(&format!(
                    "the server is at its limit of {} calls in flight; retry with backoff",
                    self.limit
                ));
                Box::pin(async move { Ok(refused.into_http()) })
            }
        }
    }
}

/// Reads the status a response carries in its headers once: to give an oversized request
/// RESOURCE_EXHAUSTED, and for the call's debug line (method, code, time; never metadata:
/// that is where keys travel).
fn finish<B: Default>(
    response: http::Response<B>,
    path: Option<String>,
    started: std::time::Instant,
) -> http::Response<B> {
    let status = tonic::Status::from_header_map(response.headers());
    if let Some(path) = path {
        let code = status
            .as_ref()
            .map_or("OK (or streaming)".to_string(), |s| {
                format!("{:?}", s.code())
            });
        tracing::debug!(
            method = %path,
            code = %code,
            ms = started.elapsed().as_millis() as u64,
            "call"
        );
    }
    match status {
        Some(status) => oversized_is_resource_exhausted(response, status),
        None => response,
    }
}

/// Rewrites tonic's OUT_OF_RANGE for a request over the decoding limit.
fn oversized_is_resource_exhausted<B: Default>(
    response: http::Response<B>,
    status: tonic::Status,
) -> http::Response<B> {
    if status.code() != tonic::Code::OutOfRange
        || !status.message().contains("message length too large")
    {
        return response;
    }
    status::too_large(status.message()).into_http()
}
