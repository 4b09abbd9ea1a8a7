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
        if request.uri().path().starts_with(HEALTH) {
            let path = request.uri().path().to_string();
            let call = self.inner.call(request);
            return Box::pin(async move {
                let response = call.await;
                tracing::debug!(method = %path, "call");
                response
            });
        }
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let path = request.uri().path().to_string();
                let started = std::time::Instant::now();
                let call = self.inner.call(request);
                Box::pin(async move {
                    let response = call.await;
                    drop(permit);
                    let response = response.map(oversized_is_resource_exhausted);
                    if let Ok(response) = &response {
                        // One line per call, at debug: the method, the outcome, the time.
                        // Never metadata: that is where keys travel.
                        let code = tonic::Status::from_header_map(response.headers())
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
                    response
                })
            }
            Err(_) => {
                tracing::debug!(path = request.uri().path(), "call shed");
                let refused = status::overloaded(&format!(
                    "the server is at its limit of {} calls in flight; retry with backoff",
                    self.limit
                ));
                Box::pin(async move { Ok(refused.into_http()) })
            }
        }
    }
}

/// Rewrites tonic's OUT_OF_RANGE for a request over the decoding limit.
fn oversized_is_resource_exhausted<B: Default>(response: http::Response<B>) -> http::Response<B> {
    let Some(status) = tonic::Status::from_header_map(response.headers()) else {
        return response;
    };
    if status.code() != tonic::Code::OutOfRange
        || !status.message().contains("message length too large")
    {
        return response;
    }
    status::too_large(status.message()).into_http()
}
