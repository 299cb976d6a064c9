//! What the tests against moto's server share: where it is, a provider configuration on
//! it, and plain HTTP calls to its API (its request recording, IAM setup).

use std::io::{Read as _, Write as _};
use std::time::Duration;

use pci_vault_aws_kms::AwsKmsConfig;

pub(crate) const REGION: &str = "eu-central-1";

/// The moto server `scripts/test 20-keys` starts (`PCI_VAULT_TEST_KMS_ENDPOINT`).
pub(crate) fn endpoint() -> String {
    std::env::var("PCI_VAULT_TEST_KMS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "PCI_VAULT_TEST_KMS_ENDPOINT is not set: run `scripts/test 20-keys`, which starts \
             moto's KMS server on loopback and sets it"
        )
    })
}

/// The provider's configuration for `key` on the moto server.
pub(crate) fn config(key: &str) -> AwsKmsConfig {
    let mut c = AwsKmsConfig::new(key);
    c.region = Some(REGION.to_owned());
    c.endpoint = Some(endpoint());
    c
}

/// A call to moto's own API (`/moto-api/...`) on the server of [`endpoint`].
pub(crate) fn moto_api(method: &str, path: &str) -> String {
    http(&endpoint(), method, path, &[], "")
}

/// A plain HTTP/1.1 request to the moto server at `base`; its answer must be a 200.
pub(crate) fn http(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> String {
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}
