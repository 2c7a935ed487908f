//! HTTP Digest authentication for SIP (RFC 3261 §22.4, RFC 2617, RFC 7616):
//! MD5 and SHA-256, with and without `qop=auth`.

use md5::{Digest as _, Md5};
use sha2::Sha256;

use crate::message::split_comma;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// True when the server offered `qop=auth` (we never use auth-int).
    pub qop_auth: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }
    fn hash(self, s: &str) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(s.as_bytes())),
            Algorithm::Sha256 => hex::encode(Sha256::digest(s.as_bytes())),
        }
    }
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        v[1..v.len() - 1]
            .replace("\\\"", "\"")
            .replace("\\\\", "\\")
    } else {
        v.to_string()
    }
}

/// Parse `Digest k=v, ...` auth-params into pairs.
fn parse_params(value: &str) -> Option<Vec<(String, String)>> {
    let rest = value.trim();
    let (scheme, rest) = rest.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    Some(
        split_comma(rest)
            .into_iter()
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.trim().to_ascii_lowercase(), unquote(v)))
            })
            .collect(),
    )
}

impl Challenge {
    /// Parse a WWW-Authenticate / Proxy-Authenticate value. Unknown algorithms
    /// (e.g. MD5-sess) yield `None`: we cannot answer them, so the caller fails the
    /// request with the challenge's code instead of sending garbage.
    pub fn parse(value: &str) -> Option<Challenge> {
        let params = parse_params(value)?;
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let algorithm = match get("algorithm").as_deref().map(str::to_ascii_uppercase) {
            None => Algorithm::Md5,
            Some(a) if a == "MD5" => Algorithm::Md5,
            Some(a) if a == "SHA-256" => Algorithm::Sha256,
            Some(_) => return None,
        };
        let qop_auth = get("qop").is_some_and(|q| q.split(',').any(|x| x.trim() == "auth"));
        if get("qop").is_some() && !qop_auth {
            return None; // only auth-int offered
        }
        Some(Challenge {
            realm: get("realm")?,
            nonce: get("nonce")?,
            opaque: get("opaque"),
            algorithm,
            qop_auth,
        })
    }

    /// The value for an Authorization / Proxy-Authorization header (§22.2).
    pub fn respond(
        &self,
        method: &str,
        uri: &str,
        username: &str,
        password: &str,
        cnonce: &str,
        nc: u32,
    ) -> String {
        let h = |s: &str| self.algorithm.hash(s);
        let ha1 = h(&format!("{username}:{}:{password}", self.realm));
        let ha2 = h(&format!("{method}:{uri}"));
        let nc = format!("{nc:08x}");
        let response = if self.qop_auth {
            h(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce))
        } else {
            h(&format!("{ha1}:{}:{ha2}", self.nonce))
        };
        let mut out = format!(
            "Digest username=\"{username}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\", algorithm={}",
            self.realm,
            self.nonce,
            self.algorithm.name()
        );
        if self.qop_auth {
            out.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
        }
        if let Some(o) = &self.opaque {
            out.push_str(&format!(", opaque=\"{o}\""));
        }
        out
    }
}

/// Server side check of an Authorization header (used by tests and available to a
/// future registrar): recomputes the response with the known password.
pub fn verify(authorization: &str, method: &str, password: &str) -> bool {
    let Some(params) = parse_params(authorization) else {
        return false;
    };
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let alg = match get("algorithm").to_ascii_uppercase().as_str() {
        "" | "MD5" => Algorithm::Md5,
        "SHA-256" => Algorithm::Sha256,
        _ => return false,
    };
    let ch = Challenge {
        realm: get("realm").into(),
        nonce: get("nonce").into(),
        opaque: None,
        algorithm: alg,
        qop_auth: get("qop") == "auth",
    };
    let nc = u32::from_str_radix(get("nc"), 16).unwrap_or(0);
    let expected = ch.respond(
        method,
        get("uri"),
        get("username"),
        password,
        get("cnonce"),
        nc,
    );
    parse_params(&expected).is_some_and(|p| {
        p.iter()
            .find(|(n, _)| n == "response")
            .is_some_and(|(_, v)| v == get("response"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example_vector() {
        // RFC 2617 §3.5 example (HTTP, but the arithmetic is identical).
        let ch = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        let v = ch.respond(
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle Of Life",
            "0a4f113b",
            1,
        );
        assert!(
            v.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{v}"
        );
        assert!(verify(&v, "GET", "Circle Of Life"));
        assert!(!verify(&v, "GET", "wrong"));
    }

    #[test]
    fn rejects_unsupported() {
        assert!(Challenge::parse("Basic realm=\"x\"").is_none());
        assert!(Challenge::parse("Digest realm=\"x\", nonce=\"n\", algorithm=MD5-sess").is_none());
        let c = Challenge::parse("Digest realm=\"x\", nonce=\"n\", algorithm=SHA-256").unwrap();
        assert_eq!(c.algorithm, Algorithm::Sha256);
    }
}
