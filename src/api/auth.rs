//! The API-key interceptor. Tonic interceptors cannot see the method path, so one is attached
//! per service with the permission that service needs; it puts the authenticated [`Client`]
//! into the request's extensions for handlers (reviewer identity, audit).

use std::sync::{Arc, RwLock};

use tonic::service::Interceptor;
use tonic::{Request, Status};

use super::observed::Caller;
use super::status;
use crate::clock::now_ms;
use crate::keys::{AuthError, Client, KeyRing};

#[derive(Clone)]
pub struct ApiKeyCheck {
    keys: Arc<RwLock<KeyRing>>,
    permission: &'static str,
    service: &'static str,
}

impl ApiKeyCheck {
    pub fn new(
        keys: Arc<RwLock<KeyRing>>,
        permission: &'static str,
        service: &'static str,
    ) -> Self {
        ApiKeyCheck {
            keys,
            permission,
            service,
        }
    }
}

/// The key from `x-api-key`, or from `authorization: Bearer`.
fn presented_key<T>(request: &Request<T>) -> Result<String, AuthError> {
    let metadata = request.metadata();
    key_in(|name| metadata.get(name).map(|v| v.as_bytes()))
}

/// The key a request's headers present, read as [`ApiKeyCheck`] reads it; `header` gives the
/// value of a header by name.
pub(super) fn key_in<'a>(header: impl Fn(&str) -> Option<&'a [u8]>) -> Result<String, AuthError> {
    let text = |value: &'a [u8]| std::str::from_utf8(value).map_err(|_| AuthError::Malformed);
    if let Some(value) = header("x-api-key") {
        return text(value).map(str::to_string);
    }
    if let Some(value) = header("authorization") {
        let (scheme, token) = text(value)?
            .trim()
            .split_once(' ')
            .ok_or(AuthError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Malformed);
        }
        return Ok(token.trim().to_string());
    }
    Err(AuthError::Missing)
}

impl Interceptor for ApiKeyCheck {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let client = presented_key(&request).and_then(|key| {
            self.keys
                .read()
                .expect("key ring poisoned")
                .authenticate(&key, now_ms())
        });
        let client: Client =
            match client {
                Ok(c) => c,
                Err(AuthError::Missing) => {
                    return Err(status::unauthenticated(
                        "missing API key: send it as x-api-key or authorization: Bearer metadata",
                    ))
                }
                Err(AuthError::Malformed) => return Err(status::unauthenticated(
                    "malformed API key metadata: use x-api-key: KEY or authorization: Bearer KEY",
                )),
                Err(AuthError::Unknown) => {
                    return Err(status::unauthenticated("unknown or revoked API key"))
                }
            };
        // Before the permission check: a refused call's access line names who was refused.
        if let Some(caller) = request.extensions().get::<Caller>() {
            caller.identified(&client.client_id);
        }
        if !client.has(self.permission) {
            tracing::debug!(client = %client.client_id, service = self.service, "permission denied");
            return Err(status::permission_denied(format!(
                "client {} lacks the {} permission that {} needs",
                client.client_id, self.permission, self.service
            )));
        }
        tracing::debug!(client = %client.client_id, service = self.service, "authenticated");
        request.extensions_mut().insert(client);
        Ok(request)
    }
}

/// The caller the interceptor authenticated.
pub fn client<T>(request: &Request<T>) -> Result<Client, Status> {
    request
        .extensions()
        .get::<Client>()
        .cloned()
        .ok_or_else(|| status::unauthenticated("missing API key"))
}
