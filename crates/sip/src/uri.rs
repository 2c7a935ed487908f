//! SIP URIs (§19.1), name-addr values of From/To/Contact/Route (§20.10, §25.1)
//! and Via (§20.42).

use std::fmt;

/// A `sip:`, `sips:` or `tel:` URI. Other schemes are refused (416, §8.2.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub scheme: String,
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<(String, Option<String>)>,
    /// Raw `?headers` part, kept opaque (§19.1.1).
    pub headers: Option<String>,
}

fn valid_host(h: &str) -> bool {
    if let Some(inner) = h.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn valid_param_char(b: u8) -> bool {
    // param-unreserved / unreserved / escaped (§25.1), plus ':' seen in practice
    b.is_ascii_alphanumeric() || b"-_.!~*'()[]/:&+$%".contains(&b)
}

fn valid_user_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/%#".contains(&b)
}

fn parse_params(s: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    for p in s.split(';') {
        let p = p.trim();
        if p.is_empty() {
            return Err("empty parameter".into());
        }
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (p, None),
        };
        if k.is_empty() || !k.bytes().all(crate::message::is_token_char) {
            return Err("bad parameter name".into());
        }
        if let Some(v) = v {
            let quoted = v.len() >= 2 && v.starts_with('"') && v.ends_with('"');
            if v.is_empty() || (!quoted && !v.bytes().all(valid_param_char)) {
                return Err("bad parameter value".into());
            }
        }
        out.push((k.to_string(), v.map(str::to_string)));
    }
    Ok(out)
}

fn fmt_params(f: &mut fmt::Formatter<'_>, params: &[(String, Option<String>)]) -> fmt::Result {
    for (k, v) in params {
        match v {
            Some(v) => write!(f, ";{k}={v}")?,
            None => write!(f, ";{k}")?,
        }
    }
    Ok(())
}

pub(crate) fn param<'a>(params: &'a [(String, Option<String>)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_deref().unwrap_or(""))
}

/// Split "host[:port]" with IPv6 brackets; validates both.
pub(crate) fn parse_hostport(s: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']').ok_or("unterminated IPv6 reference")?;
        let rest = &s[end + 1..];
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p),
            None if rest.is_empty() => None,
            None => return Err("garbage after IPv6 reference".into()),
        };
        (&s[..=end], port)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if !valid_host(host) {
        return Err("invalid host".into());
    }
    let port = match port {
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err("invalid port".into());
            }
            Some(p.parse::<u16>().map_err(|_| "invalid port")?)
        }
        None => None,
    };
    Ok((host.to_string(), port))
}

impl Uri {
    pub fn parse(s: &str) -> Result<Uri, String> {
        let s = s.trim();
        let (scheme, rest) = s.split_once(':').ok_or("missing scheme")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme == "tel" {
            // RFC 3966: tel:+1555...;params — keep the number as the user part.
            let (num, params) = match rest.split_once(';') {
                Some((n, p)) => (n, parse_params(p)?),
                None => (rest, Vec::new()),
            };
            if num.is_empty()
                || !num
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b"+-.()*#".contains(&b))
            {
                return Err("invalid tel number".into());
            }
            return Ok(Uri {
                scheme,
                user: Some(num.to_string()),
                host: String::new(),
                port: None,
                params,
                headers: None,
            });
        }
        if scheme != "sip" && scheme != "sips" {
            return Err(format!("unsupported scheme {scheme}"));
        }
        let (rest, headers) = match rest.split_once('?') {
            Some((r, h)) => (r, Some(h.to_string())),
            None => (rest, None),
        };
        let (userinfo, hostpart) = match rest.rfind('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let user = match userinfo {
            // A password in the URI (user:pass) is deprecated (§19.1.1); keep the user.
            Some(ui) => {
                let u = ui.split(':').next().unwrap_or("");
                if u.is_empty() || !u.bytes().all(valid_user_char) {
                    return Err("invalid user part".into());
                }
                Some(u.to_string())
            }
            None => None,
        };
        let (hostport, params) = match hostpart.split_once(';') {
            Some((h, p)) => (h, parse_params(p)?),
            None => (hostpart, Vec::new()),
        };
        let (host, port) = parse_hostport(hostport)?;
        Ok(Uri {
            scheme,
            user,
            host,
            port,
            params,
            headers,
        })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        param(&self.params, name)
    }

    /// Simple constructor for `sip:user@host:port`.
    pub fn sip(user: Option<&str>, host: &str, port: Option<u16>) -> Uri {
        Uri {
            scheme: "sip".into(),
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
            params: Vec::new(),
            headers: None,
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scheme == "tel" {
            write!(f, "tel:{}", self.user.as_deref().unwrap_or(""))?;
            return fmt_params(f, &self.params);
        }
        write!(f, "{}:", self.scheme)?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        fmt_params(f, &self.params)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

/// `[display-name] <uri>;params` or a bare `uri;params` (§20.10: without angle
/// brackets, parameters belong to the header, not the URI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: Uri,
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    pub fn parse(s: &str) -> Result<NameAddr, String> {
        let s = s.trim();
        if let Some(lt) = s.find('<') {
            let display = s[..lt].trim();
            if display.starts_with('"') && (!display.ends_with('"') || display.len() < 2) {
                return Err("unterminated display name".into());
            }
            let gt = s[lt..].find('>').ok_or("missing '>'")? + lt;
            let uri = Uri::parse(&s[lt + 1..gt])?;
            let rest = s[gt + 1..].trim();
            let params = match rest.strip_prefix(';') {
                Some(p) => parse_params(p)?,
                None if rest.is_empty() => Vec::new(),
                None => return Err("garbage after '>'".into()),
            };
            let display = if display.is_empty() {
                None
            } else {
                Some(display.trim_matches('"').to_string())
            };
            return Ok(NameAddr {
                display,
                uri,
                params,
            });
        }
        let (u, params) = match s.find(';') {
            Some(i) => (&s[..i], parse_params(&s[i + 1..])?),
            None => (s, Vec::new()),
        };
        if u.contains([' ', '"']) {
            return Err("malformed addr-spec".into());
        }
        Ok(NameAddr {
            display: None,
            uri: Uri::parse(u)?,
            params,
        })
    }

    pub fn new(uri: Uri) -> NameAddr {
        NameAddr {
            display: None,
            uri,
            params: Vec::new(),
        }
    }

    pub fn tag(&self) -> Option<&str> {
        param(&self.params, "tag")
    }

    pub fn with_tag(mut self, tag: &str) -> NameAddr {
        self.params.retain(|(k, _)| !k.eq_ignore_ascii_case("tag"));
        self.params.push(("tag".into(), Some(tag.to_string())));
        self
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "\"{}\" ", d.replace('"', ""))?;
        }
        write!(f, "<{}>", self.uri)?;
        fmt_params(f, &self.params)
    }
}

/// One Via value: `SIP/2.0/UDP host:port;branch=...` (§20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<(String, Option<String>)>,
}

impl Via {
    pub fn parse(s: &str) -> Result<Via, String> {
        let s = s.trim();
        let (proto, rest) = s.split_once([' ', '\t']).ok_or("missing sent-by")?;
        let mut p = proto.split('/');
        let (Some(name), Some(ver), Some(transport), None) =
            (p.next(), p.next(), p.next(), p.next())
        else {
            return Err("malformed sent-protocol".into());
        };
        if !name.trim().eq_ignore_ascii_case("SIP") || ver.trim() != "2.0" {
            return Err("unsupported protocol".into());
        }
        let transport = transport.trim().to_ascii_uppercase();
        if transport.is_empty() || !transport.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("bad transport".into());
        }
        let rest = rest.trim();
        let (hostport, params) = match rest.split_once(';') {
            Some((h, p)) => (h.trim(), parse_params(p)?),
            None => (rest, Vec::new()),
        };
        let (host, port) = parse_hostport(hostport)?;
        Ok(Via {
            transport,
            host,
            port,
            params,
        })
    }

    pub fn branch(&self) -> Option<&str> {
        param(&self.params, "branch")
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        fmt_params(f, &self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_roundtrip() {
        let u = Uri::parse("sip:+15551234567@[::1]:5060;transport=tcp;lr").unwrap();
        assert_eq!(u.host, "[::1]");
        assert_eq!(u.port, Some(5060));
        assert_eq!(u.param("lr"), Some(""));
        assert_eq!(
            u.to_string(),
            "sip:+15551234567@[::1]:5060;transport=tcp;lr"
        );
        assert!(Uri::parse("sip:a@b:99999").is_err());
        assert!(Uri::parse("sip:a@b c").is_err());
        assert!(Uri::parse("mailto:a@b").unwrap_err().contains("scheme"));
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse("\"Bob\" <sip:bob@x.org>;tag=abc").unwrap();
        assert_eq!(n.display.as_deref(), Some("Bob"));
        assert_eq!(n.tag(), Some("abc"));
        let n = NameAddr::parse("sip:bob@x.org;tag=abc").unwrap();
        assert_eq!(n.tag(), Some("abc"));
        assert!(n.uri.params.is_empty());
        assert!(NameAddr::parse("<sip:bob@x.org").is_err());
    }

    #[test]
    fn via_parse() {
        let v = Via::parse("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;rport").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.branch(), Some("z9hG4bKx"));
        assert!(Via::parse("SIP/3.0/UDP h").is_err());
        assert!(Via::parse("garbage").is_err());
    }
}
