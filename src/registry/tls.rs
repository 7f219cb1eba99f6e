//! TLS settings for one registry host, following Docker's `certs.d` convention.
//!
//! `<certs-dir>/<host without port>/` may hold `*.crt` files (extra CA roots, added to the
//! system's) and `*.cert` + `*.key` pairs (a client identity for mTLS), as skopeo and Docker
//! read them. `skip-tls-verify` accepts any server certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::error::{Error, ErrorKind, Result};

/// TLS with the system's certificate roots and nothing else, for the HTTPS calls dregsy makes
/// besides registries (cloud token services), so they verify servers the same way.
///
/// # Errors
///
/// When TLS cannot be set up with the system's roots.
pub fn system_client_config() -> Result<ClientConfig> {
    client_config(None, false)
}

/// Builds the TLS configuration for a registry whose certificate directory is `host_dir`
/// (`<certs-dir>/<host without port>`, which need not exist).
pub(crate) fn client_config(host_dir: Option<&Path>, skip_verify: bool) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_setup_error(format!("cannot set up TLS: {e}")))?;

    let files = match host_dir {
        Some(dir) => CertsDir::read(dir)?,
        None => CertsDir::default(),
    };

    let builder = if skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
    } else {
        let mut roots = RootCertStore::empty();
        // A host without usable system roots still works with roots from the certs dir.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        for (path, cert) in files.roots {
            roots.add(cert).map_err(|e| {
                tls_setup_error(format!("cannot use CA certificate {}: {e}", path.display()))
            })?;
        }
        builder.with_root_certificates(roots)
    };

    let mut config = match files.identity {
        Some((cert_path, certs, key)) => {
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                tls_setup_error(format!(
                    "cannot use client certificate {}: {e}",
                    cert_path.display()
                ))
            })?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// When `config` has no client certificate, makes it note whether a server asks for one:
/// a registry that requires mutual TLS asks during the handshake, then fails the connection
/// (an alert, or just a close or reset), and only the ask tells the two apart. Returns the
/// flag, or `None` when a client certificate is configured.
pub(crate) fn watch_client_certificate_requests(
    config: &mut ClientConfig,
) -> Option<Arc<AtomicBool>> {
    if config.client_auth_cert_resolver.has_certs() {
        return None;
    }
    let asked = Arc::new(AtomicBool::new(false));
    config.client_auth_cert_resolver = Arc::new(NoClientCertificate {
        asked: asked.clone(),
    });
    Some(asked)
}

/// Sends no client certificate, and remembers that one was asked for.
#[derive(Debug)]
struct NoClientCertificate {
    asked: Arc<AtomicBool>,
}

impl rustls::client::ResolvesClientCert for NoClientCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

fn tls_setup_error(reason: String) -> Error {
    Error::new(ErrorKind::Tls, reason)
}

/// What a certificate directory holds.
#[derive(Default)]
struct CertsDir {
    roots: Vec<(PathBuf, CertificateDer<'static>)>,
    identity: Option<(
        PathBuf,
        Vec<CertificateDer<'static>>,
        PrivateKeyDer<'static>,
    )>,
}

impl CertsDir {
    fn read(dir: &Path) -> Result<CertsDir> {
        let mut found = CertsDir::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            // A missing directory is normal: the original always passes it, existing or not.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
            Err(e) => {
                return Err(tls_setup_error(format!(
                    "cannot read certificate directory {}: {e}",
                    dir.display()
                )));
            }
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            match path.extension().and_then(|e| e.to_str()) {
                Some("crt") => {
                    for cert in read_certs(&path)? {
                        found.roots.push((path.clone(), cert));
                    }
                }
                Some("cert") => {
                    let key_path = path.with_extension("key");
                    if !key_path.exists() {
                        return Err(tls_setup_error(format!(
                            "client certificate {} has no matching key {}",
                            path.display(),
                            key_path.display()
                        )));
                    }
                    let certs = read_certs(&path)?;
                    let key = read_file(&key_path).and_then(|pem| {
                        PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
                            tls_setup_error(format!(
                                "cannot read private key {}: {e}",
                                key_path.display()
                            ))
                        })
                    })?;
                    found.identity = Some((path, certs, key));
                }
                Some("key") => {
                    let cert_path = path.with_extension("cert");
                    if !cert_path.exists() {
                        return Err(tls_setup_error(format!(
                            "missing client certificate {} for key {}",
                            cert_path.display(),
                            path.display()
                        )));
                    }
                }
                _ => {}
            }
        }
        Ok(found)
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| tls_setup_error(format!("cannot read {}: {e}", path.display())))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| tls_setup_error(format!("cannot read certificate {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(tls_setup_error(format!(
            "{} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// For `skip-tls-verify`: trusts any certificate, but still checks handshake signatures so
/// the connection is at least encrypted to whoever holds the presented key.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_dir_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        assert!(client_config(Some(&dir.path().join("nope")), false).is_ok());
        assert!(client_config(None, true).is_ok());
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), "not pem").unwrap();
        let err = client_config(Some(dir.path()), false).err().unwrap();
        assert!(err.to_string().contains("ca.crt"), "{err}");
        std::fs::remove_file(dir.path().join("ca.crt")).unwrap();
        std::fs::write(dir.path().join("client.cert"), "x").unwrap();
        let err = client_config(Some(dir.path()), false).err().unwrap();
        assert!(err.to_string().contains("client.key"), "{err}");
    }
}
