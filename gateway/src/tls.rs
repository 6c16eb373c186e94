//! TLS termination: certificates chosen per SNI name (a tenant's `tls-cert` for its hosts,
//! else the global `tls-cert`), read from the current runtime so a reload can rotate them.

use std::sync::Arc;

use async_trait::async_trait;
use gatehouse_config::Config;
use gatehouse_policy::host::HostTable;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use pingora::tls::error::ErrorStack;
use pingora::tls::ext;
use pingora::tls::pkey::{PKey, Private};
use pingora::tls::ssl::NameType;
use pingora::tls::x509::X509;

/// A certificate chain and its key.
pub struct CertKey {
    leaf: X509,
    chain: Vec<X509>,
    key: PKey<Private>,
}

impl CertKey {
    fn load(cert: &std::path::Path, key: &std::path::Path) -> Result<CertKey, String> {
        let pem = std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
        let mut certs =
            X509::stack_from_pem(&pem).map_err(|e| format!("{}: {e}", cert.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "{}: no certificate in the PEM file",
                cert.display()
            ));
        }
        let leaf = certs.remove(0);
        let key_pem = std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?;
        let key =
            PKey::private_key_from_pem(&key_pem).map_err(|e| format!("{}: {e}", key.display()))?;
        let matches = leaf
            .public_key()
            .map(|public| public.public_eq(&key))
            .unwrap_or(false);
        if !matches {
            return Err(format!(
                "{}: the key does not match the certificate",
                cert.display()
            ));
        }
        Ok(CertKey {
            leaf,
            chain: certs,
            key,
        })
    }
}

/// Certificates by SNI host pattern, plus the default.
#[derive(Default)]
pub struct CertStore {
    default: Option<Arc<CertKey>>,
    by_host: Option<HostTable<Arc<CertKey>>>,
}

impl CertStore {
    /// Loads the global and per-tenant certificates named in `config`.
    pub fn load(config: &Config) -> Result<CertStore, String> {
        let default = match (&config.tls_cert, &config.tls_key) {
            (Some(c), Some(k)) => Some(Arc::new(CertKey::load(c, k)?)),
            _ => None,
        };
        let mut entries = Vec::new();
        for tenant in &config.tenants {
            if let (Some(c), Some(k)) = (&tenant.tls_cert, &tenant.tls_key) {
                let cert = Arc::new(
                    CertKey::load(c, k).map_err(|e| format!("tenant {}: {e}", tenant.name))?,
                );
                for host in &tenant.hosts {
                    entries.push((host.clone(), Arc::clone(&cert)));
                }
            }
        }
        let by_host = if entries.is_empty() {
            None
        } else {
            Some(HostTable::new(entries).map_err(|e| e.to_string())?)
        };
        Ok(CertStore { default, by_host })
    }

    fn find(&self, server_name: Option<&str>) -> Option<&Arc<CertKey>> {
        server_name
            .and_then(|name| self.by_host.as_ref().and_then(|t| t.lookup(name)))
            .or(self.default.as_ref())
    }

    /// Installs the certificate for `server_name` (the tenant's, else the default) on a
    /// handshake. `Ok(false)` when there is none.
    pub fn install(&self, server_name: Option<&str>, ssl: &mut TlsRef) -> Result<bool, ErrorStack> {
        let Some(cert) = self.find(server_name) else {
            return Ok(false);
        };
        ext::ssl_use_certificate(ssl, &cert.leaf)?;
        ext::ssl_use_private_key(ssl, &cert.key)?;
        for c in &cert.chain {
            ext::ssl_add_chain_cert(ssl, c)?;
        }
        Ok(true)
    }
}

/// The certificates in force; a reload replaces them, so each handshake asks again.
pub trait CurrentCertificates: Send + Sync {
    /// Installs the certificate for `server_name`; `Ok(false)` when there is none.
    fn install(&self, server_name: Option<&str>, ssl: &mut TlsRef) -> Result<bool, ErrorStack>;
}

/// The `TlsAccept` callbacks: picks the certificate for the client's SNI name.
pub struct SniCertificates<C>(pub C);

#[async_trait]
impl<C: CurrentCertificates> TlsAccept for SniCertificates<C> {
    async fn certificate_callback(&self, ssl: &mut TlsRef) {
        let name = ssl.servername(NameType::HOST_NAME).map(str::to_owned);
        match self.0.install(name.as_deref(), ssl) {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                sni = name.as_deref().unwrap_or("-"),
                "no certificate for this TLS handshake"
            ),
            Err(e) => tracing::warn!(error = %e, "failed to install the TLS certificate"),
        }
    }
}
