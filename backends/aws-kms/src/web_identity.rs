//! Temporary credentials from STS `AssumeRoleWithWebIdentity`: how a Kubernetes pod on
//! EKS (IAM roles for service accounts) or any workload with an OIDC token gets AWS
//! credentials without a long-lived key.
//!
//! The token file is read again at every refresh (the kubelet rotates it). The
//! credentials STS answers are kept and reused until [`REFRESH_BEFORE_EXPIRY`] before their
//! `Expiration`; one caller at a time refreshes them, the others wait for its answer. When a
//! refresh fails, credentials that have not expired yet are still used (and the failure
//! logged), so an STS outage shorter than the margin does not stop the vault; STS is asked
//! again [`RETRY_REFRESH_AFTER`] later, not by every request meanwhile.

use std::fmt;
use std::io::Read as _;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use quick_xml::events::Event;
use zeroize::Zeroizing;

use crate::answer::{self, AnswerError, transport};
use crate::credentials::CredentialError;

/// How long before their expiry cached credentials are replaced: a request signed just
/// before the expiry still reaches KMS in time, and clocks may differ a little.
pub(crate) const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// The longest token STS accepts (`WebIdentityToken`, 20 000 characters).
pub(crate) const MAX_TOKEN_LEN: u64 = 20_000;

/// How long after a failed refresh STS is asked again.
pub(crate) const RETRY_REFRESH_AFTER: Duration = Duration::from_secs(10);

/// How long STS is not asked again after a failure that may pass (STS busy or unreachable)
/// when there are no valid credentials to sign with meanwhile: shorter than the KMS client's
/// first retry (100 ms), so that a retry asks STS again instead of getting the same error.
const RETRY_TRANSIENT_WITHOUT_CREDENTIALS_AFTER: Duration = Duration::from_millis(50);

/// The role to assume with the token of a file, and the credentials last received.
pub(crate) struct WebIdentity {
    role_arn: String,
    token_file: PathBuf,
    session_name: String,
    endpoint: String,
    cached: tokio::sync::Mutex<Cached>,
}

/// The credentials last received, and the last refresh that failed.
#[derive(Default)]
struct Cached {
    credentials: Option<Credentials>,
    failure: Option<(Instant, CredentialError)>,
}

impl WebIdentity {
    pub(crate) fn new(
        role_arn: String,
        token_file: PathBuf,
        session_name: String,
        endpoint: String,
    ) -> Self {
        WebIdentity {
            role_arn,
            token_file,
            session_name,
            endpoint,
            cached: tokio::sync::Mutex::new(Cached::default()),
        }
    }

    /// Credentials valid for at least [`REFRESH_BEFORE_EXPIRY`] more: the cached ones, or
    /// new ones from STS. The lock is held across the STS call, so concurrent callers make
    /// one call and share its answer.
    ///
    /// After a refresh failed, STS is not asked again for [`RETRY_REFRESH_AFTER`]: callers
    /// meanwhile sign with the current credentials while they have not expired (and a
    /// warning is logged at each failure), or get the same error at once, so an STS outage
    /// does not queue every request behind a call that waits out its timeout. A failure that
    /// may pass, with no valid credentials to sign with meanwhile, holds STS off only for
    /// [`RETRY_TRANSIENT_WITHOUT_CREDENTIALS_AFTER`], so that the KMS call's own retries
    /// reach STS (at start, one busy answer would otherwise fail the open).
    pub(crate) async fn credentials(
        &self,
        http: &reqwest::Client,
    ) -> Result<Credentials, CredentialError> {
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now();
        let valid = cached
            .credentials
            .as_ref()
            .filter(|c| c.expiry().is_some_and(|expiry| now < expiry))
            .cloned();
        if let Some(credentials) = &valid
            && fresh(credentials, now)
        {
            return Ok(credentials.clone());
        }
        if let Some((at, error)) = &cached.failure {
            let wait = if valid.is_none() && error.transient {
                RETRY_TRANSIENT_WITHOUT_CREDENTIALS_AFTER
            } else {
                RETRY_REFRESH_AFTER
            };
            if at.elapsed() < wait {
                return valid.ok_or_else(|| error.clone());
            }
        }
        match self.assume_role(http).await {
            Ok(credentials) => {
                *cached = Cached {
                    credentials: Some(credentials.clone()),
                    failure: None,
                };
                Ok(credentials)
            }
            Err(e) => {
                cached.failure = Some((Instant::now(), e.clone()));
                match valid {
                    // Credentials in their last minutes still sign.
                    Some(credentials) => {
                        tracing::warn!(
                            reason = %e.message,
                            "cannot refresh the web identity credentials; using the current \
                             ones until they expire"
                        );
                        Ok(credentials)
                    }
                    None => Err(e),
                }
            }
        }
    }

    async fn assume_role(&self, http: &reqwest::Client) -> Result<Credentials, CredentialError> {
        let token = read_token(&self.token_file)?;
        let body = Zeroizing::new(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("Action", "AssumeRoleWithWebIdentity")
                .append_pair("Version", "2011-06-15")
                .append_pair("RoleArn", &self.role_arn)
                .append_pair("RoleSessionName", &self.session_name)
                .append_pair("WebIdentityToken", token.as_str())
                .finish(),
        );
        drop(token);
        let response = http
            .post(&self.endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "text/xml")
            .body(body.as_bytes().to_vec())
            .send()
            .await
            .map_err(|e| transient(transport(&e)))?;
        drop(body);
        let status = response.status();
        let bytes = answer::read_answer(response).await.map_err(|e| match e {
            AnswerError::Transport(what) => transient(what),
            AnswerError::TooLong => {
                permanent("STS AssumeRoleWithWebIdentity: the answer is too long")
            }
        })?;
        let text = std::str::from_utf8(&bytes);
        if !status.is_success() {
            return Err(refusal(status, text.ok()));
        }
        let answer = text
            .ok()
            .and_then(|t| read_answer(t).ok())
            .ok_or_else(|| permanent("STS AssumeRoleWithWebIdentity: the answer is not XML"))?;
        answer.into_credentials(SystemTime::now())
    }
}

/// What an STS answer of `status` means: STS's error code (when the answer has one that is a
/// name) and the status, retried when STS or the identity provider is busy. Never STS's
/// message, which may quote the request.
fn refusal(status: reqwest::StatusCode, answer: Option<&str>) -> CredentialError {
    let code = answer
        .and_then(|t| read_answer(t).ok())
        .and_then(|a| a.error_code)
        .unwrap_or_else(|| "no error code".to_owned());
    // The codes the AWS SDKs retry.
    let transient = status.is_server_error()
        || matches!(
            code.as_str(),
            "Throttling" | "IDPCommunicationError" | "InternalFailure"
        );
    CredentialError {
        transient,
        message: format!(
            "STS AssumeRoleWithWebIdentity refused: {code} (HTTP {})",
            status.as_u16()
        ),
    }
}

/// Whether `credentials` may still sign requests for [`REFRESH_BEFORE_EXPIRY`].
fn fresh(credentials: &Credentials, now: SystemTime) -> bool {
    credentials
        .expiry()
        .and_then(|expiry| expiry.checked_sub(REFRESH_BEFORE_EXPIRY))
        .is_some_and(|refresh_at| now < refresh_at)
}

/// The token of `path`, trimmed: it must exist, be readable, not be empty and not be longer
/// than STS accepts.
fn read_token(path: &std::path::Path) -> Result<Zeroizing<String>, CredentialError> {
    let file = std::fs::File::open(path).map_err(|e| {
        permanent(format!(
            "cannot read the web identity token file {} (AWS_WEB_IDENTITY_TOKEN_FILE): {}",
            path.display(),
            e.kind()
        ))
    })?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_TOKEN_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            permanent(format!(
                "cannot read the web identity token file {}: {}",
                path.display(),
                e.kind()
            ))
        })?;
    if bytes.len() as u64 > MAX_TOKEN_LEN {
        return Err(permanent(format!(
            "the web identity token file {} is longer than {MAX_TOKEN_LEN} bytes",
            path.display()
        )));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        permanent(format!(
            "the web identity token file {} is not text",
            path.display()
        ))
    })?;
    let token = Zeroizing::new(text.trim().to_owned());
    if token.is_empty() {
        return Err(permanent(format!(
            "the web identity token file {} is empty",
            path.display()
        )));
    }
    Ok(token)
}

/// What this client takes from an STS answer: the credentials of a success, the error
/// code of a refusal.
#[derive(Default)]
struct StsAnswer {
    access_key_id: Option<Zeroizing<String>>,
    secret_access_key: Option<Zeroizing<String>>,
    session_token: Option<Zeroizing<String>>,
    expiration: Option<String>,
    error_code: Option<String>,
}

impl StsAnswer {
    fn into_credentials(self, now: SystemTime) -> Result<Credentials, CredentialError> {
        let (Some(id), Some(secret), Some(token), Some(expiration)) = (
            self.access_key_id,
            self.secret_access_key,
            self.session_token,
            self.expiration,
        ) else {
            return Err(permanent(
                "STS AssumeRoleWithWebIdentity: the answer lacks AccessKeyId, SecretAccessKey, \
                 SessionToken or Expiration",
            ));
        };
        let expiry = DateTime::from_str(expiration.trim(), Format::DateTime)
            .ok()
            .and_then(|t| SystemTime::try_from(t).ok())
            .ok_or_else(|| {
                permanent("STS AssumeRoleWithWebIdentity: the Expiration is not a date and time")
            })?;
        if expiry <= now {
            return Err(permanent(
                "STS AssumeRoleWithWebIdentity answered credentials that have already expired \
                 (check this host's clock)",
            ));
        }
        Ok(Credentials::new(
            id.as_str(),
            secret.as_str(),
            Some(token.as_str().to_owned()),
            Some(expiry),
            "web identity",
        ))
    }
}

/// Reads the fields this client needs from an STS XML answer (success or error); `Err` for
/// text that is not well-formed XML.
fn read_answer(xml: &str) -> Result<StsAnswer, ()> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut answer = StsAnswer::default();
    let mut root_seen = false;
    loop {
        let piece: Zeroizing<String> = match reader.read_event().map_err(|_| ())? {
            Event::Start(e) => {
                if path.is_empty() && root_seen {
                    return Err(());
                }
                root_seen = true;
                path.push(e.local_name().as_ref().to_owned());
                continue;
            }
            Event::End(_) => {
                path.pop();
                continue;
            }
            Event::Eof => break,
            Event::Text(t) => Zeroizing::new(t.xml10_content().into_owned()),
            Event::CData(t) => Zeroizing::new(t.xml10_content().into_owned()),
            Event::GeneralRef(r) => match r.resolve_char_ref().map_err(|_| ())? {
                Some(c) => Zeroizing::new(c.to_string()),
                None => {
                    let name = r.xml10_content();
                    Zeroizing::new(
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or(())?
                            .to_owned(),
                    )
                }
            },
            _ => continue,
        };
        let slot = match path.as_slice() {
            [.., parent, name] if parent == "Credentials" => match name.as_str() {
                "AccessKeyId" => answer.access_key_id.get_or_insert_default(),
                "SecretAccessKey" => answer.secret_access_key.get_or_insert_default(),
                "SessionToken" => answer.session_token.get_or_insert_default(),
                "Expiration" => {
                    answer
                        .expiration
                        .get_or_insert_default()
                        .push_str(piece.as_str());
                    continue;
                }
                _ => continue,
            },
            [.., parent, name] if parent == "Error" && name == "Code" => {
                answer
                    .error_code
                    .get_or_insert_default()
                    .push_str(piece.as_str());
                continue;
            }
            _ => continue,
        };
        slot.push_str(piece.as_str());
    }
    if !root_seen || !path.is_empty() {
        return Err(());
    }
    // An error code is a name; anything else is not repeated in a message.
    answer.error_code = answer.error_code.map(|c| c.trim().to_owned()).filter(|c| {
        !c.is_empty() && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
    });
    Ok(answer)
}

fn permanent(message: impl Into<String>) -> CredentialError {
    CredentialError {
        transient: false,
        message: message.into(),
    }
}

fn transient(why: &str) -> CredentialError {
    CredentialError {
        transient: true,
        message: format!("STS AssumeRoleWithWebIdentity: {why}"),
    }
}

impl fmt::Debug for WebIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebIdentity")
            .field("role_arn", &self.role_arn)
            .field("token_file", &self.token_file)
            .field("session_name", &self.session_name)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const SUCCESS: &str = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:pci:vault</SubjectFromWebIdentityToken>
    <Credentials>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
      <SecretAccessKey>s3cr3t-value-9</SecretAccessKey>
      <SessionToken>t0ken&amp;more</SessionToken>
      <Expiration>2030-01-01T10:00:00Z</Expiration>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>"#;

    /// What a loopback STS was asked: how many times, and the request bodies.
    #[derive(Clone, Default)]
    struct Asked(Arc<std::sync::Mutex<Vec<String>>>);

    impl Asked {
        fn count(&self) -> usize {
            self.0.lock().unwrap().len()
        }

        fn body(&self, n: usize) -> String {
            self.0.lock().unwrap()[n].clone()
        }
    }

    /// An STS on loopback that answers its requests with `answers` in turn (the last one
    /// again after them), and records them.
    async fn sts(answers: Vec<(u16, String)>) -> (String, Asked) {
        use tokio::io::AsyncWriteExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let asked = Asked::default();
        let requests = asked.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let body = read_request_body(&mut socket).await;
                let n = {
                    let mut requests = requests.0.lock().unwrap();
                    requests.push(body);
                    requests.len() - 1
                };
                let (status, body) = &answers[n.min(answers.len() - 1)];
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body.as_bytes()).await;
            }
        });
        (url, asked)
    }

    /// The body of the HTTP request on `socket`: read until the blank line, then as many
    /// bytes as `content-length` says (the body may come in a segment of its own).
    async fn read_request_body(socket: &mut tokio::net::TcpStream) -> String {
        use tokio::io::AsyncReadExt as _;
        let mut request = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&request).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    return body.to_owned();
                }
            }
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return String::new(),
                Ok(n) => request.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// A success answer with these credentials.
    fn success(key_id: &str, expiration: SystemTime) -> String {
        let expiration = DateTime::from(expiration).fmt(Format::DateTime).unwrap();
        SUCCESS
            .replace("ASIAEXAMPLE", key_id)
            .replace("2030-01-01T10:00:00Z", &expiration)
    }

    /// Within [`REFRESH_BEFORE_EXPIRY`] of now: valid, but due for a refresh.
    fn soon() -> SystemTime {
        SystemTime::now() + REFRESH_BEFORE_EXPIRY - Duration::from_secs(60)
    }

    fn later() -> SystemTime {
        SystemTime::now() + Duration::from_secs(3600)
    }

    fn web_identity(endpoint: String, dir: &std::path::Path) -> WebIdentity {
        let token = dir.join("token");
        std::fs::write(&token, "eyJ.test.token").unwrap();
        WebIdentity::new(
            "arn:aws:iam::123456789012:role/vault".to_owned(),
            token,
            "pci-vault-test".to_owned(),
            endpoint,
        )
    }

    fn http() -> reqwest::Client {
        reqwest::Client::builder()
            .tls_backend_preconfigured(crate::client::tls_config().unwrap())
            .build()
            .unwrap()
    }

    const BUSY: &str =
        "<ErrorResponse><Error><Code>ServiceUnavailable</Code></Error></ErrorResponse>";
    const DENIED: &str = "<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>";

    #[tokio::test]
    async fn after_a_busy_answer_with_no_credentials_a_retry_asks_sts_again() {
        let dir = tempfile::tempdir().unwrap();
        let (url, asked) = sts(vec![(503, BUSY.into()), (200, SUCCESS.into())]).await;
        let identity = web_identity(url, dir.path());
        let http = http();
        let error = identity.credentials(&http).await.unwrap_err();
        assert!(error.transient, "{}", error.message);
        // The KMS client's first retry comes 100 ms later.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let credentials = identity.credentials(&http).await.unwrap();
        assert_eq!(credentials.access_key_id(), "ASIAEXAMPLE");
        assert_eq!(asked.count(), 2);
    }

    #[tokio::test]
    async fn a_refusal_holds_sts_off_for_the_retry_interval() {
        let dir = tempfile::tempdir().unwrap();
        let (url, asked) = sts(vec![(403, DENIED.into()), (200, SUCCESS.into())]).await;
        let identity = web_identity(url, dir.path());
        let http = http();
        for _ in 0..3 {
            let error = identity.credentials(&http).await.unwrap_err();
            assert!(!error.transient, "{}", error.message);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(asked.count(), 1);
    }

    /// Credentials within [`REFRESH_BEFORE_EXPIRY`] of their expiry are replaced, with the
    /// token the file holds by then (the kubelet rotates it); the new ones are then used
    /// without asking STS again.
    #[tokio::test]
    async fn credentials_near_their_expiry_are_refreshed_with_the_current_token() {
        let dir = tempfile::tempdir().unwrap();
        let (url, asked) = sts(vec![
            (200, success("ASIAFIRST", soon())),
            (200, success("ASIASECOND", later())),
        ])
        .await;
        let identity = web_identity(url, dir.path());
        let http = http();
        let first = identity.credentials(&http).await.unwrap();
        assert_eq!(first.access_key_id(), "ASIAFIRST");
        std::fs::write(dir.path().join("token"), "eyJ.rotated.token").unwrap();
        for _ in 0..3 {
            let credentials = identity.credentials(&http).await.unwrap();
            assert_eq!(credentials.access_key_id(), "ASIASECOND");
        }
        assert_eq!(asked.count(), 2);
        assert!(asked.body(0).contains("WebIdentityToken=eyJ.test.token"));
        assert!(asked.body(1).contains("WebIdentityToken=eyJ.rotated.token"));
    }

    /// A failed refresh keeps the credentials that have not expired yet, and STS is not
    /// asked again by every call meanwhile.
    #[tokio::test]
    async fn a_failed_refresh_signs_with_the_current_credentials_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let (url, asked) = sts(vec![
            (200, success("ASIAFIRST", soon())),
            (503, BUSY.into()),
            (200, success("ASIASECOND", later())),
        ])
        .await;
        let identity = web_identity(url, dir.path());
        let http = http();
        for _ in 0..3 {
            let credentials = identity.credentials(&http).await.unwrap();
            assert_eq!(credentials.access_key_id(), "ASIAFIRST");
        }
        assert_eq!(
            asked.count(),
            2,
            "STS asked again within the retry interval"
        );
    }

    fn at(rfc3339: &str) -> SystemTime {
        SystemTime::try_from(DateTime::from_str(rfc3339, Format::DateTime).unwrap()).unwrap()
    }

    #[test]
    fn a_success_answer_gives_credentials_until_its_expiration() {
        let now = at("2030-01-01T09:00:00Z");
        let credentials = read_answer(SUCCESS).unwrap().into_credentials(now).unwrap();
        assert_eq!(credentials.access_key_id(), "ASIAEXAMPLE");
        assert_eq!(credentials.secret_access_key(), "s3cr3t-value-9");
        assert_eq!(credentials.session_token(), Some("t0ken&more"));
        assert_eq!(credentials.expiry(), Some(at("2030-01-01T10:00:00Z")));
        assert!(fresh(&credentials, at("2030-01-01T09:54:59Z")));
        assert!(!fresh(&credentials, at("2030-01-01T09:55:00Z")));
        assert!(!format!("{credentials:?}").contains("s3cr3t"));
    }

    #[test]
    fn an_expired_answer_is_an_error() {
        let err = read_answer(SUCCESS)
            .unwrap()
            .into_credentials(at("2030-01-01T10:00:00Z"))
            .unwrap_err();
        assert!(err.message.contains("already expired"), "{}", err.message);
        assert!(!err.transient);
    }

    #[test]
    fn malformed_or_incomplete_answers_are_errors_without_their_content() {
        for bad in [
            "",
            "not xml",
            "<a><b></a>",
            "<a></a><b></b>",
            "<Credentials><AccessKeyId>x</AccessKeyId>",
        ] {
            assert!(read_answer(bad).is_err(), "{bad:?}");
        }
        let incomplete = SUCCESS.replace("<SessionToken>t0ken&amp;more</SessionToken>", "");
        let err = read_answer(&incomplete)
            .unwrap()
            .into_credentials(at("2030-01-01T09:00:00Z"))
            .unwrap_err();
        assert!(err.message.contains("lacks"), "{}", err.message);
        assert!(!err.message.contains("s3cr3t"));
        let undated = SUCCESS.replace("2030-01-01T10:00:00Z", "s3cr3t-tomorrow");
        let err = read_answer(&undated)
            .unwrap()
            .into_credentials(at("2030-01-01T09:00:00Z"))
            .unwrap_err();
        assert!(err.message.contains("not a date"), "{}", err.message);
        assert!(!err.message.contains("s3cr3t"));
    }

    #[test]
    fn an_error_answer_gives_its_code_only_when_it_is_a_name() {
        let refused = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>
  <Message>token eyJhbGciOi is not valid</Message></Error>
  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"#;
        let err = refusal(reqwest::StatusCode::BAD_REQUEST, Some(refused));
        assert_eq!(
            err.message,
            "STS AssumeRoleWithWebIdentity refused: InvalidIdentityToken (HTTP 400)"
        );
        assert!(!err.transient);
        let odd = refused.replace("InvalidIdentityToken", "eyJ hbGci &lt;token&gt;");
        let err = refusal(reqwest::StatusCode::FORBIDDEN, Some(&odd));
        assert_eq!(
            err.message,
            "STS AssumeRoleWithWebIdentity refused: no error code (HTTP 403)"
        );
        let busy = refused.replace("InvalidIdentityToken", "IDPCommunicationError");
        assert!(refusal(reqwest::StatusCode::BAD_REQUEST, Some(&busy)).transient);
        assert!(refusal(reqwest::StatusCode::INTERNAL_SERVER_ERROR, Some("<html>")).transient);
    }
}
