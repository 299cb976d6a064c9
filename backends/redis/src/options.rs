//! How to reach Redis.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use pci_vault::{Error, Result};

/// Connection options for [`RedisStore::connect`](crate::RedisStore::connect).
///
/// URLs are `redis://` or `rediss://` (TLS, verified against the system roots or
/// [`ca_file`](Self::ca_file)), with an ACL user and password as
/// `redis://user:password@host:port`. With [`sentinel`](Self::sentinel) set they name
/// Redis Sentinels, which tell the store where the primary is. `Debug` never shows a
/// password.
///
/// Start from [`RedisOptions::new`], [`cluster`](Self::cluster),
/// [`sentinel`](Self::sentinel) or [`from_list`](Self::from_list) and change what differs
/// with the `with_*` methods: new options may be added.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisOptions {
    /// One URL for a single node; the seed nodes of a cluster when [`cluster`](Self::cluster)
    /// is set; the sentinels when [`sentinel`](Self::sentinel) is set.
    pub urls: Vec<String>,
    /// Whether the URLs name a Redis Cluster.
    pub cluster: bool,
    /// The primary to find through the Redis Sentinels that the URLs name, and how to log
    /// in to it; `None` for a single node or a cluster.
    pub sentinel: Option<SentinelOptions>,
    /// Prefix of every key the store writes. Default `pci-vault:`. At most 64 printable ASCII
    /// characters, without `{` or `}` (the store adds its own hash tag).
    pub key_prefix: String,
    /// Longest wait for any one operation. Default 2 s.
    pub timeout: Duration,
    /// Longest wait to connect and check the server at start. Default 5 s.
    pub connect_timeout: Duration,
    /// A PEM file of the CA(s) that sign the server's certificate, instead of the system
    /// roots (`rediss://` only).
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate and key for mutual TLS (`rediss://` only).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Replicas that must acknowledge every write before it counts (`WAIT`); `None` (the
    /// default) counts a write once the primary applied it. Not available on a cluster.
    pub min_replicas: Option<MinReplicas>,
}

/// The primary that Redis Sentinel watches, and how to log in to it (see
/// [`RedisOptions::sentinel`]).
///
/// The store asks the sentinels for the primary of [`master_name`](Self::master_name),
/// checks that it is a primary (`ROLE`), and keeps one connection to it. A connection error,
/// a timeout or a `READONLY` reply (the node was demoted) ends that connection: the call
/// that saw it answers `STORE_UNAVAILABLE`, and the next call asks the sentinels again. The
/// data nodes use TLS when the sentinel URLs do (`rediss://`), with the same
/// [`ca_file`](RedisOptions::ca_file) and [`client_cert`](RedisOptions::client_cert).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SentinelOptions {
    /// The master (service) name the sentinels monitor, e.g. `mymaster`.
    pub master_name: String,
    /// The ACL user on the primary and replicas; `None` for the default user.
    pub username: Option<String>,
    /// The password on the primary and replicas. The sentinels' own user and password,
    /// if any, go in their URLs.
    pub password: Option<String>,
}

impl SentinelOptions {
    /// The primary monitored as `master_name`, logged in to as the default user without a
    /// password.
    pub fn new(master_name: impl Into<String>) -> Self {
        SentinelOptions {
            master_name: master_name.into(),
            username: None,
            password: None,
        }
    }

    /// Logs in to the primary as `username` (`None`: the default user) with `password`.
    #[must_use]
    pub fn with_auth(mut self, username: Option<String>, password: impl Into<String>) -> Self {
        self.username = username;
        self.password = Some(password.into());
        self
    }
}

impl fmt::Debug for SentinelOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelOptions")
            .field("master_name", &self.master_name)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// How many replicas must acknowledge a write, and how long to wait for them (see
/// [`RedisOptions::min_replicas`]).
///
/// Every write (`create`, `replace`, `delete`, `claim`) travels in one pipeline with
/// `WAIT count timeout`: no extra round trip. When fewer than `count` replicas acknowledge
/// within `timeout`, the write answers `STORE_UNAVAILABLE` — it did apply on the primary,
/// and the vault repeats it (writes are idempotent) until the replicas have it or its
/// outcome is reported as unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MinReplicas {
    /// Replicas that must acknowledge, 1 to 64.
    pub count: u32,
    /// Longest wait for them, 1 ms up to (not including) the store's operation
    /// [`timeout`](RedisOptions::timeout).
    pub timeout: Duration,
}

impl MinReplicas {
    /// `count` replicas within `timeout`.
    pub fn new(count: u32, timeout: Duration) -> Self {
        MinReplicas { count, timeout }
    }

    /// The `timeout` in whole milliseconds, as `WAIT` takes it (at least 1: `WAIT n 0`
    /// would block forever).
    pub(crate) fn timeout_ms(self) -> u64 {
        u64::try_from(self.timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

impl RedisOptions {
    /// Default key prefix.
    pub const DEFAULT_KEY_PREFIX: &'static str = "pci-vault:";
    /// Default operation timeout.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
    /// Default connect timeout.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

    /// A single node at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisOptions {
            urls: vec![url.into()],
            cluster: false,
            sentinel: None,
            key_prefix: Self::DEFAULT_KEY_PREFIX.to_owned(),
            timeout: Self::DEFAULT_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            ca_file: None,
            client_cert: None,
            min_replicas: None,
        }
    }

    /// A cluster reached through `seeds`.
    pub fn cluster<S: Into<String>>(seeds: impl IntoIterator<Item = S>) -> Self {
        RedisOptions {
            urls: seeds.into_iter().map(Into::into).collect(),
            cluster: true,
            ..RedisOptions::new("")
        }
    }

    /// A primary found through the Redis Sentinels at `sentinels` (`redis://host:26379` or
    /// `rediss://...`, with the sentinels' own `user:password@` if they require one), which
    /// monitor it as `master_name`.
    pub fn sentinel<S: Into<String>>(
        sentinels: impl IntoIterator<Item = S>,
        master_name: impl Into<String>,
    ) -> Self {
        RedisOptions {
            urls: sentinels.into_iter().map(Into::into).collect(),
            sentinel: Some(SentinelOptions::new(master_name)),
            ..RedisOptions::new("")
        }
    }

    /// These options with every key under `prefix`.
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// These options with `timeout` as the longest wait for one operation.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// These options with `timeout` as the longest wait to connect at start.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// These options trusting the CA(s) of the PEM file `path` (`rediss://` only).
    #[must_use]
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// These options presenting the PEM client certificate `cert` with its key `key`
    /// (mutual TLS, `rediss://` only).
    #[must_use]
    pub fn with_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert = Some((cert.into(), key.into()));
        self
    }

    /// These options waiting for `min` replicas on every write.
    #[must_use]
    pub fn with_min_replicas(mut self, min: MinReplicas) -> Self {
        self.min_replicas = Some(min);
        self
    }

    /// A comma-separated list: one URL is a single node, several are cluster seeds. A list
    /// that starts with `redis+sentinel://` or `rediss+sentinel://` is one Sentinel URL:
    /// `redis+sentinel://[user:password@]host:port[,host:port...]/master_name`, where the
    /// hosts are the sentinels and the user and password are those of the primary and its
    /// replicas.
    pub fn from_list(list: &str) -> Self {
        let list = list.trim();
        if let Some(options) = Self::from_sentinel_url(list) {
            return options;
        }
        let urls: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        if urls.len() > 1 {
            RedisOptions::cluster(urls)
        } else {
            RedisOptions::new(urls.first().copied().unwrap_or_default())
        }
    }

    /// Parses a `redis+sentinel://` or `rediss+sentinel://` URL; `None` for another
    /// scheme. A malformed one gives options that [`validate`](Self::validate) refuses.
    fn from_sentinel_url(url: &str) -> Option<Self> {
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            ("redis", rest)
        } else {
            ("rediss", url.strip_prefix("rediss+sentinel://")?)
        };
        // The credentials end at the last `@`: a password that is not percent-encoded may
        // hold a `/`, which must not be taken for the start of the master's name.
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((auth, rest)) => (Some(auth), rest),
            None => (None, rest),
        };
        let (hosts, master_name) = rest.split_once('/').unwrap_or((rest, ""));
        let sentinels = hosts
            .split(',')
            .map(str::trim)
            .map(|host| {
                if host.is_empty() {
                    String::new() // refused by validate
                } else {
                    format!("{scheme}://{host}")
                }
            })
            .collect::<Vec<_>>();
        let mut options = RedisOptions::sentinel(sentinels, master_name.trim_end_matches('/'));
        if let (Some(auth), Some(sentinel)) = (auth, options.sentinel.as_mut()) {
            let (user, password) = auth.split_once(':').unwrap_or(("", auth));
            sentinel.username = (!user.is_empty()).then(|| user.to_owned());
            sentinel.password = (!password.is_empty()).then(|| password.to_owned());
        }
        Some(options)
    }

    /// Whether the connection uses TLS.
    pub fn is_tls(&self) -> bool {
        self.urls.iter().any(|u| u.starts_with("rediss://"))
    }

    /// The URLs, passwords replaced by `***`, comma-separated: for messages.
    pub(crate) fn redacted_urls(&self) -> String {
        let urls = self
            .urls
            .iter()
            .map(|u| redact_url(u))
            .collect::<Vec<_>>()
            .join(", ");
        match &self.sentinel {
            Some(sentinel) => format!(
                "the primary \"{}\" of the sentinels {urls}",
                sentinel.master_name
            ),
            None => urls,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.urls.is_empty() || self.urls.iter().any(|u| u.is_empty()) {
            return Err(Error::InvalidArgument("a Redis URL is required"));
        }
        if let Some(sentinel) = &self.sentinel {
            if self.cluster {
                return Err(Error::InvalidArgument(
                    "Sentinel and Redis Cluster are exclusive: set one of them",
                ));
            }
            let name_ok = (1..=128).contains(&sentinel.master_name.len())
                && sentinel
                    .master_name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'/' && b != b',');
            if !name_ok {
                return Err(Error::InvalidArgument(
                    "a Sentinel master name is 1-128 printable ASCII characters",
                ));
            }
        } else if !self.cluster && self.urls.len() > 1 {
            return Err(Error::InvalidArgument(
                "several Redis URLs name a cluster: set cluster",
            ));
        }
        let tls = self
            .urls
            .iter()
            .filter(|u| u.starts_with("rediss://"))
            .count();
        let plain = self
            .urls
            .iter()
            .filter(|u| u.starts_with("redis://"))
            .count();
        if tls + plain != self.urls.len() {
            return Err(Error::InvalidArgument(
                "a Redis URL starts with redis:// or rediss:// (or is one redis+sentinel:// URL)",
            ));
        }
        if tls != 0 && plain != 0 {
            return Err(Error::InvalidArgument(
                "cluster URLs must all use TLS or none",
            ));
        }
        if tls == 0 && (self.ca_file.is_some() || self.client_cert.is_some()) {
            return Err(Error::InvalidArgument(
                "a CA file or client certificate needs rediss://",
            ));
        }
        let prefix_ok = self.key_prefix.len() <= 64
            && self
                .key_prefix
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}');
        if !prefix_ok {
            return Err(Error::InvalidArgument(
                "the Redis key prefix is at most 64 printable ASCII characters without { or }",
            ));
        }
        let timeout_ok =
            |d: Duration| d >= Duration::from_millis(1) && d <= Duration::from_secs(60);
        if !timeout_ok(self.timeout) || !timeout_ok(self.connect_timeout) {
            return Err(Error::InvalidArgument("Redis timeouts are 1 ms to 60 s"));
        }
        if let Some(min) = self.min_replicas {
            if self.cluster {
                return Err(Error::InvalidArgument(
                    "min_replicas is for a single node or Sentinel, not for a Redis Cluster",
                ));
            }
            if !(1..=64).contains(&min.count) {
                return Err(Error::InvalidArgument(
                    "min_replicas counts 1 to 64 replicas",
                ));
            }
            // At most half: a write and its `WAIT` share the operation timeout (less a tenth
            // through Sentinel), and a write queued behind another's `WAIT` must still fit,
            // or replicas that lag would read as a primary that stopped answering.
            if min.timeout < Duration::from_millis(1) || min.timeout > self.timeout / 2 {
                return Err(Error::InvalidArgument(
                    "the min_replicas timeout is at least 1 ms and at most half the operation timeout",
                ));
            }
        }
        Ok(())
    }
}

/// A URL with any password replaced by `***`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return String::from("<malformed URL>");
    };
    // Up to the last `@`: a password written without percent-encoding may hold `/`, `?`,
    // `#` or `@`, which would otherwise end the authority early and leave part of it shown.
    // A `@` further on (in a query) hides more than needed, never less.
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(u, _)| u);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field(
                "urls",
                &self.urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>(),
            )
            .field("cluster", &self.cluster)
            .field("sentinel", &self.sentinel)
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert.as_ref().map(|(c, _)| c))
            .field("min_replicas", &self.min_replicas)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_become_single_nodes_or_clusters() {
        let one = RedisOptions::from_list(" redis://a:1 ");
        assert_eq!((one.urls.len(), one.cluster), (1, false));
        let many = RedisOptions::from_list("redis://a:1,redis://b:2, redis://c:3");
        assert_eq!((many.urls.len(), many.cluster), (3, true));
        assert!(many.validate().is_ok());
    }

    #[test]
    fn bad_options_are_invalid_arguments() {
        let cases = [
            RedisOptions::from_list(""),
            RedisOptions::new("http://x"),
            RedisOptions::cluster(["redis://a", "rediss://b"]),
            RedisOptions {
                key_prefix: "a{b}".into(),
                ..RedisOptions::new("redis://x")
            },
            RedisOptions {
                key_prefix: "p".repeat(65),
                ..RedisOptions::new("redis://x")
            },
            RedisOptions {
                timeout: Duration::ZERO,
                ..RedisOptions::new("redis://x")
            },
            RedisOptions {
                ca_file: Some("ca.pem".into()),
                ..RedisOptions::new("redis://x")
            },
            RedisOptions {
                urls: vec!["redis://a".into(), "redis://b".into()],
                ..RedisOptions::new("")
            },
            RedisOptions {
                min_replicas: Some(MinReplicas::new(0, Duration::from_millis(100))),
                ..RedisOptions::new("redis://x")
            },
            RedisOptions {
                min_replicas: Some(MinReplicas::new(65, Duration::from_millis(100))),
                ..RedisOptions::new("redis://x")
            },
            RedisOptions {
                min_replicas: Some(MinReplicas::new(1, Duration::ZERO)),
                ..RedisOptions::new("redis://x")
            },
            RedisOptions {
                min_replicas: Some(MinReplicas::new(1, RedisOptions::DEFAULT_TIMEOUT)),
                ..RedisOptions::new("redis://x")
            },
            RedisOptions {
                min_replicas: Some(MinReplicas::new(
                    1,
                    RedisOptions::DEFAULT_TIMEOUT / 2 + Duration::from_millis(1),
                )),
                ..RedisOptions::new("redis://x")
            },
            RedisOptions {
                min_replicas: Some(MinReplicas::new(1, Duration::from_millis(100))),
                ..RedisOptions::cluster(["redis://a", "redis://b"])
            },
        ];
        for case in cases {
            assert_eq!(
                case.validate().unwrap_err().code(),
                pci_vault::ErrorCode::InvalidArgument,
                "{case:?}"
            );
        }
        let half = RedisOptions::new("redis://x")
            .with_min_replicas(MinReplicas::new(1, RedisOptions::DEFAULT_TIMEOUT / 2));
        half.validate().unwrap();
    }

    #[test]
    fn sentinel_urls_name_the_sentinels_and_the_master() {
        let opts = RedisOptions::from_list(
            "rediss+sentinel://vault:s3cr3t-pw@s1:26379, s2:26380/mymaster",
        );
        assert_eq!(opts.urls, ["rediss://s1:26379", "rediss://s2:26380"]);
        let sentinel = opts.sentinel.clone().unwrap();
        assert_eq!(sentinel.master_name, "mymaster");
        assert_eq!(sentinel.username.as_deref(), Some("vault"));
        assert_eq!(sentinel.password.as_deref(), Some("s3cr3t-pw"));
        assert!(opts.validate().is_ok());
        assert!(opts.is_tls());
        let text = format!("{opts:?}");
        assert!(!text.contains("s3cr3t-pw"), "{text}");

        let plain = RedisOptions::from_list("redis+sentinel://:pw@s1:26379/m");
        let sentinel = plain.sentinel.clone().unwrap();
        assert_eq!(
            (sentinel.username, sentinel.password.as_deref()),
            (None, Some("pw"))
        );
        assert!(!plain.is_tls());

        // A password that is not percent-encoded, holding a `/`.
        let slashed = RedisOptions::from_list("redis+sentinel://u:a/b@s1:26379,s2:26379/m");
        assert_eq!(slashed.urls, ["redis://s1:26379", "redis://s2:26379"]);
        let sentinel = slashed.sentinel.clone().unwrap();
        assert_eq!(
            (sentinel.master_name.as_str(), sentinel.password.as_deref()),
            ("m", Some("a/b"))
        );
        assert!(!format!("{slashed:?}").contains("a/b"));

        for bad in [
            "redis+sentinel://s1:26379",
            "redis+sentinel://s1:26379,,s2:1/m",
            "redis+sentinel:///m",
        ] {
            let opts = RedisOptions::from_list(bad);
            assert_eq!(
                opts.validate().unwrap_err().code(),
                pci_vault::ErrorCode::InvalidArgument,
                "{bad}"
            );
        }
        let both = RedisOptions {
            cluster: true,
            ..RedisOptions::sentinel(["redis://s1:1"], "m")
        };
        assert!(both.validate().is_err());
    }

    #[test]
    fn debug_hides_passwords() {
        let opts = RedisOptions::new("rediss://vault:s3cr3t-pw@redis.internal:6380/0");
        let text = format!("{opts:?}");
        assert!(!text.contains("s3cr3t-pw"), "{text}");
        assert!(
            text.contains("rediss://vault:***@redis.internal:6380/0"),
            "{text}"
        );
        assert_eq!(redact_url("redis://:pw@h:1"), "redis://:***@h:1");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
        assert_eq!(redact_url("redis://h:1/0?x=1"), "redis://h:1/0?x=1");
        // Passwords not percent-encoded, with the characters that end an authority.
        for (url, shown) in [
            ("redis://u:pa/ss@h:1/0", "redis://u:***@h:1/0"),
            ("redis://u:pa?ss@h:1", "redis://u:***@h:1"),
            ("redis://u:pa#ss@h:1", "redis://u:***@h:1"),
            ("redis://u:p@ss@h:1/0", "redis://u:***@h:1/0"),
            ("redis://:a/b+c=@h:1", "redis://:***@h:1"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
