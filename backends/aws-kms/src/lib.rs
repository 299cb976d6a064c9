#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod answer;
mod client;
mod config;
mod credentials;
mod environment;
mod web_identity;

use std::fmt;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use pci_vault::{DataKey, Error, KeyId, KeyProvider, Result, WrappedKey};
use serde_json::{Value, json};
use zeroize::Zeroizing;

pub use client::KmsClient;
pub use config::AwsKmsConfig;
pub use environment::AwsEnvironment;

/// The encryption context key that carries the vault's associated data (base64).
pub const CONTEXT_KEY: &str = "pci-vault:aad";

/// A key provider whose key-encryption key is an AWS KMS key: data keys are sent to KMS
/// `Encrypt` and `Decrypt`, with the vault's associated data as the encryption context.
/// The KMS key never leaves KMS.
///
/// The primary is resolved once at open (`DescribeKey`), so an alias that moves later
/// takes effect at the next open; records carry the key's id. `unwrap` accepts the primary
/// and the configured previous key ids only, and names the key in `Decrypt`, so KMS never
/// tries another key either.
pub struct AwsKmsProvider {
    client: KmsClient,
    primary: KeyId,
    /// The primary's ARN, which calls name it by: AWS finds a key of another account only
    /// by its ARN (records keep the shorter key id).
    primary_arn: String,
    previous: Vec<KeyId>,
}

impl AwsKmsProvider {
    /// Builds the client and resolves the primary key with `DescribeKey`: it must exist,
    /// be enabled and be a symmetric encryption key.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` for a malformed endpoint; `KEY_UNAVAILABLE` when no region or
    /// credentials are found, KMS cannot be reached, or the key is missing, disabled or of
    /// another kind (the message names KMS's answer, never a credential).
    pub async fn connect(config: AwsKmsConfig) -> Result<Self> {
        Self::connect_with_environment(config, &AwsEnvironment::from_process()).await
    }

    /// As [`AwsKmsProvider::connect`], with the region and credentials of `environment`
    /// instead of the process's environment variables.
    ///
    /// # Errors
    /// As [`AwsKmsProvider::connect`].
    pub async fn connect_with_environment(
        config: AwsKmsConfig,
        environment: &AwsEnvironment,
    ) -> Result<Self> {
        let client = KmsClient::with_environment(&config, environment)?;
        let described = client
            .call("DescribeKey", &json!({ "KeyId": config.key }))
            .await?;
        let metadata = described
            .get("KeyMetadata")
            .ok_or_else(|| Error::key_unavailable("AWS KMS DescribeKey: no KeyMetadata"))?;
        let field = |name: &str| metadata.get(name).and_then(Value::as_str).unwrap_or("");
        if field("KeyState") != "Enabled" {
            return Err(Error::key_unavailable(format!(
                "AWS KMS key {} is {}, not Enabled",
                config.key,
                field("KeyState")
            )));
        }
        // A SYMMETRIC_DEFAULT key is always an ENCRYPT_DECRYPT key; KeyUsage is checked
        // where the answer has it.
        let usage = metadata.get("KeyUsage").and_then(Value::as_str);
        if field("KeySpec") != "SYMMETRIC_DEFAULT" || usage.is_some_and(|u| u != "ENCRYPT_DECRYPT")
        {
            return Err(Error::key_unavailable(format!(
                "AWS KMS key {} is not a symmetric encryption key (SYMMETRIC_DEFAULT, \
                 ENCRYPT_DECRYPT)",
                config.key
            )));
        }
        let primary = KeyId::new(field("KeyId")).map_err(|_| {
            Error::key_unavailable("AWS KMS DescribeKey answered a key id this vault cannot store")
        })?;
        let primary_arn = match field("Arn") {
            "" => primary.as_str().to_owned(),
            arn => arn.to_owned(),
        };
        Ok(AwsKmsProvider {
            client,
            primary,
            primary_arn,
            previous: config.previous,
        })
    }

    /// The id of the KMS key that wraps new data keys.
    pub fn primary(&self) -> &KeyId {
        &self.primary
    }

    /// The client, for calls the provider does not make (creating keys in tests and
    /// tools).
    pub fn client(&self) -> &KmsClient {
        &self.client
    }
}

fn context(aad: &[u8]) -> Value {
    json!({ CONTEXT_KEY: STANDARD.encode(aad) })
}

/// The key id of a KMS answer's `KeyId` (an ARN, `arn:…:key/ID`, or the id).
fn answered_key(answer: &Value) -> Option<&str> {
    let key = answer.get("KeyId")?.as_str()?;
    Some(key.rsplit('/').next().unwrap_or(key))
}

#[async_trait]
impl KeyProvider for AwsKmsProvider {
    async fn wrap(&self, dek: &DataKey, aad: &[u8]) -> Result<WrappedKey> {
        let plaintext = Zeroizing::new(STANDARD.encode(dek.expose_secret()));
        let request = json!({
            "KeyId": self.primary_arn,
            "Plaintext": plaintext.as_str(),
            "EncryptionContext": context(aad),
        });
        let answer = self.client.call("Encrypt", &request).await;
        wipe(request);
        let answer = answer?;
        if answered_key(&answer) != Some(self.primary.as_str()) {
            return Err(Error::key_unavailable(
                "AWS KMS Encrypt answered for another key than the one asked",
            ));
        }
        let ciphertext = answer
            .get("CiphertextBlob")
            .and_then(Value::as_str)
            .and_then(|b| STANDARD.decode(b).ok())
            .filter(|c| !c.is_empty() && c.len() <= WrappedKey::MAX_CIPHERTEXT_LEN)
            .ok_or_else(|| Error::key_unavailable("AWS KMS Encrypt: no usable CiphertextBlob"))?;
        Ok(WrappedKey {
            key_id: self.primary.clone(),
            ciphertext,
        })
    }

    async fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<DataKey> {
        let id = &wrapped.key_id;
        if *id != self.primary && !self.previous.contains(id) {
            return Err(Error::key_unavailable(format!(
                "key id {:?} is neither the primary nor a previous key of this AWS KMS key source",
                id.as_str()
            )));
        }
        let named = if *id == self.primary {
            self.primary_arn.as_str()
        } else {
            id.as_str()
        };
        let request = json!({
            "KeyId": named,
            "CiphertextBlob": STANDARD.encode(&wrapped.ciphertext),
            "EncryptionContext": context(aad),
        });
        let answer = match self.client.call_raw("Decrypt", &request).await {
            Ok(answer) => answer,
            // The ciphertext or its context does not authenticate, or it was made under
            // another key than the record names: the record was altered.
            Err(e)
                if matches!(
                    e.kind.as_deref(),
                    Some("InvalidCiphertextException" | "IncorrectKeyException")
                ) =>
            {
                return Err(Error::IntegrityError);
            }
            Err(e) => return Err(e.into_error()),
        };
        if answered_key(&answer) != Some(id.as_str()) {
            // The answer holds the clear data key all the same.
            wipe(answer);
            return Err(Error::IntegrityError);
        }
        let plaintext = Zeroizing::new(
            answer
                .get("Plaintext")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_default(),
        );
        wipe(answer);
        let bytes = Zeroizing::new(
            STANDARD
                .decode(plaintext.as_bytes())
                .map_err(|_| Error::IntegrityError)?,
        );
        DataKey::from_slice(&bytes)
    }
}

/// Overwrites the strings of a JSON value before it is dropped.
fn wipe(mut value: Value) {
    fn walk(value: &mut Value) {
        match value {
            Value::String(s) => zeroize::Zeroize::zeroize(s),
            Value::Array(items) => items.iter_mut().for_each(walk),
            Value::Object(map) => map.values_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
}

impl fmt::Debug for AwsKmsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKmsProvider")
            .field("client", &self.client)
            .field("primary", &self.primary)
            .field("primary_arn", &self.primary_arn)
            .field("previous", &self.previous)
            .finish()
    }
}
