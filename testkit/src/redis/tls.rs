//! Throwaway certificates for TLS and mutual-TLS servers.

use std::path::PathBuf;

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, all
/// signed by that CA; and a second CA that signs nothing of this server's. PEM files in a
/// directory removed on drop.
pub struct TlsFiles {
    _dir: tempfile::TempDir,
    /// The CA that signs the server and client certificates.
    pub ca: PathBuf,
    /// A CA that signs nothing here.
    pub other_ca: PathBuf,
    /// The server's certificate and key.
    pub server_cert: PathBuf,
    /// The server's key.
    pub server_key: PathBuf,
    /// A client certificate signed by [`ca`](Self::ca).
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
    /// A client certificate signed by [`other_ca`](Self::other_ca).
    pub stranger_cert: PathBuf,
    /// Its key.
    pub stranger_key: PathBuf,
}

fn new_ca(name: &str) -> (rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert, rcgen::Issuer::new(params, key))
}

fn leaf(
    issuer: &rcgen::Issuer<'static, rcgen::KeyPair>,
    names: &[&str],
    usage: rcgen::ExtendedKeyUsagePurpose,
) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0]);
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl TlsFiles {
    /// Generates fresh certificates (ECDSA P-256) with `rcgen`.
    pub fn generate() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("pci-vault-redis-tls-")
            .tempdir()
            .unwrap();
        let write = |name: &str, pem: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let (ca_cert, ca) = new_ca("pci-vault test CA");
        let (other_cert, other) = new_ca("pci-vault unrelated CA");
        let (server_cert, server_key) = leaf(
            &ca,
            &["127.0.0.1", "localhost"],
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) = leaf(
            &ca,
            &["pci-vault-client"],
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        );
        let (stranger_cert, stranger_key) = leaf(
            &other,
            &["pci-vault-stranger"],
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        );
        TlsFiles {
            ca: write("ca.pem", &ca_cert.pem()),
            other_ca: write("other-ca.pem", &other_cert.pem()),
            server_cert: write("server.pem", &server_cert),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
            stranger_cert: write("stranger.pem", &stranger_cert),
            stranger_key: write("stranger.key", &stranger_key),
            _dir: dir,
        }
    }
}
