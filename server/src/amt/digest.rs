//! HTTP Digest authentication, the client's side (RFC 2617 with `qop=auth`, MD5), which is what
//! Intel AMT's web services ask for. MD5 is AMT's choice, not ours: the exchange runs inside the
//! TLS tunnel to the MPS, and the password never crosses it.

use md5::{Digest, Md5};

/// A server's `WWW-Authenticate: Digest …` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    /// Whether the server offers `qop=auth` (AMT does); without it, RFC 2069's simple form.
    pub qop_auth: bool,
}

impl Challenge {
    /// Reads a `WWW-Authenticate` header value; `None` unless it is a Digest challenge with a
    /// realm and a nonce.
    pub(crate) fn parse(header: &str) -> Option<Challenge> {
        let rest = header.trim().strip_prefix("Digest")?.trim_start();
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut qop_auth = false;
        for (name, value) in parameters(rest) {
            match name.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(value),
                "nonce" => nonce = Some(value),
                "opaque" => opaque = Some(value),
                "qop" => qop_auth = value.split(',').any(|q| q.trim() == "auth"),
                _ => {}
            }
        }
        Some(Challenge {
            realm: realm?,
            nonce: nonce?,
            opaque,
            qop_auth,
        })
    }

    /// The `Authorization` header for one request. `cnonce` is random per request; `count` is
    /// how many requests used this nonce so far (1 for the first).
    pub(crate) fn authorization(
        &self,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
        count: u32,
    ) -> String {
        let ha1 = md5_hex(&format!("{user}:{}:{password}", self.realm));
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        let nc = format!("{count:08x}");
        let response = if self.qop_auth {
            md5_hex(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce))
        } else {
            md5_hex(&format!("{ha1}:{}:{ha2}", self.nonce))
        };
        let mut header = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\"",
            quoted(user),
            quoted(&self.realm),
            quoted(&self.nonce),
            quoted(uri)
        );
        if self.qop_auth {
            header.push_str(&format!(
                ", qop=auth, nc={nc}, cnonce=\"{}\"",
                quoted(cnonce)
            ));
        }
        if let Some(opaque) = &self.opaque {
            header.push_str(&format!(", opaque=\"{}\"", quoted(opaque)));
        }
        header
    }
}

fn md5_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

/// A value inside a quoted-string: a user name or realm with `"` or `\` cannot break out.
fn quoted(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// `name=value` and `name="quoted value"` pairs separated by commas.
fn parameters(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if chars.next() != Some('=') {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    other => value.push(other),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
        }
        out.push((name.trim().to_owned(), value.trim().to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2617 §3.5's example.
    #[test]
    fn the_rfc_2617_example_gives_its_response() {
        let challenge = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .expect("a challenge");
        assert!(challenge.qop_auth);
        let header = challenge.authorization(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "0a4f113b",
            1,
        );
        assert!(
            header.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{header}"
        );
        assert!(header.contains("nc=00000001"), "{header}");
        assert!(
            header.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""),
            "{header}"
        );
    }

    #[test]
    fn only_digest_challenges_with_a_realm_and_nonce_are_read() {
        assert_eq!(Challenge::parse("Basic realm=\"x\""), None);
        assert_eq!(Challenge::parse("Digest realm=\"x\""), None);
        let amt = Challenge::parse("Digest realm=\"Digest:56B2\", nonce=\"a,b\", stale=\"false\"")
            .expect("a challenge");
        assert_eq!(
            amt.nonce, "a,b",
            "a comma inside quotes is part of the value"
        );
        assert!(!amt.qop_auth);
        // A quote in a user name stays inside its quoted-string.
        let header = amt.authorization("a\"b", "p", "POST", "/wsman", "c", 1);
        assert!(header.starts_with("Digest username=\"a\\\"b\""), "{header}");
    }
}
