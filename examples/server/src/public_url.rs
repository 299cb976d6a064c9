//! The URL customers reach the server at, and the origin their form POST must come from.

use std::net::SocketAddr;

use axum::http::Uri;

use crate::config::ConfigError;

/// The URL customers reach the server at, and the origin their form POST must come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    base: String,
    origin: String,
    https: bool,
}

impl PublicUrl {
    /// Parses `http(s)://host[:port][/prefix]`; a trailing `/` is dropped.
    ///
    /// # Errors
    /// [`ConfigError::PublicUrl`] for another scheme, a missing host, user info, a query
    /// or a fragment.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let text = text.trim().trim_end_matches('/');
        if text.contains(['?', '#']) {
            return Err(ConfigError::PublicUrl("must not have a query or fragment"));
        }
        let uri: Uri = text
            .parse()
            .map_err(|_| ConfigError::PublicUrl("not a valid URL"))?;
        let https = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            _ => return Err(ConfigError::PublicUrl("the scheme must be http or https")),
        };
        let authority = uri
            .authority()
            .ok_or(ConfigError::PublicUrl("a host is required"))?;
        if authority.as_str().contains('@') {
            return Err(ConfigError::PublicUrl("must not contain user info"));
        }
        let host = authority.host().to_ascii_lowercase();
        if host.is_empty() {
            return Err(ConfigError::PublicUrl("a host is required"));
        }
        let default_port = if https { 443 } else { 80 };
        let origin = match authority.port_u16() {
            Some(port) if port != default_port => {
                format!("{}://{host}:{port}", if https { "https" } else { "http" })
            }
            _ => format!("{}://{host}", if https { "https" } else { "http" }),
        };
        let path = uri.path().trim_end_matches('/');
        Ok(PublicUrl {
            base: format!("{origin}{path}"),
            origin,
            https,
        })
    }

    /// The URL of a server listening on `addr`.
    pub fn for_listener(addr: SocketAddr, https: bool) -> Self {
        let scheme = if https { "https" } else { "http" };
        let origin = format!("{scheme}://{addr}");
        PublicUrl {
            base: origin.clone(),
            origin,
            https,
        }
    }

    /// The base URL, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The origin (`scheme://host[:port]`) browsers send in `Origin`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether customers reach the server over HTTPS.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The customer's link for a session id.
    pub fn form_link(&self, id: &pci_vault::SessionId) -> String {
        format!("{}/forms/{id}", self.base)
    }

    /// Whether a browser's form POST comes from a page of this origin.
    ///
    /// The form page is served with `Referrer-Policy: no-referrer`, under which browsers
    /// send `Origin: null` even on a same-origin POST (Fetch, "append a request Origin
    /// header"). `null` is therefore taken only together with `Sec-Fetch-Site:
    /// same-origin`, a header a page cannot set. A missing `Origin` is refused.
    pub fn accepts_form_post(&self, origin: Option<&str>, sec_fetch_site: Option<&str>) -> bool {
        match origin.map(str::trim) {
            Some("null") => sec_fetch_site.is_some_and(|s| s.trim() == "same-origin"),
            Some(origin) => origin.eq_ignore_ascii_case(&self.origin),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls() {
        let u = PublicUrl::parse("https://Pay.Example.com/").unwrap();
        assert_eq!(u.origin(), "https://pay.example.com");
        assert_eq!(u.base(), "https://pay.example.com");
        assert!(u.is_https());
        let u = PublicUrl::parse("https://pay.example.com:443/card/").unwrap();
        assert_eq!(u.origin(), "https://pay.example.com");
        assert_eq!(u.base(), "https://pay.example.com/card");
        let u = PublicUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(u.origin(), "http://127.0.0.1:8080");
        let u = PublicUrl::parse("http://[::1]:8080").unwrap();
        assert_eq!(u.origin(), "http://[::1]:8080");
        for bad in [
            "",
            "pay.example.com",
            "ftp://x",
            "https://",
            "https://u:p@x",
            "https://x/?a",
            "https://x/#a",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn form_post_origins() {
        let u = PublicUrl::parse("https://pay.example.com").unwrap();
        assert!(u.accepts_form_post(Some("https://pay.example.com"), None));
        assert!(u.accepts_form_post(Some("https://PAY.example.com"), Some("cross-site")));
        assert!(u.accepts_form_post(Some("null"), Some("same-origin")));
        assert!(!u.accepts_form_post(Some("null"), Some("cross-site")));
        assert!(!u.accepts_form_post(Some("null"), Some("same-site")));
        assert!(!u.accepts_form_post(Some("null"), None));
        assert!(!u.accepts_form_post(None, Some("same-origin")));
        assert!(!u.accepts_form_post(Some("https://evil.example"), Some("same-origin")));
        assert!(!u.accepts_form_post(Some("http://pay.example.com"), None));
        assert!(!u.accepts_form_post(Some("https://pay.example.com:8443"), None));
    }
}
