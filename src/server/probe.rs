//! `servicedesk health`: asks a running server's `grpc.health.v1.Health/Check`, as a container's
//! health check or a script does, over plaintext or TLS.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// How to reach the server.
#[derive(Clone, Debug, Default)]
pub struct Probe {
    /// `http://host:port`, or `https://host:port` for TLS.
    pub address: String,
    /// The service to ask about; empty: the server as a whole.
    pub service: String,
    /// With TLS: the CA that signed the server's certificate (the system's roots otherwise).
    pub ca: Option<PathBuf>,
    /// With TLS: the name the certificate must carry, when not the address's host.
    pub domain: Option<String>,
    /// With TLS to a server that asks for client certificates: this one and its key.
    pub identity: Option<(PathBuf, PathBuf)>,
    pub timeout: Duration,
}

/// The status the server reports for the service, in the health protocol's words
/// (`SERVING`, `NOT_SERVING`, ...).
pub async fn probe(probe: &Probe) -> anyhow::Result<String> {
    let mut endpoint = Endpoint::from_shared(probe.address.clone())
        .with_context(|| format!("{:?} is not an address (http://host:port)", probe.address))?
        .connect_timeout(probe.timeout)
        .timeout(probe.timeout);
    if probe.address.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_enabled_roots();
        if let Some(ca) = &probe.ca {
            let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        if let Some(domain) = &probe.domain {
            tls = tls.domain_name(domain.clone());
        }
        if let Some((cert, key)) = &probe.identity {
            let read = |p: &PathBuf| {
                std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
            };
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        endpoint = endpoint.tls_config(tls).context("invalid TLS settings")?;
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach {}", probe.address))?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: probe.service.clone(),
        })
        .await
        .map_err(|status| anyhow::anyhow!("{}: {}", status.code(), status.message()))?;
    let status =
        ServingStatus::try_from(answer.into_inner().status).unwrap_or(ServingStatus::Unknown);
    Ok(status.as_str_name().to_string())
}
