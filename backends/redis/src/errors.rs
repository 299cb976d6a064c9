//! Redis errors turned into the vault's stable codes, with messages that never carry a
//! stored value.

use pci_vault::Error;
use redis::{ErrorKind, RedisError, ServerError};

/// The server's error code (`OOM`, `NOPERM`, `WRONGPASS`, ...), if it sent one.
///
/// A script and its `WAIT` travel in one pipeline (`min_replicas`), and redis-rs reports a
/// failed command of a pipeline with a code only when the code is one it knows (`NOPERM`,
/// `READONLY`, ...), not `OOM` or this store's own `PCIVAULT`; so the pipeline's first
/// failed command is read too.
fn server_code(e: &RedisError) -> Option<String> {
    e.code()
        .map(str::to_owned)
        .or_else(|| first_server_error(e).map(|error| error.code().to_owned()))
}

/// The server's own explanation, for the messages of a failed connect (never of an
/// operation: nothing stored is in it, but an operation's error says only its code).
fn server_detail(e: &RedisError) -> Option<String> {
    e.detail()
        .map(str::to_owned)
        .or_else(|| first_server_error(e).and_then(|error| error.details().map(str::to_owned)))
}

fn first_server_error(e: &RedisError) -> Option<ServerError> {
    let failed = e.clone().into_server_errors()?;
    failed.first().map(|(_, error)| error.clone())
}

/// An error while connecting to `servers` (their redacted URLs) or checking them at start.
/// Nothing has been stored yet, so the server's own explanation (TLS, authentication, ACL)
/// is passed on.
pub(crate) fn at_connect(e: &RedisError, servers: &str) -> Error {
    let code = server_code(e);
    let code = code.as_deref();
    if e.kind() == ErrorKind::AuthenticationFailed || matches!(code, Some("WRONGPASS" | "NOAUTH")) {
        return Error::store_unavailable(format!(
            "redis: authentication failed at {servers} (wrong user or password)"
        ));
    }
    // Redis 7.0 reports a command a script may not run as a plain ERR; 7.2 as NOPERM.
    let detail = server_detail(e);
    let detail = detail.as_deref().unwrap_or("permission denied");
    if code == Some("NOPERM") || detail.contains("user executing the script") {
        return Error::store_unavailable(format!(
            "redis: the ACL user lacks a permission the store needs (PING, GET, SET, GETRANGE, \
             DEL, EVALSHA and SCRIPT LOAD on keys under the key prefix, PUBLISH, SUBSCRIBE and \
             UNSUBSCRIBE on channels under it, WAIT with min_replicas, and CLUSTER SLOTS on a cluster); \
             the server said: {detail}"
        ));
    }
    if code == Some("OOM") {
        return Error::CapacityExceeded;
    }
    Error::store_unavailable(format!("redis: cannot connect to {servers}: {e}"))
}

/// An error during an operation. Only the kind and the server's code are reported.
pub(crate) fn during_operation(what: &str, e: &RedisError) -> Error {
    match server_code(e).as_deref() {
        Some("OOM") => Error::CapacityExceeded,
        // An entry too short for the header the scripts write, or a key of another type:
        // something other than this store wrote it.
        Some("PCIVAULT" | "WRONGTYPE") => Error::IntegrityError,
        // A repeated write whose rewrite the server refused: the first try may or may not
        // have reached the replicas.
        Some("PCIVAULTAGAIN") => Error::store_unavailable(format!(
            "redis: {what} repeated, and the server refused to write it again; whether it \
             counts is not known"
        )),
        Some("NOPERM") => Error::store_unavailable(format!("redis: {what} refused by the ACL")),
        Some(code) => Error::store_unavailable(format!("redis: {what} failed with {code}")),
        None if e.is_timeout() => Error::store_unavailable(format!("redis: {what} timed out")),
        None if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() => {
            Error::store_unavailable(format!("redis: {what} failed: connection lost"))
        }
        None => Error::store_unavailable(format!("redis: {what} failed ({:?})", e.kind())),
    }
}
