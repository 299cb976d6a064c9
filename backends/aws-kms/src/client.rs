//! A small signed JSON client for the KMS API: SigV4 over HTTPS, a timeout per request,
//! and retries of transient failures that are each logged and never hide the last one.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use pci_vault::{Error, Result};
use serde_json::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::answer::{AnswerError, MAX_ANSWER_LEN, read_answer, transport};
use crate::config::{AwsKmsConfig, check_region};
use crate::credentials::CredentialChain;
use crate::environment::AwsEnvironment;

/// A KMS client for one region and endpoint. `Debug` shows the endpoint only.
#[derive(Clone)]
pub struct KmsClient {
    http: reqwest::Client,
    endpoint: String,
    host: String,
    region: String,
    credentials: Arc<CredentialChain>,
    retries: u32,
}

/// Why one attempt failed.
enum Failure {
    /// Worth sending again: a timeout, no connection, throttling, a 5xx answer.
    Transient(String),
    /// KMS refused the request: the exception's name and the HTTP status.
    Refused { kind: String, status: u16 },
    /// Anything else (an unreadable answer).
    Other(String),
}

/// What a failed call reports: KMS's exception name when it gave one.
#[derive(Debug)]
pub(crate) struct CallError {
    /// KMS's exception name (`NotFoundException`, …), if KMS answered.
    pub(crate) kind: Option<String>,
    /// The message for the error, without request or response bodies.
    pub(crate) message: String,
}

impl CallError {
    pub(crate) fn into_error(self) -> Error {
        Error::key_unavailable(self.message)
    }
}

impl KmsClient {
    /// A client for the region and endpoint of `config`.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for a malformed endpoint or an `http://` endpoint that is not on
    /// a loopback address; `KEY_UNAVAILABLE` when no region is configured or TLS cannot be
    /// set up.
    pub fn new(config: &AwsKmsConfig) -> Result<Self> {
        Self::with_environment(config, &AwsEnvironment::from_process())
    }

    /// A client for the region and endpoint of `config` that reads its region and
    /// credentials from `environment` instead of the process's environment variables.
    ///
    /// # Errors
    /// As [`KmsClient::new`]; also `INVALID_ARGUMENT` for a malformed
    /// `AWS_ENDPOINT_URL_STS`.
    pub fn with_environment(config: &AwsKmsConfig, environment: &AwsEnvironment) -> Result<Self> {
        let region = match &config.region {
            Some(region) => region.clone(),
            None => environment
                .get("AWS_REGION")
                .or_else(|| environment.get("AWS_DEFAULT_REGION"))
                .ok_or_else(|| {
                    Error::key_unavailable(
                        "no AWS region: give region= in the key source or set AWS_REGION",
                    )
                })
                .and_then(check_region)?,
        };
        let (endpoint, host) = match &config.endpoint {
            Some(endpoint) => check_endpoint(endpoint, EndpointOf::Kms)?,
            None => (
                format!("https://kms.{region}.amazonaws.com/"),
                format!("kms.{region}.amazonaws.com"),
            ),
        };
        let credentials = CredentialChain::new(environment, config.profile.as_deref(), &region)?;
        let tls = tls_config()?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                Error::key_unavailable(format!("cannot build the KMS HTTP client: {e}"))
            })?;
        Ok(KmsClient {
            http,
            endpoint,
            host,
            region,
            credentials: Arc::new(credentials),
            retries: config.retries,
        })
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Calls the KMS action `action` (`Encrypt`, `DescribeKey`, …) with a JSON request,
    /// retrying transient failures, and returns KMS's JSON answer.
    ///
    /// The request body may hold key material (`Plaintext`): it is wiped after the call,
    /// and neither it nor the answer appears in a log line or an error.
    ///
    /// # Errors
    /// `KEY_UNAVAILABLE`, naming the action and KMS's exception (or the transport failure
    /// and the number of attempts).
    pub async fn call(&self, action: &str, request: &Value) -> Result<Value> {
        self.call_raw(action, request)
            .await
            .map_err(CallError::into_error)
    }

    pub(crate) async fn call_raw(
        &self,
        action: &str,
        request: &Value,
    ) -> std::result::Result<Value, CallError> {
        let body = Zeroizing::new(serde_json::to_vec(request).map_err(|_| CallError {
            kind: None,
            message: format!("AWS KMS {action}: the request cannot be written"),
        })?);
        let attempts = self.retries + 1;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let failure = match self.attempt(action, &body).await {
                Ok(answer) => return Ok(answer),
                Err(failure) => failure,
            };
            match failure {
                Failure::Transient(why) if attempt < attempts => {
                    tracing::warn!(
                        action,
                        attempt,
                        attempts,
                        reason = %why,
                        "AWS KMS call failed; retrying"
                    );
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Failure::Transient(why) => {
                    return Err(CallError {
                        kind: None,
                        message: format!(
                            "AWS KMS {action} failed after {attempt} attempt(s): {why}"
                        ),
                    });
                }
                Failure::Refused { kind, status } => {
                    return Err(CallError {
                        message: format!("AWS KMS {action} refused: {kind} (HTTP {status})"),
                        kind: Some(kind),
                    });
                }
                Failure::Other(why) => {
                    return Err(CallError {
                        kind: None,
                        message: format!("AWS KMS {action}: {why}"),
                    });
                }
            }
        }
    }

    async fn attempt(&self, action: &str, body: &[u8]) -> std::result::Result<Value, Failure> {
        let target = format!("TrentService.{action}");
        let credentials = self.credentials.resolve(&self.http).await.map_err(|e| {
            if e.transient {
                Failure::Transient(e.message)
            } else {
                Failure::Other(e.message)
            }
        })?;
        let headers = self.signed_headers(credentials, &target, body)?;
        let mut request = self
            .http
            .post(&self.endpoint)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", &target);
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| Failure::Transient(transport(&e).to_owned()))?;
        let status = response.status();
        let bytes = read_answer(response).await.map_err(|e| match e {
            AnswerError::Transport(what) => Failure::Transient(what.to_owned()),
            AnswerError::TooLong => Failure::Other(format!(
                "the answer is longer than {} KiB",
                MAX_ANSWER_LEN / 1024
            )),
        })?;
        let answer: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status.is_success() {
            return answer.ok_or_else(|| Failure::Other("the answer is not JSON".to_owned()));
        }
        let kind = answer
            .as_ref()
            .and_then(|a| a.get("__type"))
            .and_then(Value::as_str)
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
            .unwrap_or_else(|| "no exception name".to_owned());
        let transient = status.is_server_error()
            || matches!(
                kind.as_str(),
                "ThrottlingException" | "KMSInternalException" | "DependencyTimeoutException"
            );
        if transient {
            Err(Failure::Transient(format!(
                "{kind} (HTTP {})",
                status.as_u16()
            )))
        } else {
            Err(Failure::Refused {
                kind,
                status: status.as_u16(),
            })
        }
    }

    /// The SigV4 headers of a request. The signer gets the body's SHA-256, never the body.
    fn signed_headers(
        &self,
        credentials: Credentials,
        target: &str,
        body: &[u8],
    ) -> std::result::Result<Vec<(String, String)>, Failure> {
        let identity = credentials.into();
        let settings = SigningSettings::default();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("kms")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| Failure::Other(format!("cannot sign the request: {e}")))?
            .into();
        let digest: String = Sha256::digest(body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let headers = [
            ("host", self.host.as_str()),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target),
        ];
        let signable = SignableRequest::new(
            "POST",
            self.endpoint.as_str(),
            headers.into_iter(),
            SignableBody::Precomputed(digest),
        )
        .map_err(|e| Failure::Other(format!("cannot sign the request: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| Failure::Other(format!("cannot sign the request: {e}")))?
            .into_parts();
        let (headers, _) = instructions.into_parts();
        Ok(headers
            .into_iter()
            .map(|h| (h.name().to_owned(), h.value().to_owned()))
            .collect())
    }
}

/// Which endpoint [`check_endpoint`] checks, for its messages.
#[derive(Clone, Copy)]
pub(crate) enum EndpointOf {
    /// `endpoint=` of the key source.
    Kms,
    /// `AWS_ENDPOINT_URL_STS`.
    Sts,
}

/// An endpoint as the URL requests go to and its host (with the port when one is given):
/// https://, or http:// on a loopback address, without a path.
pub(crate) fn check_endpoint(text: &str, of: EndpointOf) -> Result<(String, String)> {
    let invalid = |kms: &'static str, sts: &'static str| {
        Error::InvalidArgument(match of {
            EndpointOf::Kms => kms,
            EndpointOf::Sts => sts,
        })
    };
    let url = reqwest::Url::parse(text).map_err(|_| {
        invalid(
            "the aws-kms endpoint is not a URL",
            "AWS_ENDPOINT_URL_STS is not a URL",
        )
    })?;
    let host = match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => {
            return Err(invalid(
                "the aws-kms endpoint has no host",
                "AWS_ENDPOINT_URL_STS has no host",
            ));
        }
    };
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(invalid(
                "the aws-kms endpoint must be https:// (http:// only on a loopback address)",
                "AWS_ENDPOINT_URL_STS must be https:// (http:// only on a loopback address)",
            ));
        }
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(invalid(
            "the aws-kms endpoint is a scheme, a host and a port, without a path",
            "AWS_ENDPOINT_URL_STS is a scheme, a host and a port, without a path",
        ));
    }
    Ok((url.to_string(), host))
}

/// 100 ms, 200 ms, 400 ms, … between attempts.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6).saturating_sub(1)))
}

/// TLS with the ring provider and the platform's certificate verifier.
pub(crate) fn tls_config() -> Result<rustls::ClientConfig> {
    use rustls_platform_verifier::BuilderVerifierExt as _;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_platform_verifier())
        .map(|b| b.with_no_client_auth())
        .map_err(|e| Error::key_unavailable(format!("cannot set up TLS for AWS KMS: {e}")))
}

impl fmt::Debug for KmsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsClient")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}
