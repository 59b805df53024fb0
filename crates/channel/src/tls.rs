//! TLS to PostgreSQL for the socket adapter, as the database URL asks and as
//! libpq (and sqlx, which the store uses) read it:
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (default) | if the server offers it | not checked |
//! | `require` | always | not checked (checked against `sslrootcert` if given, as libpq does) |
//! | `verify-ca` | always | signed by `sslrootcert` (required) |
//! | `verify-full` | always | that, and issued for the host in the URL; `sslrootcert=system` trusts the public web PKI |
//!
//! `PGSSLMODE` and `PGSSLROOTCERT` apply when the URL does not say.
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

/// How much of the server's certificate to check, against which roots.
enum Check<'a> {
    Nothing,
    Chain(Roots<'a>),
    ChainAndName(Roots<'a>),
}

/// Where the trusted roots come from.
enum Roots<'a> {
    /// A PEM file (`sslrootcert=PATH`).
    File(&'a str),
    /// The public web PKI (`sslrootcert=system`, with `verify-full` only).
    System,
}

/// The connection settings and TLS connector a database URL asks for.
/// `PGSSLMODE` and `PGSSLROOTCERT` apply when the URL does not say (as for
/// libpq and sqlx, which the store uses).
pub fn pg_config(url: &str) -> Result<(Config, PgTls), String> {
    pg_config_with(url, |name| std::env::var(name).ok())
}

fn pg_config_with(
    url: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(Config, PgTls), String> {
    let bad = |e: &dyn std::fmt::Display| format!("database URL: {e}");
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut mode = None;
    let mut root_cert = None;
    // The other parameters pass on untouched (re-encoding would turn
    // spaces into `+`, which tokio-postgres reads literally).
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let decoded = url::form_urlencoded::parse(pair.as_bytes()).next();
        match decoded {
            Some((key, value)) if key == "sslmode" => mode = Some(value.into_owned()),
            Some((key, value)) if key == "sslrootcert" => root_cert = Some(value.into_owned()),
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let mut config = Config::from_str(&url).map_err(|e| bad(&e))?;
    let mode = mode
        .or_else(|| env("PGSSLMODE"))
        .unwrap_or_else(|| "prefer".into());
    let root_cert = root_cert.or_else(|| env("PGSSLROOTCERT"));
    let roots = match root_cert.as_deref() {
        None => None,
        Some("system") if mode != "verify-full" => {
            return Err(bad(&"sslrootcert=system needs sslmode=verify-full"));
        }
        Some("system") => Some(Roots::System),
        Some(path) => Some(Roots::File(path)),
    };
    let (ssl, check) = match (mode.as_str(), roots) {
        ("disable", _) => (SslMode::Disable, Check::Nothing),
        ("allow" | "prefer", _) => (SslMode::Prefer, Check::Nothing),
        ("require", None) => (SslMode::Require, Check::Nothing),
        ("require" | "verify-ca", Some(roots)) => (SslMode::Require, Check::Chain(roots)),
        ("verify-full", Some(roots)) => (SslMode::Require, Check::ChainAndName(roots)),
        ("verify-ca" | "verify-full", None) => {
            return Err(bad(&format!(
                "sslmode={mode} needs sslrootcert (the CA's PEM file, or `system` with verify-full)"
            )));
        }
        (other, _) => return Err(bad(&format!("unknown sslmode `{other}`"))),
    };
    config.ssl_mode(ssl);
    let tls = rustls_config(check)?;
    Ok((config, tokio_postgres_rustls::MakeRustlsConnect::new(tls)))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn rustls_config(check: Check<'_>) -> Result<rustls::ClientConfig, String> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let name_too = matches!(check, Check::ChainAndName(_));
    let verifier: Arc<dyn ServerCertVerifier> = match check {
        Check::Nothing => Arc::new(Unchecked(provider)),
        Check::Chain(roots) | Check::ChainAndName(roots) => {
            let mut store = RootCertStore::empty();
            match roots {
                Roots::File(path) => {
                    let certs = CertificateDer::pem_file_iter(path)
                        .map_err(|e| format!("sslrootcert {path}: {e}"))?;
                    for cert in certs {
                        let cert = cert.map_err(|e| format!("sslrootcert {path}: {e}"))?;
                        store
                            .add(cert)
                            .map_err(|e| format!("sslrootcert {path}: {e}"))?;
                    }
                }
                Roots::System => {
                    store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                }
            }
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
                .build()
                .map_err(|e| format!("TLS: {e}"))?;
            if name_too {
                webpki
            } else {
                Arc::new(ChainOnly(webpki))
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
        let none = |_: &str| None;
        let (config, _) = pg_config_with(
            "postgres://u@db.example:5433/app?sslmode=require&application_name=x&options=-c%20statement_timeout%3D5s",
            none,
        )
        .expect("valid");
        assert_eq!(config.get_ssl_mode(), SslMode::Require);
        assert_eq!(config.get_application_name(), Some("x"));
        assert_eq!(
            config.get_options(),
            Some("-c statement_timeout=5s"),
            "not re-encoded"
        );
        let (config, _) = pg_config_with("postgres://u@db.example/app", none).expect("valid");
        assert_eq!(config.get_ssl_mode(), SslMode::Prefer, "libpq's default");
        let (config, _) =
            pg_config_with("postgres://u@db.example/app?sslmode=disable", none).expect("valid");
        assert_eq!(config.get_ssl_mode(), SslMode::Disable);
        let (config, _) = pg_config_with(
            "postgres://u@db.example/app?sslmode=verify-full&sslrootcert=system",
            none,
        )
        .expect("valid");
        assert_eq!(config.get_ssl_mode(), SslMode::Require);
        let err = |url: &str| pg_config_with(url, none).err().unwrap_or_default();
        assert!(err("postgres://u@db/app?sslmode=sometimes").contains("unknown sslmode"));
        assert!(
            err("postgres://u@db/app?sslmode=verify-ca&sslrootcert=/nonexistent.pem")
                .contains("sslrootcert /nonexistent.pem")
        );
    }

    /// verify-* without a root is refused: a public CA vouches for names,
    /// and verify-ca does not compare names, so "any public certificate"
    /// would pass.
    #[test]
    fn verification_needs_a_root() {
        let none = |_: &str| None;
        let err = |url: &str| pg_config_with(url, none).err().unwrap_or_default();
        assert!(err("postgres://u@db/app?sslmode=verify-ca").contains("needs sslrootcert"));
        assert!(err("postgres://u@db/app?sslmode=verify-full").contains("needs sslrootcert"));
        assert!(
            err("postgres://u@db/app?sslmode=verify-ca&sslrootcert=system")
                .contains("needs sslmode=verify-full")
        );
        assert!(
            err("postgres://u@db/app?sslmode=require&sslrootcert=system")
                .contains("needs sslmode=verify-full")
        );
    }

    #[test]
    fn the_environment_applies_when_the_url_is_silent() {
        let env = |name: &str| match name {
            "PGSSLMODE" => Some("require".to_string()),
            _ => None,
        };
        let (config, _) = pg_config_with("postgres://u@db/app", env).expect("valid");
        assert_eq!(config.get_ssl_mode(), SslMode::Require);
        let (config, _) =
            pg_config_with("postgres://u@db/app?sslmode=disable", env).expect("valid");
        assert_eq!(config.get_ssl_mode(), SslMode::Disable, "the URL wins");
        let strict = |name: &str| (name == "PGSSLMODE").then(|| "verify-full".to_string());
        assert!(pg_config_with("postgres://u@db/app", strict).is_err());
    }
}
