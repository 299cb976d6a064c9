//! `Vault.open` and `createSession` options: read from JavaScript into the one
//! `VaultConfig` and `SessionOverrides`, which check the values.
//!
//! The structs with `#[napi(object)]` here only declare the option types in `index.d.ts`
//! (their fields are never read). The values are read by hand with [`crate::args`], so
//! that a wrong type never produces a message that quotes the value (key material, a card
//! number in metadata).

use std::path::PathBuf;
use std::sync::Arc;

use napi::bindgen_prelude::{Buffer, JsValue, Object, Unknown};
use napi_derive::napi;
use pci_vault::{FormSpec, Metadata, SessionOptions, SessionOverrides};
use pci_vault_config::{KeySource, StoreConfig, StoreSettings, VaultConfig, inline_keyring};

use crate::args::{self, Arg};
use crate::audit::{AuditProgress, JsAuditSink};
use crate::errors::Failure;

/// Options of `Vault.open`.
#[napi(object, object_from_js = false, object_to_js = false)]
#[expect(dead_code, reason = "declares the option type in index.d.ts only")]
pub(crate) struct VaultOptions {
    /// Where sessions are kept. `'memory'` (the default) keeps them in this process only;
    /// a `redis://` or `rediss://` URL (or several, comma-separated, for a cluster) shares
    /// them with every process on the same Redis. An object gives every setting.
    #[napi(ts_type = "'memory' | string | StoreOptions")]
    pub store: Option<String>,
    /// Where the key-encryption keys come from. Required.
    pub keys: KeyOptions,
    /// The options every `createSession` starts from.
    pub session_defaults: Option<SessionDefaults>,
    /// The tenant the agent-side methods act for (1–64 characters of `A-Z a-z 0-9 . _ -`).
    /// Default `'default'`. Another tenant's sessions answer `NOT_FOUND`.
    pub tenant: Option<String>,
    /// 32 bytes that key the session references in audit events. Give every process of a
    /// deployment the same key so their events match. Default: random per vault.
    pub audit_key: Option<Buffer>,
    /// Receives every audit event (created, submitted, revealed or not, locked, cancelled),
    /// on the JavaScript thread, soon after the change it reports is stored. Write them to
    /// your audit trail. Without it, events are dropped. Exceptions it throws, and the
    /// rejection of a Promise it returns, are ignored.
    #[napi(ts_type = "(event: AuditRecord) => void")]
    pub on_audit: Option<String>,
}

/// Every store setting. `type` says which store; the other properties belong to it.
#[napi(object, object_from_js = false, object_to_js = false)]
#[expect(dead_code, reason = "declares the option type in index.d.ts only")]
pub(crate) struct StoreOptions {
    /// `'memory'` or `'redis'`.
    #[napi(ts_type = "'memory' | 'redis'")]
    pub r#type: String,
    /// Memory: most live sessions (default 100,000). Beyond it `createSession` answers
    /// `CAPACITY_EXCEEDED`.
    pub max_entries: Option<u32>,
    /// Memory: most bytes of stored records (default 256 MiB).
    pub max_bytes: Option<f64>,
    /// Redis: one URL (`redis://user:password@host:port`, `rediss://` for TLS), or the
    /// seed nodes of a cluster.
    #[napi(ts_type = "string | string[]")]
    pub url: Option<String>,
    /// Redis: whether the URLs name a Redis Cluster. Default: true when there are several.
    pub cluster: Option<bool>,
    /// Redis: prefix of every key (default `pci-vault:`); at most 64 printable ASCII
    /// characters without `{` or `}`.
    pub key_prefix: Option<String>,
    /// Redis: longest wait for one operation, 1–60,000 ms (default 2,000).
    pub timeout_ms: Option<u32>,
    /// Redis: longest wait to connect at `open`, 1–60,000 ms (default 5,000).
    pub connect_timeout_ms: Option<u32>,
    /// Redis over TLS: a PEM file of the CA(s) that sign the server certificate, instead of
    /// the system roots.
    pub ca_file: Option<String>,
    /// Redis over TLS: a PEM client certificate for mutual TLS (with `clientKeyFile`).
    pub client_cert_file: Option<String>,
    /// Redis over TLS: the PEM private key of `clientCertFile`.
    pub client_key_file: Option<String>,
    /// Redis (single node or Sentinel): replicas that must acknowledge every write, 1–64.
    /// A write they do not acknowledge in time answers `STORE_UNAVAILABLE`. Default: none.
    pub min_replicas: Option<u32>,
    /// With `minReplicas`: longest wait for them, in ms, shorter than `timeoutMs`
    /// (default 500).
    pub min_replicas_timeout_ms: Option<u32>,
}

/// Where the key-encryption keys come from: exactly one of the properties.
#[napi(object, object_from_js = false, object_to_js = false)]
#[expect(dead_code, reason = "declares the option type in index.d.ts only")]
pub(crate) struct KeyOptions {
    /// The keys themselves: `[{ id, key }]` with 32-byte `Buffer`s, the first one primary
    /// (it wraps new sessions; the others only unwrap). Or a keyring text:
    /// `'k2:<base64>,k1:<base64>'`, the first entry primary.
    #[napi(ts_type = "KeyringEntry[] | string")]
    pub keyring: Option<Vec<KeyringEntry>>,
    /// The name of an environment variable holding a keyring text (e.g. `PCI_VAULT_KEYS`).
    pub env: Option<String>,
    /// A keyring text file, reloaded when it changes (a Kubernetes secret key).
    pub file: Option<String>,
    /// A directory with one file per key plus a `primary` file (a Kubernetes secret
    /// mount), reloaded when it changes.
    pub directory: Option<String>,
    /// `true`: a random key for this process only. Sessions cannot be opened by another
    /// process or after a restart. For development and tests.
    pub development: Option<bool>,
    /// A key-source string, as the server's `--key-source` takes it: `development`,
    /// `env:VAR`, `file:PATH`, `dir:PATH`, `pkcs11:module=…;token=…;key=…;pin-file=…` (an
    /// HSM) or `aws-kms:key=…;region=…` (AWS KMS). See docs/KEYS.md.
    pub source: Option<String>,
    /// Your own KMS or HSM client: `wrap(dataKey, aad)` resolves to `{ keyId, ciphertext }`,
    /// `unwrap({ keyId, ciphertext }, aad)` to the 32-byte data key (or `null` when the
    /// ciphertext or `aad` does not authenticate). A call that throws, rejects or takes
    /// longer than `timeoutMs` is `KEY_UNAVAILABLE`. Wipe `dataKey` with `fill(0)` when done.
    #[napi(ts_type = "KeyProvider")]
    pub provider: Option<String>,
    /// With `provider`: longest wait for one call, 1–60,000 ms (default 5,000).
    pub timeout_ms: Option<u32>,
}

/// One key-encryption key.
#[napi(object, object_from_js = false, object_to_js = false)]
#[expect(dead_code, reason = "declares the option type in index.d.ts only")]
pub(crate) struct KeyringEntry {
    /// The key id (1–64 characters of `A-Z a-z 0-9 . _ : / -`), stored with each session.
    pub id: String,
    /// 32 bytes of key material. The vault copies them; wipe yours with `key.fill(0)`.
    pub key: Buffer,
}

/// Defaults for `createSession`, and the options it takes.
#[napi(object, object_from_js = false, object_to_js = false)]
#[expect(dead_code, reason = "declares the option type in index.d.ts only")]
pub(crate) struct SessionDefaults {
    /// How long the link and any data live, in whole seconds: 1 to 86,400 (default 900).
    pub ttl_seconds: Option<u32>,
    /// Digits in the PIN: 4–12 (default 6).
    pub pin_length: Option<u32>,
    /// Wrong PINs allowed before the session locks and its data is destroyed: 1–10
    /// (default 5).
    pub max_attempts: Option<u32>,
    /// The fields the form asks for, 1–32 names of `a-z 0-9 _` (default `card_number`,
    /// `expiry`, `cvc`, `cardholder_name`). Names other than those four are text fields.
    pub fields: Option<Vec<String>>,
}

/// Options of `createSession`; each missing one comes from the vault's `sessionDefaults`.
#[napi(object, object_from_js = false, object_to_js = false)]
#[expect(dead_code, reason = "declares the option type in index.d.ts only")]
pub(crate) struct CreateSessionOptions {
    /// How long the link and any data live, in whole seconds: 1 to 86,400.
    pub ttl_seconds: Option<u32>,
    /// Digits in the PIN: 4–12.
    pub pin_length: Option<u32>,
    /// Wrong PINs allowed before the session locks: 1–10.
    pub max_attempts: Option<u32>,
    /// The fields the form asks for.
    pub fields: Option<Vec<String>>,
    /// Non-secret labels (a conversation id, an order number): at most 16 entries, keys of
    /// 1–64 bytes, string values of at most 256 bytes, no control characters, no card
    /// numbers, no `__proto__` key.
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
}

/// Reads `Vault.open`'s argument into the vault's configuration, and the progress of the
/// `onAudit` callback when there is one.
pub(crate) fn read_config(value: Unknown<'_>) -> Arg<(VaultConfig, Option<Arc<AuditProgress>>)> {
    let options = args::object(value, "options")?;
    args::only_known(
        &options,
        "options",
        &[
            "store",
            "keys",
            "sessionDefaults",
            "tenant",
            "auditKey",
            "onAudit",
        ],
    )?;
    let store = match args::property(&options, "store")? {
        None => StoreConfig::default(),
        Some(store) => read_store(store)?,
    };
    let keys = match args::property(&options, "keys")? {
        None => {
            return Err(Failure::type_error(
                "options.keys",
                "given: { keyring }, { env }, { file }, { directory } or { development: true }",
            ));
        }
        Some(keys) => read_keys(keys)?,
    };
    let mut config = VaultConfig::new(store, keys);
    if let Some(value) = args::property(&options, "sessionDefaults")? {
        let object = args::object(value, "options.sessionDefaults")?;
        config.session_defaults = read_overrides(&object, "options.sessionDefaults", false)?;
    }
    config.tenant = args::property(&options, "tenant")?
        .map(|value| args::string(value, "options.tenant"))
        .transpose()?;
    config.audit_key = args::property(&options, "auditKey")?
        .map(|value| args::bytes(value, "options.auditKey", "a Buffer of 32 bytes"))
        .transpose()?;
    let sink = args::property(&options, "onAudit")?
        .map(JsAuditSink::read)
        .transpose()?;
    let progress = sink.as_ref().map(JsAuditSink::progress);
    config.audit_sink = sink.map(|sink| Arc::new(sink) as Arc<dyn pci_vault::AuditSink>);
    Ok((config, progress))
}

fn read_store(value: Unknown<'_>) -> Arg<StoreConfig> {
    const NAME: &str = "options.store";
    if value.get_type()? == napi::ValueType::String {
        return Ok(StoreConfig::parse(&args::string(value, NAME)?)?);
    }
    let object = args::object(value, NAME)?;
    let kind = match args::property(&object, "type")? {
        Some(kind) => args::string(kind, "options.store.type")?,
        None => String::new(),
    };
    let known: &[&str] = match kind.as_str() {
        "memory" => &["type", "maxEntries", "maxBytes"],
        "redis" => &[
            "type",
            "url",
            "cluster",
            "keyPrefix",
            "timeoutMs",
            "connectTimeoutMs",
            "caFile",
            "clientCertFile",
            "clientKeyFile",
            "minReplicas",
            "minReplicasTimeoutMs",
        ],
        _ => {
            return Err(Failure::type_error(
                "options.store.type",
                "'memory' or 'redis'",
            ));
        }
    };
    args::only_known(&object, NAME, known)?;
    let store = if kind == "memory" {
        StoreConfig::default()
    } else {
        StoreConfig::redis(redis_urls(&object)?)
    };
    let whole = |key: &str| -> Arg<Option<u64>> {
        args::property(&object, key)?
            .map(|value| args::whole(value, &format!("{NAME}.{key}")))
            .transpose()
    };
    let path = |key: &str| -> Arg<Option<PathBuf>> {
        args::property(&object, key)?
            .map(|value| file_path(value, &format!("{NAME}.{key}")))
            .transpose()
    };
    let mut settings = StoreSettings::new();
    settings.max_entries = whole("maxEntries")?;
    settings.max_bytes = whole("maxBytes")?;
    settings.cluster = args::property(&object, "cluster")?
        .map(|value| args::boolean(value, "options.store.cluster"))
        .transpose()?;
    settings.key_prefix = args::property(&object, "keyPrefix")?
        .map(|value| args::string(value, "options.store.keyPrefix"))
        .transpose()?;
    settings.timeout_ms = whole("timeoutMs")?;
    settings.connect_timeout_ms = whole("connectTimeoutMs")?;
    settings.ca_file = path("caFile")?;
    settings.client_cert_file = path("clientCertFile")?;
    settings.client_key_file = path("clientKeyFile")?;
    settings.min_replicas = whole("minReplicas")?;
    settings.min_replicas_timeout_ms = whole("minReplicasTimeoutMs")?;
    Ok(settings.apply(store)?)
}

/// `url`: one URL, or an array of them (several are cluster seeds).
fn redis_urls(object: &Object<'_>) -> Arg<Vec<String>> {
    match args::property(object, "url")? {
        None => Err(Failure::type_error(
            "options.store.url",
            "a string or an array of strings",
        )),
        Some(value) if value.is_array()? => {
            args::array(value, "options.store.url", 1024, "at most 1024 Redis URLs")?
                .into_iter()
                .map(|url| args::string(url, "options.store.url[]"))
                .collect()
        }
        Some(value) => Ok(vec![args::string(value, "options.store.url")?]),
    }
}

fn read_keys(value: Unknown<'_>) -> Arg<KeySource> {
    const NAME: &str = "options.keys";
    const SOURCES: [&str; 7] = [
        "keyring",
        "env",
        "file",
        "directory",
        "development",
        "source",
        "provider",
    ];
    let object = args::object(value, NAME)?;
    args::only_known(&object, NAME, &[&SOURCES[..], &["timeoutMs"]].concat())?;
    let timeout = args::property(&object, "timeoutMs")?;
    if timeout.is_some() && args::property(&object, "provider")?.is_none() {
        return Err(Failure::invalid(
            "options.keys.timeoutMs goes with options.keys.provider",
        ));
    }
    let mut given = Vec::new();
    for source in SOURCES {
        if let Some(value) = args::property(&object, source)? {
            given.push((source, value));
        }
    }
    let mut given = given.into_iter();
    let (Some((source, value)), None) = (given.next(), given.next()) else {
        return Err(Failure::type_error(
            NAME,
            "exactly one of keyring, env, file, directory, development, source, provider",
        ));
    };
    Ok(match source {
        "keyring" if value.get_type()? == napi::ValueType::String => {
            let text = args::secret_string(value, "options.keys.keyring")?;
            KeySource::Keyring(pci_vault_keys::parse_keyring(&text)?)
        }
        "keyring" => read_keyring(value)?,
        "env" => KeySource::env(args::string(value, "options.keys.env")?)?,
        "file" => KeySource::File(file_path(value, "options.keys.file")?),
        "directory" => KeySource::Directory(file_path(value, "options.keys.directory")?),
        "source" => KeySource::parse(&args::string(value, "options.keys.source")?)?,
        "provider" => crate::key_provider::key_source(value, timeout)?,
        _ => {
            if !args::boolean(value, "options.keys.development")? {
                return Err(Failure::type_error("options.keys.development", "true"));
            }
            KeySource::Development
        }
    })
}

/// A file system path. Checked here because the messages of the key source and the Redis
/// TLS setup name the path.
fn file_path(value: Unknown<'_>, name: &str) -> Arg<PathBuf> {
    let text = args::string(value, name)?;
    if text.is_empty() || text.len() > 4096 || text.contains('\0') {
        return Err(Failure::invalid(
            "a path is 1-4096 bytes without NUL characters",
        ));
    }
    Ok(PathBuf::from(text))
}

/// `[{ id, key }]`, the first entry primary.
fn read_keyring(value: Unknown<'_>) -> Arg<KeySource> {
    const NAME: &str = "options.keys.keyring[]";
    let entries = args::array(
        value,
        "options.keys.keyring",
        1024,
        "a keyring has at most 1024 keys",
    )?;
    let mut keys = Vec::with_capacity(entries.len());
    for entry in entries {
        let entry = args::object(entry, NAME)?;
        args::only_known(&entry, NAME, &["id", "key"])?;
        let id = args::property(&entry, "id")?
            .ok_or_else(|| Failure::type_error("options.keys.keyring[].id", "a string"))?;
        let id = args::string(id, "options.keys.keyring[].id")?;
        let key = args::property(&entry, "key")?.ok_or_else(|| {
            Failure::type_error("options.keys.keyring[].key", "a Buffer of 32 bytes")
        })?;
        keys.push((
            id,
            args::bytes(key, "options.keys.keyring[].key", "a Buffer of 32 bytes")?,
        ));
    }
    Ok(inline_keyring(keys)?)
}

/// Reads `createSession` options over `base` (the vault's defaults).
pub(crate) fn read_create_options(
    value: Option<Unknown<'_>>,
    base: &SessionOptions,
) -> Arg<SessionOptions> {
    let Some(value) = value else {
        return Ok(base.clone());
    };
    if args::is_absent(&value)? {
        return Ok(base.clone());
    }
    let object = args::object(value, "options")?;
    Ok(read_overrides(&object, "options", true)?.apply(base)?)
}

/// Session options as given; `SessionOverrides::apply` checks them.
fn read_overrides(object: &Object<'_>, name: &str, with_metadata: bool) -> Arg<SessionOverrides> {
    let known: &[&str] = if with_metadata {
        &[
            "ttlSeconds",
            "pinLength",
            "maxAttempts",
            "fields",
            "metadata",
        ]
    } else {
        &["ttlSeconds", "pinLength", "maxAttempts", "fields"]
    };
    args::only_known(object, name, known)?;
    let whole = |key: &str| -> Arg<Option<u64>> {
        args::property(object, key)?
            .map(|value| args::whole(value, &format!("{name}.{key}")))
            .transpose()
    };
    let mut overrides = SessionOverrides::new();
    overrides.ttl_seconds = whole("ttlSeconds")?;
    overrides.pin_length = whole("pinLength")?;
    overrides.max_attempts = whole("maxAttempts")?;
    if let Some(value) = args::property(object, "fields")? {
        let names = args::array(
            value,
            &format!("{name}.fields"),
            FormSpec::MAX_FIELDS,
            "a form has 1-32 fields",
        )?
        .into_iter()
        .map(|field| args::string(field, &format!("{name}.fields[]")))
        .collect::<Arg<Vec<String>>>()?;
        overrides.fields = Some(names);
    }
    if let Some(value) = args::property(object, "metadata")?
        && with_metadata
    {
        overrides.metadata = Some(read_metadata(value, &format!("{name}.metadata"))?);
    }
    Ok(overrides)
}

fn read_metadata(value: Unknown<'_>, name: &str) -> Arg<Vec<(String, String)>> {
    let object = args::object(value, name)?;
    let mut pairs = Vec::new();
    for (key, value) in args::entries(
        &object,
        Metadata::MAX_ENTRIES,
        "metadata has at most 16 entries",
    )? {
        // `__proto__` cannot come back as an ordinary property of a plain object: refused
        // here rather than lost (or worse, merged into a prototype) by a consumer.
        if key == "__proto__" {
            return Err(Failure::invalid("metadata must not have the key __proto__"));
        }
        let text = args::string(value, &args::property_name(name, &key))?;
        pairs.push((key, text));
    }
    Ok(pairs)
}
