//! SIP URIs (§19.1), name-addr values of From/To/Contact/Route (§20.10, §25.1)
//! and Via (§20.42).

use std::fmt;

/// A `sip:`, `sips:` or `tel:` URI, or any other absolute URI kept opaque
/// (§25.1 `absoluteURI`: From/To/Contact may carry `http:`, `isbn:`… — RFC 4475
/// §3.3.4). Only the Request-URI is limited to the schemes we serve (416, §8.2.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub scheme: String,
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<(String, Option<String>)>,
    /// Raw `?headers` part, kept opaque (§19.1.1).
    pub headers: Option<String>,
    /// Everything after `scheme:` for schemes other than sip/sips/tel.
    pub opaque: Option<String>,
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
    // paramchar / token / host (§25.1), plus ':' seen in practice
    b.is_ascii_alphanumeric() || b"-_.!~*'()[]/:&+$%`".contains(&b)
}

fn valid_user_char(b: u8) -> bool {
    // unreserved / escaped / user-unreserved (§25.1); '#' tolerated for phone keypads
    b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/%#".contains(&b)
}

/// `%` must introduce two hex digits wherever `escaped` is the grammar (§25.1).
fn valid_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() || !(b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// A URI scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (§25.1).
fn valid_scheme(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
}

/// Split at `sep` outside quoted strings (quoted-pair escapes honoured, §25.1).
pub(crate) fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut in_quote, mut escaped, mut start) = (false, false, 0);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            c if c == sep && !in_quote => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Length of the quoted-string at the start of `s` (which begins with `"`),
/// including both quotes; `None` when it is not terminated (§25.1).
pub(crate) fn quoted_len(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Some(i + 1);
        }
    }
    None
}

/// `;`-separated parameters; names and values may be surrounded by LWS
/// (SEMI and EQUAL allow SWS, §25.1) and values may be quoted strings.
fn parse_params(s: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    for p in split_unquoted(s, ';') {
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
            let quoted = v.starts_with('"') && quoted_len(v) == Some(v.len());
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
    /// Parse any absolute URI. A string that is not a URI at all (no scheme,
    /// whitespace, brackets) is an error mentioning "malformed"; a well-formed URI
    /// of another scheme is returned with `opaque` set, and callers that need a
    /// SIP URI check [`Uri::is_sip_or_tel`].
    pub fn parse(s: &str) -> Result<Uri, String> {
        // A URI never contains LWS, quotes or angle brackets (§19.1.1, §25.1):
        // RFC 4475 §3.1.2.7/§3.1.2.8/§3.1.2.14 are rejected here.
        if s.is_empty()
            || s.bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b"<>\"".contains(&b))
        {
            return Err("malformed URI".into());
        }
        let (scheme, rest) = s.split_once(':').ok_or("malformed URI: missing scheme")?;
        if !valid_scheme(scheme) {
            return Err("malformed URI scheme".into());
        }
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
                opaque: None,
            });
        }
        if scheme != "sip" && scheme != "sips" {
            if rest.is_empty() {
                return Err("malformed URI: empty".into());
            }
            return Ok(Uri {
                scheme,
                user: None,
                host: String::new(),
                port: None,
                params: Vec::new(),
                headers: None,
                opaque: Some(rest.to_string()),
            });
        }
        // userinfo ends at the first '@': neither hostport, params nor headers may
        // carry an unescaped '@', while the user part may carry '?', ';' and ','
        // (user-unreserved, §25.1; RFC 4475 §3.1.1.2 and §3.1.1.9).
        let (userinfo, rest) = match rest.find('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (rest, headers) = match rest.split_once('?') {
            Some((r, h)) => (r, Some(h.to_string())),
            None => (rest, None),
        };
        let user = match userinfo {
            // A password in the URI (user:pass) is deprecated (§19.1.1); keep the user.
            Some(ui) => {
                let u = ui.split(':').next().unwrap_or("");
                if u.is_empty() || !u.bytes().all(valid_user_char) || !valid_escapes(u) {
                    return Err("invalid user part".into());
                }
                Some(u.to_string())
            }
            None => None,
        };
        let (hostport, params) = match rest.split_once(';') {
            Some((h, p)) => (h, parse_params(p)?),
            None => (rest, Vec::new()),
        };
        let (host, port) = parse_hostport(hostport)?;
        Ok(Uri {
            scheme,
            user,
            host,
            port,
            params,
            headers,
            opaque: None,
        })
    }

    /// Whether this is a URI we can route on (sip, sips or tel).
    pub fn is_sip_or_tel(&self) -> bool {
        self.opaque.is_none()
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
            opaque: None,
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(o) = &self.opaque {
            return write!(f, "{}:{o}", self.scheme);
        }
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
    /// The display name, quotes removed and quoted-pairs unescaped.
    pub display: Option<String>,
    pub uri: Uri,
    pub params: Vec<(String, Option<String>)>,
}

/// Unescape the inside of a quoted-string (quoted-pair, §25.1).
fn unquote(q: &str) -> String {
    let inner = &q[1..q.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

impl NameAddr {
    /// §25.1 `name-addr / addr-spec` followed by `*( SEMI generic-param )`.
    pub fn parse(s: &str) -> Result<NameAddr, String> {
        let s = s.trim();
        let (display, after_display) = if s.starts_with('"') {
            // display-name = quoted-string; it may contain '<' and quoted-pairs.
            let n = quoted_len(s).ok_or("unterminated display name")?;
            (Some(unquote(&s[..n])), s[n..].trim_start())
        } else if let Some(lt) = s.find('<') {
            // display-name = *(token LWS). RFC 4475 §3.1.1.6 (no LWS before '<')
            // is accepted as the RFC asks; non-token characters (§3.1.2.15) are not.
            let d = s[..lt].trim();
            if !d
                .split([' ', '\t'])
                .all(|t| t.is_empty() || t.bytes().all(crate::message::is_token_char))
            {
                return Err("display name is neither a quoted string nor tokens".into());
            }
            let d = d.split_whitespace().collect::<Vec<_>>().join(" ");
            ((!d.is_empty()).then_some(d), &s[lt..])
        } else {
            (None, s)
        };
        if let Some(inner) = after_display.strip_prefix('<') {
            let gt = inner.find('>').ok_or("missing '>'")?;
            // Inside LAQUOT/RAQUOT there is exactly an addr-spec: no LWS (§3.1.2.14).
            let uri = Uri::parse(&inner[..gt])?;
            let rest = inner[gt + 1..].trim_start();
            let params = match rest.strip_prefix(';') {
                Some(p) => parse_params(p)?,
                None if rest.is_empty() => Vec::new(),
                None => return Err("garbage after '>'".into()),
            };
            return Ok(NameAddr {
                display,
                uri,
                params,
            });
        }
        if display.is_some() {
            return Err("display name without <uri>".into());
        }
        // addr-spec form: the URI ends at the first ';' (header params follow) and
        // must not contain ',', ';' or '?' itself (§20.10) — RFC 4475 §3.1.2.13.
        let (u, params) = match s.find(';') {
            Some(i) => (s[..i].trim_end(), parse_params(&s[i + 1..])?),
            None => (s, Vec::new()),
        };
        if u.contains(['?', ',']) {
            return Err("URI with '?' or ',' must be enclosed in <>".into());
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
            // Re-quote with quoted-pairs for '"', '\\' and control characters
            // (§25.1); CR and LF cannot be quoted at all and are dropped.
            f.write_str("\"")?;
            for c in d.chars().filter(|c| *c != '\r' && *c != '\n') {
                if c == '"' || c == '\\' || c.is_ascii_control() {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\" ")?;
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
    /// `sent-protocol LWS sent-by *( SEMI via-params )`, where SLASH, COLON, SEMI
    /// and EQUAL may be surrounded by whitespace (§25.1; RFC 4475 §3.1.1.1 folds
    /// a Via across three lines with LWS around every '/').
    pub fn parse(s: &str) -> Result<Via, String> {
        let s = s.trim();
        let mut parts = s.splitn(3, '/');
        let (Some(name), Some(ver), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
            return Err("malformed sent-protocol".into());
        };
        if !name.trim().eq_ignore_ascii_case("SIP") || ver.trim() != "2.0" {
            return Err("unsupported protocol".into());
        }
        let rest = rest.trim_start();
        let tlen = rest
            .bytes()
            .take_while(|b| crate::message::is_token_char(*b))
            .count();
        let transport = rest[..tlen].to_ascii_uppercase();
        let after = &rest[tlen..];
        if transport.is_empty() || !after.starts_with([' ', '\t']) {
            return Err("bad transport".into());
        }
        let after = after.trim_start();
        let (hostport, params) = match after.split_once(';') {
            Some((h, p)) => (h.trim(), parse_params(p)?),
            None => (after.trim(), Vec::new()),
        };
        // COLON = SWS ":" SWS
        let hostport: String = match hostport.split_once(':') {
            Some((h, p)) if !hostport.starts_with('[') => format!("{}:{}", h.trim(), p.trim()),
            _ => hostport.to_string(),
        };
        let (host, port) = parse_hostport(&hostport)?;
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
        assert_eq!(
            Uri::parse("mailto:a@b").unwrap().opaque.as_deref(),
            Some("a@b")
        );
        assert!(!Uri::parse("mailto:a@b").unwrap().is_sip_or_tel());
        assert!(Uri::parse("<sip:a@b>").is_err());
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
