//! The gRPC server metrics, recorded by one tower layer in front of every service (so calls the
//! edge sheds and calls a follower forwards count too), under go-grpc-middleware's names and
//! labels: started, handled by code, messages received and sent, handling time.
//!
//! A call's type and names come from the services' descriptors; a path no service has counts
//! under `unknown`, so that no client can grow the label sets. Messages are counted from the
//! gRPC framing of the bodies (a flag byte and a length before each message); the code from
//! `grpc-status` in the trailers, or in the headers of an answer without a body. A call whose
//! answer the client dropped before its end counts as `Canceled`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame, SizeHint};
use prometheus::{Histogram, IntCounter};
use prost::Message;
use tonic::codegen::http;
use tower::{Layer, Service};

use crate::metrics::Metrics;

/// The names go-grpc-middleware gives the codes, by number.
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// One method's labels and its metrics with those labels, resolved once.
struct Method {
    labels: [String; 3],
    started: IntCounter,
    received: IntCounter,
    sent: IntCounter,
    handling: Histogram,
}

impl Method {
    fn new(metrics: &Metrics, labels: [String; 3]) -> Method {
        let l = [labels[0].as_str(), labels[1].as_str(), labels[2].as_str()];
        Method {
            started: metrics.grpc_started.with_label_values(&l),
            received: metrics.grpc_received.with_label_values(&l),
            sent: metrics.grpc_sent.with_label_values(&l),
            handling: metrics.grpc_handling.with_label_values(&l),
            labels,
        }
    }

    /// Counts the call as handled with `code`, `started` ago.
    fn handled(&self, metrics: &Metrics, code: &str, started: Instant) {
        let [kind, service, method] = &self.labels;
        metrics
            .grpc_handled
            .with_label_values(&[kind.as_str(), service.as_str(), method.as_str(), code])
            .inc();
        self.handling.observe(started.elapsed().as_secs_f64());
    }
}

/// The layer; built once per server from the descriptors of the services it serves.
#[derive(Clone)]
pub struct MeteredLayer {
    metrics: Arc<Metrics>,
    methods: Arc<HashMap<String, Arc<Method>>>,
    unknown: Arc<Method>,
    /// False when nobody scrapes the metrics: nothing is recorded, at no cost.
    recording: bool,
}

impl MeteredLayer {
    /// Knows every method of the services in `descriptor_sets` (encoded
    /// `FileDescriptorSet`s), and the reflection services.
    pub fn new(metrics: Arc<Metrics>, descriptor_sets: &[&[u8]]) -> MeteredLayer {
        let mut methods = HashMap::new();
        for set in descriptor_sets {
            let Ok(set) = prost_types::FileDescriptorSet::decode(*set) else {
                continue;
            };
            for file in &set.file {
                for service in &file.service {
                    let full = format!("{}.{}", file.package(), service.name());
                    for method in &service.method {
                        let kind = match (method.client_streaming(), method.server_streaming()) {
                            (false, false) => "unary",
                            (true, false) => "client_stream",
                            (false, true) => "server_stream",
                            (true, true) => "bidi_stream",
                        };
                        let labels = [kind.to_string(), full.clone(), method.name().to_string()];
                        methods.insert(
                            format!("/{full}/{}", method.name()),
                            Arc::new(Method::new(&metrics, labels)),
                        );
                    }
                }
            }
        }
        for service in [
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ] {
            let labels = [
                "bidi_stream".to_string(),
                service.to_string(),
                "ServerReflectionInfo".to_string(),
            ];
            methods.insert(
                format!("/{service}/ServerReflectionInfo"),
                Arc::new(Method::new(&metrics, labels)),
            );
        }
        let unknown = ["unknown", "unknown", "unknown"].map(str::to_string);
        MeteredLayer {
            unknown: Arc::new(Method::new(&metrics, unknown)),
            metrics,
            methods: Arc::new(methods),
            recording: true,
        }
    }

    /// The same layer recording nothing (no metrics listener).
    pub fn off(mut self) -> MeteredLayer {
        self.recording = false;
        self
    }
}

impl<S> Layer<S> for MeteredLayer {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metered {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Metered<S> {
    inner: S,
    layer: MeteredLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Metered<S>
where
    S: Service<http::Request<Counted<ReqBody>>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    ResBody: Body<Data = bytes::Bytes> + Send + Unpin + 'static,
{
    type Response = http::Response<Finished<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        if !self.layer.recording {
            let call = self.inner.call(request.map(Counted::idle));
            return Box::pin(async move { Ok(call.await?.map(Finished::idle)) });
        }
        let method = self
            .layer
            .methods
            .get(request.uri().path())
            .unwrap_or(&self.layer.unknown)
            .clone();
        method.started.inc();
        let started = Instant::now();
        let received = method.received.clone();
        let request = request.map(|body| Counted {
            body,
            frames: Frames::default(),
            counter: Some(received),
        });
        let call = self.inner.call(request);
        let metrics = self.layer.metrics.clone();
        Box::pin(async move {
            let response = call.await?;
            // An answer without a body carries its code in its headers.
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            let end = End {
                metrics,
                method,
                started,
            };
            let pending = match code {
                Some(code) => {
                    end.record(code);
                    None
                }
                None => Some(end),
            };
            Ok(response.map(|body| Finished {
                body,
                frames: Frames::default(),
                end: pending,
            }))
        })
    }
}

/// What is recorded when a call ends.
struct End {
    metrics: Arc<Metrics>,
    method: Arc<Method>,
    started: Instant,
}

impl End {
    fn record(&self, code: usize) {
        let name = CODES.get(code).copied().unwrap_or("Unknown");
        self.method.handled(&self.metrics, name, self.started);
    }
}

/// Counts gRPC messages in a stream of bytes: each is a flag byte, a four-byte big-endian
/// length, and that many bytes.
#[derive(Default)]
struct Frames {
    /// Bytes of the current message's prefix read so far.
    prefix: [u8; 5],
    have: usize,
    /// Bytes of the current message's payload still to come.
    left: usize,
}

impl Frames {
    /// Reads `data`; returns how many messages began in it.
    fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut began = 0;
        while !data.is_empty() {
            if self.left > 0 {
                let skip = self.left.min(data.len());
                self.left -= skip;
                data = &data[skip..];
                continue;
            }
            let take = (5 - self.have).min(data.len());
            self.prefix[self.have..self.have + take].copy_from_slice(&data[..take]);
            self.have += take;
            data = &data[take..];
            if self.have == 5 {
                began += 1;
                self.have = 0;
                let length = [
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ];
                self.left = u32::from_be_bytes(length) as usize;
            }
        }
        began
    }
}

/// A request body whose messages are counted as they are read.
pub struct Counted<B> {
    body: B,
    frames: Frames,
    /// `None`: nothing is counted.
    counter: Option<IntCounter>,
}

impl<B> Counted<B> {
    fn idle(body: B) -> Self {
        Counted {
            body,
            frames: Frames::default(),
            counter: None,
        }
    }
}

impl<B: Body<Data = bytes::Bytes> + Unpin> Body for Counted<B> {
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(_)) = (&polled, &self.counter) {
            if let Some(data) = frame.data_ref() {
                let began = self.frames.feed(data);
                if let Some(counter) = &self.counter {
                    counter.inc_by(began);
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A response body whose messages are counted as they leave, and whose trailers (or drop)
/// end the call's record.
pub struct Finished<B> {
    body: B,
    frames: Frames,
    /// `None` once recorded (or when nothing is).
    end: Option<End>,
}

impl<B> Finished<B> {
    fn idle(body: B) -> Self {
        Finished {
            body,
            frames: Frames::default(),
            end: None,
        }
    }
}

impl<B: Body<Data = bytes::Bytes> + Unpin> Body for Finished<B> {
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if self.end.is_none() {
            return polled;
        }
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let began = self.frames.feed(data);
                    if let Some(end) = &self.end {
                        end.method.sent.inc_by(began);
                    }
                }
                if let Some(trailers) = frame.trailers_ref() {
                    let code = trailers
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(2);
                    if let Some(end) = self.end.take() {
                        end.record(code);
                    }
                }
            }
            // Ended without trailers: no code was given.
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                if let Some(end) = self.end.take() {
                    end.record(2);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B> Drop for Finished<B> {
    fn drop(&mut self) {
        // The client went away before the answer ended.
        if let Some(end) = self.end.take() {
            end.record(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_counted_across_any_split_of_the_bytes() {
        let mut stream = Vec::new();
        for length in [0u32, 3, 70_000, 1] {
            stream.push(0);
            stream.extend_from_slice(&length.to_be_bytes());
            stream.extend(std::iter::repeat_n(7u8, length as usize));
        }
        for split in [1, 2, 5, 6, 1000, stream.len()] {
            let mut frames = Frames::default();
            let counted: u64 = stream.chunks(split).map(|chunk| frames.feed(chunk)).sum();
            assert_eq!(counted, 4, "split every {split} bytes");
        }
    }
}
