//! What `RedisStore::connect` finds out before any customer data is written: wrong
//! passwords, ACL users without a needed permission, TLS certificates from the wrong CA, an
//! unreachable server, and unsafe server settings — each a clear error or warning at start.

#![cfg(test)] // test code throughout: clippy.toml's allow-*-in-tests apply (testkit/README.md)

use std::time::{Duration, Instant};

use pci_vault::{Error, ErrorCode};
use pci_vault_redis::{RedisOptions, RedisStore};
use pci_vault_testkit::redis::{self as testkit, RedisCluster, RedisServer, TlsFiles, acl_user};
use pci_vault_testkit::vaults::{round_trip, vault_on};

/// The backend's README, whose recommended ACL rules the tests grant.
const README: &str = include_str!("../README.md");

/// Connects and expects `STORE_UNAVAILABLE`; returns the message.
async fn refused(options: RedisOptions) -> String {
    match RedisStore::connect(options).await {
        Err(Error::StoreUnavailable(message)) => message,
        Err(other) => panic!("expected STORE_UNAVAILABLE, got {other:?}"),
        Ok(store) => panic!("connected: {store:?}"),
    }
}

fn assert_mentions(message: &str, words: &[&str]) {
    let lower = message.to_lowercase();
    for word in words {
        assert!(
            lower.contains(&word.to_lowercase()),
            "the message does not say {word:?}: {message}"
        );
    }
}

fn assert_hides(message: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !message.contains(secret),
            "the message shows a secret: {message}"
        );
    }
}

#[tokio::test]
async fn wrong_or_missing_password_is_refused_at_connect() {
    let server = RedisServer::start(&["--requirepass", "default-pw-5d1e"]);
    let with = |auth: &str| RedisOptions::new(format!("redis://{auth}127.0.0.1:{}", server.port));

    let message = refused(with(":wrong-pw-81c2@")).await;
    assert_mentions(&message, &["authentication failed", "password"]);
    assert_hides(&message, &["wrong-pw-81c2", "default-pw-5d1e"]);

    let message = refused(with("")).await;
    assert_mentions(&message, &["authentication failed"]);

    // An ACL user with a wrong password, and an unknown user.
    let mut admin = testkit::admin_with_password(&server, "default-pw-5d1e").await;
    acl_user(
        &mut admin,
        "vault",
        "vault-pw-77aa",
        &testkit::readme_acl_rules(README),
    )
    .await;
    let message = refused(with("vault:not-the-pw-19@")).await;
    assert_mentions(&message, &["authentication failed"]);
    assert_hides(&message, &["not-the-pw-19", "vault-pw-77aa"]);
    let message = refused(with("nobody:vault-pw-77aa@")).await;
    assert_mentions(&message, &["authentication failed"]);

    let store = RedisStore::connect(with("vault:vault-pw-77aa@"))
        .await
        .unwrap();
    assert!(!format!("{store:?}").contains("vault-pw-77aa"));
    round_trip(&vault_on(store)).await;
}

/// The README's ACL rules are enough to run the store; without any one of the permissions
/// they grant, or with keys outside the prefix, connect fails and names the problem.
#[tokio::test]
async fn acl_user_needs_every_permission_the_readme_grants() {
    let server = RedisServer::start(&[]);
    let mut admin = server.admin().await;
    let as_vault = || RedisOptions::new(format!("redis://vault:pw-a1@127.0.0.1:{}", server.port));
    let rules = testkit::readme_acl_rules(README);

    acl_user(&mut admin, "vault", "pw-a1", &rules).await;
    let store = RedisStore::connect(as_vault()).await.unwrap();
    // The user may not read the settings: no warning, and no failure either.
    assert!(store.server_warnings().is_empty());
    round_trip(&vault_on(store)).await;

    let needed: Vec<&String> = rules.iter().filter(|r| r.starts_with('+')).collect();
    assert!(needed.len() >= 9, "{rules:?}");
    for missing in needed {
        let fewer: Vec<String> = rules.iter().filter(|r| *r != missing).cloned().collect();
        acl_user(&mut admin, "vault", "pw-a1", &fewer).await;
        let message = refused(as_vault()).await;
        assert_mentions(
            &message,
            &["ACL user lacks a permission", "the server said"],
        );
        let said = message.split("the server said").nth(1).unwrap();
        // The server names the command, except one a script runs.
        let command = missing.trim_start_matches('+');
        if ["getrange", "del", "set", "publish"].contains(&command) {
            assert_mentions(said, &["script"]);
        } else {
            assert_mentions(said, &[&format!("'{command}'")]);
        }
    }

    // Keys outside the store's prefix only.
    let elsewhere: Vec<String> = rules
        .iter()
        .map(|r| {
            if r.starts_with('~') {
                "~elsewhere:*".to_owned()
            } else if r.starts_with('&') {
                "&elsewhere:*".to_owned()
            } else {
                r.clone()
            }
        })
        .collect();
    acl_user(&mut admin, "vault", "pw-a1", &elsewhere).await;
    let message = refused(as_vault()).await;
    assert_mentions(&message, &["ACL user lacks a permission", "key"]);

    // The same rules with the store's prefix changed to match them work again.
    let store = RedisStore::connect(as_vault().with_key_prefix("elsewhere:"))
        .await
        .unwrap();
    round_trip(&vault_on(store)).await;
}

/// With `+config|get` the store reads the settings and warns; the README says so.
#[tokio::test]
async fn acl_user_with_config_get_gets_the_warnings() {
    let server = RedisServer::start(&["--appendonly", "yes"]);
    let mut admin = server.admin().await;
    let mut rules = testkit::readme_acl_rules(README);
    let as_vault = || RedisOptions::new(format!("redis://vault:pw-b2@127.0.0.1:{}", server.port));
    acl_user(&mut admin, "vault", "pw-b2", &rules).await;
    let store = RedisStore::connect(as_vault()).await.unwrap();
    assert!(store.server_warnings().is_empty());
    rules.push("+config|get".into());
    acl_user(&mut admin, "vault", "pw-b2", &rules).await;
    let store = RedisStore::connect(as_vault()).await.unwrap();
    assert_eq!(
        store.server_warnings().len(),
        1,
        "{:?}",
        store.server_warnings()
    );
    assert_mentions(&store.server_warnings()[0], &["appendonly yes"]);
}

#[tokio::test]
async fn tls_certificate_from_another_ca_is_refused_at_connect() {
    let certs = TlsFiles::generate();
    // Also on 127.0.0.2, a name the server's certificate does not carry.
    let server = RedisServer::start_tls(&certs, false, &["--bind", "127.0.0.1", "127.0.0.2"]);
    let message =
        refused(RedisOptions::new(server.url()).with_ca_file(certs.other_ca.clone())).await;
    assert_mentions(&message, &["certificate"]);

    // The system roots do not know the test CA either.
    let message = refused(RedisOptions::new(server.url())).await;
    assert_mentions(&message, &["certificate"]);

    // The right CA, but a name the certificate does not carry.
    let message = refused(
        RedisOptions::new(format!("rediss://127.0.0.2:{}", server.port))
            .with_ca_file(certs.ca.clone()),
    )
    .await;
    assert_mentions(&message, &["certificate"]);

    // A plain-text client on the TLS port.
    let started = Instant::now();
    let message = refused(
        RedisOptions::new(format!("redis://127.0.0.1:{}", server.port))
            .with_connect_timeout(Duration::from_secs(2)),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "{message}"
    );
}

#[tokio::test]
async fn mutual_tls_needs_a_client_certificate_from_the_servers_ca() {
    let certs = TlsFiles::generate();
    let server = RedisServer::start_tls(&certs, true, &[]);
    let options = |client: Option<(&std::path::Path, &std::path::Path)>| {
        let mut options = RedisOptions::new(server.url()).with_ca_file(certs.ca.clone());
        options.client_cert = client.map(|(c, k)| (c.to_owned(), k.to_owned()));
        options
    };
    refused(options(None)).await;
    refused(options(Some((&certs.stranger_cert, &certs.stranger_key)))).await;
    let store = RedisStore::connect(options(Some((&certs.client_cert, &certs.client_key))))
        .await
        .unwrap();
    round_trip(&vault_on(store)).await;

    let message = refused(options(Some((
        &certs.client_cert,
        &certs.client_cert.with_file_name("missing.key"),
    ))))
    .await;
    assert_mentions(&message, &["cannot read the client key", "missing.key"]);
}

#[tokio::test]
async fn unreachable_server_is_refused_within_the_connect_timeout() {
    let port = testkit::free_port();
    let started = Instant::now();
    let message = refused(
        RedisOptions::new(format!("redis://:pw-c3@127.0.0.1:{port}"))
            .with_connect_timeout(Duration::from_millis(800)),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(1_300),
        "{message}"
    );
    assert_hides(&message, &["pw-c3"]);

    // A server that accepts connections but never answers (stopped with SIGSTOP).
    let mut server = RedisServer::start(&[]);
    server.freeze();
    let started = Instant::now();
    let message =
        refused(RedisOptions::new(server.url()).with_connect_timeout(Duration::from_millis(800)))
            .await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1_300), "{took:?}: {message}");
    assert_mentions(&message, &["connect timeout"]);
    server.thaw();
}

#[tokio::test]
async fn malformed_options_are_invalid_arguments_without_secrets() {
    for url in [
        "redis://:pw-d4@",
        "redis://user:pw-d4@127.0.0.1:notaport",
        "rediss://:pw-d4@127.0.0.1:1/#insecure",
        "redis://:pw-d4@127.0.0.1:1/nodb",
    ] {
        match RedisStore::connect(RedisOptions::new(url)).await {
            Err(e) => {
                assert!(
                    matches!(
                        e.code(),
                        ErrorCode::InvalidArgument | ErrorCode::StoreUnavailable
                    ),
                    "{url}: {e:?}"
                );
                assert_hides(&e.to_string(), &["pw-d4"]);
            }
            Ok(store) => panic!("{url} connected: {store:?}"),
        }
    }

    // A CA file that is not PEM is named as such, not as a bad URL.
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("ca.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n").unwrap();
    let err = RedisStore::connect(RedisOptions::new("rediss://127.0.0.1:1").with_ca_file(garbage))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert_mentions(&err.to_string(), &["CA file", "PEM"]);

    // A client key's PEM text given where its path belongs is not repeated.
    let pem =
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIKey-d4\n-----END PRIVATE KEY-----\n";
    let cert = dir.path().join("client.pem");
    std::fs::write(&cert, "").unwrap();
    let err =
        RedisStore::connect(RedisOptions::new("rediss://127.0.0.1:1").with_client_cert(&cert, pem))
            .await
            .unwrap_err();
    assert_mentions(&err.to_string(), &["client key", "not shown"]);
    assert_hides(&err.to_string(), &["MC4CAQ", "Key-d4"]);
}

/// A full server cannot take the connect probe: `CAPACITY_EXCEEDED`, not a vague failure.
#[tokio::test]
async fn full_server_is_capacity_exceeded_at_connect() {
    let server = RedisServer::start(&[]);
    let mut admin = server.admin().await;
    let _: () = testkit::run(&mut admin, &["CONFIG", "SET", "maxmemory", "1"]).await;
    let err = RedisStore::connect(RedisOptions::new(server.url()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CapacityExceeded, "{err:?}");
}

#[tokio::test]
async fn unsafe_settings_give_matching_warnings() {
    let cases: [(&[&str], &[&str]); 6] = [
        (&[], &[]),
        (&["--save", "60 1"], &["save \"60 1\""]),
        (&["--appendonly", "yes"], &["appendonly yes"]),
        (
            &["--maxmemory-policy", "allkeys-lru"],
            &["maxmemory-policy is allkeys-lru"],
        ),
        (
            &["--maxmemory-policy", "volatile-ttl"],
            &["maxmemory-policy is volatile-ttl"],
        ),
        (
            &[
                "--save",
                "3600 1",
                "--appendonly",
                "yes",
                "--maxmemory-policy",
                "allkeys-random",
            ],
            &["save \"3600 1\"", "appendonly yes", "allkeys-random"],
        ),
    ];
    for (args, expected) in cases {
        let server = RedisServer::start(args);
        let store = RedisStore::connect(RedisOptions::new(server.url()))
            .await
            .unwrap();
        let warnings = store.server_warnings();
        assert_eq!(warnings.len(), expected.len(), "{args:?}: {warnings:?}");
        for (warning, words) in warnings.iter().zip(expected) {
            assert_mentions(warning, &[words]);
        }
    }
}

/// In a cluster every node is read: one unsafe node is named in the warnings.
#[tokio::test]
async fn cluster_warnings_name_the_unsafe_node() {
    let unsafe_node: &[&str] = &["--appendonly", "yes", "--maxmemory-policy", "allkeys-lru"];
    let cluster = RedisCluster::start(&[&[], &[], unsafe_node]);
    let store = RedisStore::connect(RedisOptions::cluster(cluster.urls()))
        .await
        .unwrap();
    let warnings = store.server_warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    let bad = format!("127.0.0.1:{}", cluster.nodes[2].port);
    for (warning, words) in warnings.iter().zip(["appendonly yes", "allkeys-lru"]) {
        assert_mentions(warning, &[words, &format!("on {bad}:")]);
        for safe in &cluster.nodes[..2] {
            assert!(!warning.contains(&format!("127.0.0.1:{}", safe.port)));
        }
    }
    round_trip(&vault_on(store)).await;
}
