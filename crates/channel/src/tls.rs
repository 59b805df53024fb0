//! TLS to PostgreSQL for the socket adapter, as the database URL asks and as
//! libpq (and sqlx, which the store uses) read it:
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (default) | if the server offers it | not checked |
//! | `require` | always | not checked (checked against `sslrootcert` if given, as libpq does) |
//! | `verify-ca` | always | signed by `sslrootcert` (or a public CA) |
//! | `verify-full` | always | that, and issued for the host in the URL |
//!
//! tokio-postgres knows only `disable`, `prefer` and `require` and no
//! `sslrootcert`, so both are taken out of the URL here and applied to the
//! rustls configuration.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use socketioxide_postgres::drivers::tokio_postgres::tokio_postgres_client as tokio_postgres;
use std::str::FromStr;
use std::sync::Arc;
use tokio_postgres::config::SslMode;
use tokio_postgres::Config;

/// The TLS connector the adapter's connection uses.
pub type PgTls = tokio_postgres_rustls::MakeRustlsConnect;

/// How much of the server's certificate to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

/// The connection settings and TLS connector a database URL asks for.
pub fn pg_config(url: &str) -> Result<(Config, PgTls), String> {
    let mut parsed = url::Url::parse(url).map_err(|e| format!("database URL: {e}"))?;
    let mut mode = "prefer".to_string();
    let mut root_cert = None;
    let mut rest = Vec::new();
    for (key, value) in parsed.query_pairs() {
        match &*key {
            "sslmode" => mode = value.into_owned(),
            "sslrootcert" => root_cert = Some(value.into_owned()),
            _ => rest.push((key.into_owned(), value.into_owned())),
        }
    }
    if rest.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(rest);
    }
    let mut config = Config::from_str(parsed.as_str()).map_err(|e| format!("database URL: {e}"))?;
    let (ssl, check) = match (mode.as_str(), root_cert.is_some()) {
        ("disable", _) => (SslMode::Disable, Check::Nothing),
        ("allow" | "prefer", _) => (SslMode::Prefer, Check::Nothing),
        ("require", false) => (SslMode::Require, Check::Nothing),
        ("require" | "verify-ca", _) => (SslMode::Require, Check::Chain),
        ("verify-full", _) => (SslMode::Require, Check::ChainAndName),
        (other, _) => return Err(format!("database URL: unknown sslmode `{other}`")),
    };
    config.ssl_mode(ssl);
    let tls = rustls_config(check, root_cert.as_deref())?;
    Ok((config, tokio_postgres_rustls::MakeRustlsConnect::new(tls)))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn rustls_config(check: Check, root_cert: Option<&str>) -> Result<rustls::ClientConfig, String> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = match check {
        Check::Nothing => Arc::new(Unchecked(provider)),
        Check::Chain | Check::ChainAndName => {
            let mut roots = RootCertStore::empty();
            match root_cert {
                Some(path) => {
                    let certs = CertificateDer::pem_file_iter(path)
                        .map_err(|e| format!("sslrootcert {path}: {e}"))?;
                    for cert in certs {
                        let cert = cert.map_err(|e| format!("sslrootcert {path}: {e}"))?;
                        roots
                            .add(cert)
                            .map_err(|e| format!("sslrootcert {path}: {e}"))?;
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("TLS: {e}"))?;
            if check == Check::Chain {
                Arc::new(ChainOnly(webpki))
            } else {
                webpki
            }
        }
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// `prefer` and `require` without a root certificate: encrypted, but any
/// certificate is accepted (libpq's behaviour, which managed databases with
/// private CAs rely on). The handshake's signatures are still checked.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name on the
/// certificate is not compared with the host.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_settings_leave_the_url_and_become_tls_settings() {
        let (config, _) =
            pg_config("postgres://u@db.example:5433/app?sslmode=require&application_name=x")
                .expect("valid");
        assert_eq!(config.get_ssl_mode(), SslMode::Require);
        assert_eq!(config.get_application_name(), Some("x"));
        let (config, _) = pg_config("postgres://u@db.example/app").expect("valid");
        assert_eq!(config.get_ssl_mode(), SslMode::Prefer, "libpq's default");
        let (config, _) = pg_config("postgres://u@db.example/app?sslmode=disable").expect("valid");
        assert_eq!(config.get_ssl_mode(), SslMode::Disable);
        let (config, _) =
            pg_config("postgres://u@db.example/app?sslmode=verify-full").expect("valid");
        assert_eq!(config.get_ssl_mode(), SslMode::Require);
        let err = pg_config("postgres://u@db.example/app?sslmode=sometimes").err();
        assert!(err.is_some_and(|e| e.contains("unknown sslmode")));
        let err =
            pg_config("postgres://u@db/app?sslmode=verify-ca&sslrootcert=/nonexistent.pem").err();
        assert!(err.is_some_and(|e| e.contains("sslrootcert /nonexistent.pem")));
    }
}
