//! Redis errors turned into the vault's stable codes, with messages that never carry a
//! stored value.

use pci_vault::Error;
use redis::{ErrorKind, RedisError};

/// The server's error code (`OOM`, `NOPERM`, `WRONGPASS`, ...), if it sent one.
fn server_code(e: &RedisError) -> Option<&str> {
    e.code()
}

/// An error while connecting or checking the server at start. Nothing has been stored yet,
/// so the server's own explanation (TLS, authentication, ACL) is passed on.
pub(crate) fn at_connect(e: &RedisError) -> Error {
    let code = server_code(e);
    if e.kind() == ErrorKind::AuthenticationFailed || matches!(code, Some("WRONGPASS" | "NOAUTH")) {
        return Error::store_unavailable("redis: authentication failed (wrong user or password)");
    }
    if code == Some("NOPERM") {
        return Error::store_unavailable(format!(
            "redis: the ACL user lacks a permission the store needs (GET, SET, DEL, EVALSHA, EVAL, PING on the key prefix): {}",
            e.detail().unwrap_or("permission denied")
        ));
    }
    Error::store_unavailable(format!("redis: cannot connect: {e}"))
}

/// An error during an operation. Only the kind and the server's code are reported.
pub(crate) fn during_operation(what: &str, e: &RedisError) -> Error {
    match server_code(e) {
        Some("OOM") => Error::CapacityExceeded,
        Some("NOPERM") => Error::store_unavailable(format!("redis: {what} refused by the ACL")),
        Some(code) => Error::store_unavailable(format!("redis: {what} failed with {code}")),
        None if e.is_timeout() => Error::store_unavailable(format!("redis: {what} timed out")),
        None if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() => {
            Error::store_unavailable(format!("redis: {what} failed: connection lost"))
        }
        None => Error::store_unavailable(format!("redis: {what} failed ({:?})", e.kind())),
    }
}
