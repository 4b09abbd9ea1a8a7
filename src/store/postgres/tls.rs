//! TLS to the database, with rustls and its ring provider: the server's certificate checked as
//! far as the URL's `sslmode` and `sslrootcert` ask ([`Check`]), a client certificate presented
//! when `sslcert` and `sslkey` name one, and a failed handshake told as a sentence naming the
//! setting that refused what ([`refusal`]).

use std::error::Error;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, WebPkiServerVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::super::StoreError;
use super::connect::{read_at_most, Check, Roots, TlsSettings};

/// Bytes of a certificate or key file read, at most: the system's whole bundle is a few
/// hundred KiB, and a path to something endless must not hold the start.
const PEM_FILE_BYTES: u64 = 4 << 20;

/// The connector for `settings`, reading the files they name.
pub(super) fn connector(settings: &TlsSettings) -> Result<MakeRustlsConnect, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let verifier: Arc<dyn ServerCertVerifier> = match settings.check() {
        Check::Nothing => Arc::new(AnyName {
            roots: None,
            algorithms,
        }),
        Check::Chain => Arc::new(AnyName {
            roots: Some(Arc::new(roots(settings)?)),
            algorithms,
        }),
        Check::ChainAndName => WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots(settings)?),
            provider.clone(),
        )
        .build()
        .map_err(|e| {
            StoreError::Settings(format!("cannot check the database's certificate: {e}"))
        })?,
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Settings(format!("cannot set up TLS to the database: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &settings.client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(certificates(cert, "sslcert")?, private_key(key)?)
            .map_err(|e| {
                StoreError::Settings(format!(
                    "sslcert {} and sslkey {} do not make a client certificate: {e}",
                    cert.display(),
                    key.display()
                ))
            })?,
    };
    config.enable_sni = settings.sni;
    // As libpq 17 does: a server that takes TLS first (sslnegotiation=direct) insists on it,
    // and older servers ignore it.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(MakeRustlsConnect::new(config))
}

/// The authorities the server's certificate must chain to.
fn roots(settings: &TlsSettings) -> Result<RootCertStore, StoreError> {
    let mut store = RootCertStore::empty();
    match &settings.roots {
        Some(Roots::File(path)) => {
            let (added, _) = store.add_parsable_certificates(certificates(path, "sslrootcert")?);
            if added == 0 {
                return Err(StoreError::Settings(format!(
                    "sslrootcert {} holds no certificate usable as an authority",
                    path.display()
                )));
            }
        }
        Some(Roots::System) | None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let errors: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                return Err(StoreError::Settings(format!(
                    "{} trusts the certificate authorities of the system, and none were found \
                     ({}); install them (Debian's ca-certificates) or name the database's \
                     authority with sslrootcert=PATH",
                    settings.describe(),
                    if errors.is_empty() {
                        "no error".to_string()
                    } else {
                        errors.join("; ")
                    }
                )));
            }
        }
    }
    Ok(store)
}

/// The PEM certificates in the file `parameter` names.
fn certificates(path: &Path, parameter: &str) -> Result<Vec<CertificateDer<'static>>, StoreError> {
    let bytes = read_pem(path, parameter)?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            StoreError::Settings(format!("{parameter} {} is not PEM: {e}", path.display()))
        })?;
    if certificates.is_empty() {
        return Err(StoreError::Settings(format!(
            "{parameter} {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certificates)
}

/// The PEM private key in the file `sslkey` names.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, StoreError> {
    let bytes = read_pem(path, "sslkey")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        StoreError::Settings(format!(
            "sslkey {} holds no PEM private key: {e}",
            path.display()
        ))
    })
}

fn read_pem(path: &Path, parameter: &str) -> Result<Vec<u8>, StoreError> {
    read_at_most(path, PEM_FILE_BYTES).map_err(|e| {
        StoreError::Settings(format!("cannot read {parameter} {}: {e}", path.display()))
    })
}

/// Takes a certificate for any host name: from anyone when `roots` is `None` (`prefer` and
/// `require` without `sslrootcert`), else one that chains to `roots` (`verify-ca`, and the
/// others with `sslrootcert`). Either way the server must prove it holds the certificate's key.
#[derive(Debug)]
struct AnyName {
    roots: Option<Arc<RootCertStore>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            verify_server_cert_signed_by_trust_anchor(
                &ParsedCertificate::try_from(end_entity)?,
                roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Why a connection failed, as a sentence naming the setting, when TLS failed it; `None` for
/// every other failure.
pub(super) fn refusal(err: &postgres::Error, settings: &TlsSettings) -> Option<String> {
    let mut next: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(err) = next {
        if let Some(tls) = rustls_error(err) {
            return Some(explain(tls, settings));
        }
        // The `postgres` crate's own words, which it offers no other way to tell apart.
        match err.to_string().as_str() {
            "server does not support TLS" => {
                return Some(format!(
                    "the database server does not offer TLS, which {} requires; turn TLS on in \
                     the server (ssl = on) or lower sslmode",
                    settings.describe()
                ))
            }
            "no hostname provided for TLS handshake" => {
                return Some(format!(
                    "the database URL names an address (hostaddr) but no host name, which {} \
                     needs for TLS; add host=NAME",
                    settings.describe()
                ))
            }
            _ => {}
        }
        next = err.source();
    }
    None
}

/// rustls's error in `err`, itself or wrapped in the I/O error the handshake failed with.
fn rustls_error<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a rustls::Error> {
    err.downcast_ref::<rustls::Error>().or_else(|| {
        err.downcast_ref::<std::io::Error>()?
            .get_ref()?
            .downcast_ref::<rustls::Error>()
    })
}

fn explain(err: &rustls::Error, settings: &TlsSettings) -> String {
    let how = settings.describe();
    let trusted = match &settings.roots {
        Some(Roots::File(path)) => format!("the authority in sslrootcert {}", path.display()),
        Some(Roots::System) | None => "an authority the system trusts".to_string(),
    };
    match err {
        rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected,
            presented,
        }) => format!(
            "the database's certificate is not valid for {} ({how}); it names {}",
            expected.to_str(),
            presented
                .iter()
                .map(|name| plain_name(name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        rustls::Error::InvalidCertificate(CertificateError::NotValidForName) => {
            format!("the database's certificate is not valid for the host the URL names ({how})")
        }
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            format!("the database's certificate is not signed by {trusted} ({how})")
        }
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => format!("the database's certificate has expired ({how})"),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        ) => format!("the database's certificate is not valid yet ({how})"),
        rustls::Error::InvalidCertificate(other) => {
            format!("the database's certificate is refused ({how}): {other}")
        }
        rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired) => format!(
            "the database server asks for a client certificate; name one with sslcert and \
             sslkey ({how})"
        ),
        other => format!("the TLS handshake with the database failed ({how}): {other}"),
    }
}

/// A name as rustls reports it (`DnsName("db.internal")`, `IpAddress(10.0.0.5)`), bare.
fn plain_name(name: &str) -> &str {
    name.strip_prefix("DnsName(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
        .or_else(|| {
            name.strip_prefix("IpAddress(")
                .and_then(|rest| rest.strip_suffix(')'))
        })
        .unwrap_or(name)
}
