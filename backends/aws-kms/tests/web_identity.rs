//! Web-identity credentials against moto's STS and KMS on loopback: the provider works with
//! nothing but `AWS_ROLE_ARN`, `AWS_WEB_IDENTITY_TOKEN_FILE` and the STS endpoint, calls
//! STS once while the credentials it got are valid, once for concurrent first calls, and
//! says why when the token file or the setting is wrong.
//!
//! Each test gives the provider its own [`AwsEnvironment`], so the static test keys
//! `scripts/test 20-keys` exports for the other tests (and anything else in this process's
//! environment) never reach it. STS calls are counted in moto's own request recording, by
//! the role session name each test makes unique; the tests run one at a time, so the KMS
//! requests recorded during a test are its own.
//!
//! Needs `PCI_VAULT_TEST_KMS_ENDPOINT` (a moto server started with recording enabled), as
//! `tests/moto.rs`.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed setup or expectation is a failed test"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use pci_vault::{DataKey, ErrorCode, KeyProvider as _};
use pci_vault_aws_kms::{AwsEnvironment, AwsKmsProvider, KmsClient};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

mod support;
use support::{config, endpoint, http, moto_api};

const ROLE: &str = "arn:aws:iam::123456789012:role/pci-vault";

/// A directory of this test's own, removed when dropped: the token file and an empty HOME
/// (no `~/.aws/credentials`) live there.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "pci-vault-web-identity-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("home")).unwrap();
        Scratch(dir)
    }

    fn token_file(&self) -> PathBuf {
        self.0.join("token")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A unique role session name, by which moto's recording tells this test's STS calls apart.
fn session_name(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "pci-vault-{test}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Only web identity: the role, the token file, the session name and moto as STS; HOME
/// is an empty directory, so there is no credentials file either.
fn web_identity_env(scratch: &Scratch, session: &str) -> AwsEnvironment {
    AwsEnvironment::empty()
        .with("AWS_ROLE_ARN", ROLE)
        .with(
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            scratch.token_file().to_str().unwrap(),
        )
        .with("AWS_ROLE_SESSION_NAME", session)
        .with("AWS_ENDPOINT_URL_STS", endpoint())
        .with("HOME", scratch.0.join("home").to_str().unwrap())
}

fn write_token(scratch: &Scratch, token: &str) {
    std::fs::write(scratch.token_file(), token).unwrap();
}

/// One test at a time: each reads moto's recording of the requests made since it began.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The KMS key the tests wrap under, made with the static test credentials.
async fn key() -> &'static str {
    static KEY: OnceCell<String> = OnceCell::const_new();
    KEY.get_or_init(|| async {
        moto_api("POST", "/moto-api/recorder/start-recording");
        let env = AwsEnvironment::empty()
            .with("AWS_ACCESS_KEY_ID", "pci-vault-test")
            .with("AWS_SECRET_ACCESS_KEY", "pci-vault-test");
        let client = KmsClient::with_environment(&config("unused"), &env).unwrap();
        let answer = client
            .call(
                "CreateKey",
                &json!({ "Description": "pci-vault web identity" }),
            )
            .await
            .unwrap();
        answer["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned()
    })
    .await
}

/// A plain HTTP request to moto's own API, answered in full.
/// The requests moto recorded, with their bodies decoded.
fn recorded() -> Vec<(Value, String)> {
    moto_api("GET", "/moto-api/recorder/download-recording")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let entry: Value = serde_json::from_str(line).unwrap();
            let body = entry["body"].as_str().unwrap_or("").to_owned();
            let body = if entry["body_encoded"].as_bool() == Some(true) {
                String::from_utf8(STANDARD.decode(body).unwrap()).unwrap()
            } else {
                body
            };
            (entry, body)
        })
        .collect()
}

/// How many `AssumeRoleWithWebIdentity` calls of session `session` moto received.
fn sts_calls(session: &str) -> usize {
    let needle = format!("RoleSessionName={session}&");
    recorded()
        .iter()
        .filter(|(_, body)| {
            body.contains("Action=AssumeRoleWithWebIdentity") && body.contains(&needle)
        })
        .count()
}

/// The access key ids that signed the KMS requests recorded after the first `skip`.
fn kms_signers(skip: usize) -> Vec<String> {
    recorded()
        .iter()
        .skip(skip)
        .filter_map(|(entry, _)| {
            let headers = &entry["headers"];
            headers["X-Amz-Target"].as_str()?;
            let authorization = headers["Authorization"].as_str()?;
            let credential = authorization.split("Credential=").nth(1)?;
            Some(credential.split('/').next()?.to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn web_identity_alone_wraps_and_unwraps_and_sts_is_called_once() {
    let _serial = SERIAL.lock().await;
    let key = key().await;
    let scratch = Scratch::new("alone");
    write_token(&scratch, "eyJhbGciOiJSUzI1NiJ9.pod-token.sig\n");
    let session = session_name("alone");
    let env = web_identity_env(&scratch, &session);
    let before = recorded().len();

    let provider = AwsKmsProvider::connect_with_environment(config(key), &env)
        .await
        .unwrap();
    assert_eq!(
        sts_calls(&session),
        1,
        "DescribeKey at open assumes the role"
    );
    let dek = DataKey::generate();
    let wrapped = provider.wrap(&dek, b"aad").await.unwrap();
    let unwrapped = provider.unwrap(&wrapped, b"aad").await.unwrap();
    assert_eq!(unwrapped.expose_secret(), dek.expose_secret());
    assert_eq!(
        sts_calls(&session),
        1,
        "the credentials of the first call are reused while they are valid"
    );

    // Every KMS request was signed with STS's temporary key (ASIA…), never a static one.
    let signers = kms_signers(before);
    assert!(signers.len() >= 3, "{signers:?}");
    let first = signers[0].clone();
    assert!(first.starts_with("ASIA"), "{signers:?}");
    assert!(signers.iter().all(|s| *s == first), "{signers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_calls_make_one_sts_call() {
    let _serial = SERIAL.lock().await;
    let key = key().await;
    let scratch = Scratch::new("concurrent");
    write_token(&scratch, "eyJhbGciOiJSUzI1NiJ9.pod-token.sig");
    let session = session_name("concurrent");
    let client = Arc::new(
        KmsClient::with_environment(&config(key), &web_identity_env(&scratch, &session)).unwrap(),
    );
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .call("DescribeKey", &json!({ "KeyId": key }))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    assert_eq!(sts_calls(&session), 1);
}

async fn open_error(env: &AwsEnvironment) -> pci_vault::Error {
    AwsKmsProvider::connect_with_environment(config(key().await), env)
        .await
        .unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_empty_or_oversized_token_file_says_so_before_sts_is_asked() {
    let _serial = SERIAL.lock().await;
    let scratch = Scratch::new("token-file");
    let session = session_name("token-file");
    let env = web_identity_env(&scratch, &session);
    let token_file = scratch.token_file().display().to_string();

    let err = open_error(&env).await;
    assert_eq!(err.code(), ErrorCode::KeyUnavailable, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("cannot read the web identity token file") && text.contains(&token_file),
        "{text}"
    );

    write_token(&scratch, " \n");
    let text = open_error(&env).await.to_string();
    assert!(text.contains("is empty"), "{text}");

    let oversized = "s3cr3t".repeat(4_000);
    write_token(&scratch, &oversized);
    let text = open_error(&env).await.to_string();
    assert!(text.contains("longer than 20000 bytes"), "{text}");
    assert!(!text.contains("s3cr3t"), "{text}");
    assert_eq!(sts_calls(&session), 0);

    // The file is read again at the next call: once the token is there, the provider opens.
    write_token(&scratch, "eyJhbGciOiJSUzI1NiJ9.late-token.sig");
    AwsKmsProvider::connect_with_environment(config(key().await), &env)
        .await
        .unwrap();
    assert_eq!(sts_calls(&session), 1);
}

/// After a failed refresh, the same client does not ask STS again for 10 s: calls meanwhile
/// get the same error at once instead of each waiting on STS (an outage would otherwise
/// queue every request behind the one refreshing).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_refresh_is_not_repeated_by_every_call() {
    let _serial = SERIAL.lock().await;
    let key = key().await;
    let scratch = Scratch::new("backoff");
    let session = session_name("backoff");
    let client =
        KmsClient::with_environment(&config(key), &web_identity_env(&scratch, &session)).unwrap();
    let request = json!({ "KeyId": key });
    let describe = || client.call("DescribeKey", &request);

    let first = describe().await.unwrap_err().to_string();
    assert!(
        first.contains("cannot read the web identity token file"),
        "{first}"
    );
    // The token arrives, but within the pause the client does not try again.
    write_token(&scratch, "eyJhbGciOiJSUzI1NiJ9.pod-token.sig");
    let second = describe().await.unwrap_err().to_string();
    assert_eq!(second, first);
    assert_eq!(sts_calls(&session), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_a_web_identity_setting_or_none_at_all_is_named() {
    let _serial = SERIAL.lock().await;
    let scratch = Scratch::new("half");
    let home = scratch.0.join("home");
    let only_role = AwsEnvironment::empty()
        .with("AWS_ROLE_ARN", ROLE)
        .with("HOME", home.to_str().unwrap());
    let text = open_error(&only_role).await.to_string();
    assert!(
        text.contains("AWS_WEB_IDENTITY_TOKEN_FILE is not set"),
        "{text}"
    );

    let only_token = AwsEnvironment::empty()
        .with(
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            scratch.token_file().to_str().unwrap(),
        )
        .with("HOME", home.to_str().unwrap());
    let text = open_error(&only_token).await.to_string();
    assert!(text.contains("AWS_ROLE_ARN is not set"), "{text}");

    let nothing = AwsEnvironment::empty().with("HOME", home.to_str().unwrap());
    let text = open_error(&nothing).await.to_string();
    assert!(text.contains("no AWS credentials"), "{text}");
    assert!(text.contains("AWS_WEB_IDENTITY_TOKEN_FILE"), "{text}");

    let bad_sts =
        web_identity_env(&scratch, "x").with("AWS_ENDPOINT_URL_STS", "http://sts.example.com");
    let err = open_error(&bad_sts).await;
    assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err}");
    assert!(err.to_string().contains("AWS_ENDPOINT_URL_STS"), "{err}");
}

/// The chain's order: static keys in the environment come first, then a profile of the
/// credentials file, then web identity, which is not asked while another source answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn static_keys_and_a_profile_come_before_web_identity() {
    let _serial = SERIAL.lock().await;
    let key = key().await;
    let scratch = Scratch::new("order");
    write_token(&scratch, "eyJhbGciOiJSUzI1NiJ9.pod-token.sig");
    let session = session_name("order");
    let before = recorded().len();

    let with_keys = web_identity_env(&scratch, &session)
        .with("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT")
        .with("AWS_SECRET_ACCESS_KEY", "pci-vault-test");
    AwsKmsProvider::connect_with_environment(config(key), &with_keys)
        .await
        .unwrap();

    let aws = scratch.0.join("home/.aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        "[default]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = pci-vault-test\n",
    )
    .unwrap();
    AwsKmsProvider::connect_with_environment(config(key), &web_identity_env(&scratch, &session))
        .await
        .unwrap();
    assert_eq!(sts_calls(&session), 0);
    assert_eq!(
        kms_signers(before),
        ["AKIAENVIRONMENT", "AKIAPROFILE"],
        "one DescribeKey each"
    );

    // A named profile that the file does not have is an error, not a silent switch to the
    // pod's role.
    let named = web_identity_env(&scratch, &session).with("AWS_PROFILE", "ops");
    let text = open_error(&named).await.to_string();
    assert!(
        text.contains("no access key and secret for profile \"ops\""),
        "{text}"
    );
    assert_eq!(sts_calls(&session), 0);
}

fn auth_endpoint() -> String {
    std::env::var("PCI_VAULT_TEST_KMS_AUTH_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "PCI_VAULT_TEST_KMS_AUTH_ENDPOINT is not set: run `scripts/test 20-keys`, which \
             starts a second moto server for the signature checks and sets it"
        )
    })
}

/// An IAM query request to moto at `base`. moto routes a request by the service of its
/// credential scope, so it carries an Authorization header; this runs while moto checks
/// no signature, which is why the header need not be a valid one.
fn iam(base: &str, params: &[(&str, &str)]) {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    http(
        base,
        "POST",
        "/",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIASETUP/20260101/us-east-1/iam/aws4_request, \
                 SignedHeaders=host, Signature=0",
            ),
        ],
        &body,
    );
}

/// moto checking every request's signature and the caller's IAM policy: the KMS requests
/// signed with the credentials STS issued for the role pass; a key moto does not know, and
/// an action the role's policy does not allow, are refused.
///
/// moto's switch lets the first N requests through unchecked: the test sets N = 1 just
/// before the provider's first STS call, because moto (unlike AWS) would also ask
/// `AssumeRoleWithWebIdentity`, an unsigned call, for a signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moto_checking_signatures_accepts_the_sts_credentials_only() {
    let _serial = SERIAL.lock().await;
    let base = auth_endpoint();
    let role = &format!("pci-vault-signed-{}", std::process::id());
    // Unchecked while the role and the key are made (also after an earlier failed run).
    http(
        &base,
        "POST",
        "/moto-api/reset-auth",
        &[("Content-Type", "text/plain")],
        "inf",
    );
    iam(
        &base,
        &[
            ("Action", "CreateRole"),
            ("Version", "2010-05-08"),
            ("RoleName", role),
            ("AssumeRolePolicyDocument", "{}"),
        ],
    );
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": ["kms:DescribeKey", "kms:Encrypt", "kms:Decrypt"],
            "Resource": "*",
        }],
    })
    .to_string();
    iam(
        &base,
        &[
            ("Action", "PutRolePolicy"),
            ("Version", "2010-05-08"),
            ("RoleName", role),
            ("PolicyName", "pci-vault-kms"),
            ("PolicyDocument", &policy),
        ],
    );
    let mut c = config("unused");
    c.endpoint = Some(base.clone());
    c.retries = 0;
    let stranger = AwsEnvironment::empty()
        .with("AWS_ACCESS_KEY_ID", "AKIASTRANGER")
        .with("AWS_SECRET_ACCESS_KEY", "pci-vault-test");
    let static_client = KmsClient::with_environment(&c, &stranger).unwrap();
    let answer = static_client
        .call("CreateKey", &json!({ "Description": "pci-vault signed" }))
        .await
        .unwrap();
    let key = answer["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();

    http(
        &base,
        "POST",
        "/moto-api/reset-auth",
        &[("Content-Type", "text/plain")],
        "1",
    );
    let scratch = Scratch::new("signed");
    write_token(&scratch, "eyJhbGciOiJSUzI1NiJ9.pod-token.sig");
    let env = web_identity_env(&scratch, &session_name("signed"))
        .with(
            "AWS_ROLE_ARN",
            format!("arn:aws:iam::123456789012:role/{role}"),
        )
        .with("AWS_ENDPOINT_URL_STS", base.as_str());
    let mut kms = c.clone();
    kms.key = key.clone();
    let provider = AwsKmsProvider::connect_with_environment(kms.clone(), &env)
        .await
        .unwrap();
    let dek = DataKey::generate();
    let wrapped = provider.wrap(&dek, b"aad").await.unwrap();
    let unwrapped = provider.unwrap(&wrapped, b"aad").await.unwrap();
    assert_eq!(unwrapped.expose_secret(), dek.expose_secret());

    let err = static_client
        .call("DescribeKey", &json!({ "KeyId": key }))
        .await
        .unwrap_err();
    // moto answers its refusals in XML, without the JSON exception name KMS gives.
    let text = err.to_string();
    assert!(text.contains("DescribeKey refused"), "{text}");
    assert!(text.contains("(HTTP 403)"), "{text}");
    provider
        .client()
        .call("DescribeKey", &json!({ "KeyId": key }))
        .await
        .unwrap();

    // The role's policy is what allows: an action it does not list is refused.
    let err = provider
        .client()
        .call("CreateKey", &json!({}))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("CreateKey refused"), "{text}");
    assert!(text.contains("(HTTP 403)"), "{text}");

    // A second client has no credentials yet, and moto refuses its unsigned STS call
    // (with a server error and no XML, which the provider reports without the token).
    let err = AwsKmsProvider::connect_with_environment(kms, &env)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("STS AssumeRoleWithWebIdentity refused"),
        "{text}"
    );
    assert!(!text.contains("pod-token"), "{text}");

    http(
        &base,
        "POST",
        "/moto-api/reset-auth",
        &[("Content-Type", "text/plain")],
        "inf",
    );
}
