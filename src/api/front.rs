//! The front door of the gRPC port: what arrives goes where its content type says.
//!
//! - gRPC (`application/grpc`, `application/grpc+proto`) goes on to the services untouched;
//! - gRPC-Web (`application/grpc-web...`, what browsers can send) is translated to gRPC by
//!   tonic-web on the way in and back on the way out, and reaches the same services, the same
//!   key checks and the same limits;
//! - anything else is a browser asking for the web console, answered from the files built into
//!   the binary (`console/dist/`, built from `console/src/`).
//!
//! The pages hold no secret and need no key: the console asks for the key in the page and
//! sends it with each gRPC-Web call, where the services check it as for any client. They are
//! sent with a content security policy that lets them load only themselves and call only their
//! own origin.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tonic::codegen::http;
use tonic_web::{GrpcWebLayer, GrpcWebService};
use tower::{Layer, Service};

/// One file of the console: its path, type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// The page every route of the console starts from.
const INDEX: &[u8] = include_bytes!("../../console/dist/index.html");

const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        bytes: INDEX,
    },
    Asset {
        path: "/index.html",
        content_type: "text/html; charset=utf-8",
        bytes: INDEX,
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../console/dist/app.js"),
    },
    Asset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../console/dist/style.css"),
    },
];

/// The pages may load only themselves and call only their own origin (gRPC-Web).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// CORS for browsers' cross-origin calls, and only for them: a request without an `Origin`
/// passes as it is. (tower-http answers every OPTIONS as a preflight, with an empty 200; an
/// OPTIONS that is no preflight gets what any method the pages do not take gets, 405.)
#[derive(Clone)]
pub struct CrossOriginLayer(pub tower_http::cors::CorsLayer);

impl<S: Clone> Layer<S> for CrossOriginLayer {
    type Service = CrossOrigin<S>;

    fn layer(&self, inner: S) -> CrossOrigin<S> {
        CrossOrigin {
            cors: self.0.layer(inner.clone()),
            plain: inner,
        }
    }
}

#[derive(Clone)]
pub struct CrossOrigin<S> {
    cors: tower_http::cors::Cors<S>,
    plain: S,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for CrossOrigin<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Both wrap the same services: one readiness for both.
        self.plain.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        if request.headers().contains_key(http::header::ORIGIN) {
            Box::pin(self.cors.call(request))
        } else {
            Box::pin(self.plain.call(request))
        }
    }
}

#[derive(Clone, Copy, Default)]
pub struct FrontLayer;

impl<S: Clone> Layer<S> for FrontLayer {
    type Service = Front<S>;

    fn layer(&self, inner: S) -> Front<S> {
        Front {
            web: GrpcWebLayer::new().layer(inner.clone()),
            grpc: inner,
        }
    }
}

#[derive(Clone)]
pub struct Front<S> {
    grpc: S,
    /// The same services behind the gRPC-Web translation.
    web: GrpcWebService<S>,
}

/// Where a request goes, by its content type.
enum Door {
    Grpc,
    Web,
    Page,
}

fn door<B>(request: &http::Request<B>) -> Door {
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("application/grpc-web") {
        Door::Web
    } else if content_type.starts_with("application/grpc") {
        Door::Grpc
    } else {
        Door::Page
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Front<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>
        + Service<http::Request<tonic::body::Body>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    <S as Service<http::Request<ReqBody>>>::Future: Send + 'static,
    <S as Service<http::Request<tonic::body::Body>>>::Future: Send + 'static,
    <S as Service<http::Request<ReqBody>>>::Error: Send + 'static,
    ReqBody: Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<tonic::codegen::StdError> + std::fmt::Display,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<tonic::codegen::StdError> + std::fmt::Display,
    S: Service<
        http::Request<tonic::body::Body>,
        Error = <S as Service<http::Request<ReqBody>>>::Error,
    >,
{
    type Response = http::Response<Served<ResBody>>;
    type Error = <S as Service<http::Request<ReqBody>>>::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<http::Request<ReqBody>>::poll_ready(&mut self.grpc, cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        match door(&request) {
            Door::Grpc => {
                let call = Service::<http::Request<ReqBody>>::call(&mut self.grpc, request);
                Box::pin(async move { Ok(call.await?.map(Served::Desk)) })
            }
            Door::Web => {
                // Its own readiness: the translation wraps a clone of the services.
                let mut web = self.web.clone();
                Box::pin(async move {
                    std::future::poll_fn(|cx| {
                        Service::<http::Request<ReqBody>>::poll_ready(&mut web, cx)
                    })
                    .await?;
                    Ok(web.call(request).await?.map(Served::Web))
                })
            }
            Door::Page => {
                let page = page(&request);
                Box::pin(async move { Ok(page) })
            }
        }
    }
}

/// A browser's request: the asset at its path, or 404; only GET and HEAD.
fn page<B, D>(request: &http::Request<B>) -> http::Response<Served<D>> {
    let (status, content_type, bytes): (_, _, &'static [u8]) = match request.method() {
        &http::Method::GET | &http::Method::HEAD => {
            match ASSETS.iter().find(|a| a.path == request.uri().path()) {
                Some(asset) => (http::StatusCode::OK, asset.content_type, asset.bytes),
                None => (
                    http::StatusCode::NOT_FOUND,
                    "text/plain; charset=utf-8",
                    b"not found: the console is at /, gRPC clients send application/grpc\n",
                ),
            }
        }
        _ => (
            http::StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            b"the console's pages are read with GET\n",
        ),
    };
    let body = match request.method() {
        &http::Method::HEAD => None,
        _ => Some(Bytes::from_static(bytes)),
    };
    let mut response = http::Response::new(Served::Page(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let set = |headers: &mut http::HeaderMap, name: http::HeaderName, value: &'static str| {
        headers.insert(name, http::HeaderValue::from_static(value));
    };
    set(headers, http::header::CONTENT_TYPE, content_type);
    // Always revalidated: a new binary serves a new console at once.
    set(headers, http::header::CACHE_CONTROL, "no-cache");
    set(
        headers,
        http::header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, http::header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, http::header::REFERRER_POLICY, "no-referrer");
    set(headers, http::header::X_FRAME_OPTIONS, "DENY");
    response
}

/// A response body: the services' answer, translated to gRPC-Web or not, or a console page.
pub enum Served<B> {
    Desk(B),
    Web(tonic::body::Body),
    Page(Option<Bytes>),
}

impl<B> Default for Served<B> {
    fn default() -> Self {
        Served::Page(None)
    }
}

impl<B> Body for Served<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Data = Bytes;
    type Error = tonic::codegen::StdError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Served::Desk(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|f| f.map(|f| f.map_err(Into::into))),
            Served::Web(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|f| f.map(|f| f.map_err(Into::into))),
            Served::Page(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Served::Desk(body) => body.is_end_stream(),
            Served::Web(body) => body.is_end_stream(),
            Served::Page(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Served::Desk(body) => body.size_hint(),
            Served::Web(body) => body.size_hint(),
            Served::Page(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}
