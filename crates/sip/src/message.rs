//! SIP message model, strict parser and serializer (RFC 3261 §7, §20, §25).
//!
//! [`parse_message`] is the single entry point for every byte that arrives from the
//! network (and for the fuzz target). It never panics; anything it cannot prove
//! well-formed becomes a [`ParseError`] carrying the status code a UAS should answer
//! with (400, 416 or 513), and [`error_response`] builds that answer when enough of
//! the message survives to route it (§8.2, §21.4.1). Otherwise the caller drops it.

use std::fmt;

use crate::uri::{NameAddr, Uri, Via};

/// Largest message we accept. RFC 3261 §18.1.1 lets UDP messages reach the path MTU
/// and stream messages be larger, but a call-control UA never needs more than a few
/// KiB; anything bigger is answered with 513 (§21.5.14) instead of being buffered.
pub const MAX_MESSAGE_SIZE: usize = 32 * 1024;
/// Upper bound on header fields, so a flood of tiny headers cannot cost unbounded work.
pub const MAX_HEADERS: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Refer,
    Notify,
    Subscribe,
    Message,
    Update,
    Prack,
    Publish,
    /// A syntactically valid method we do not know (answered 501, §21.5.2).
    Other(String),
}

impl Method {
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Notify => "NOTIFY",
            Method::Subscribe => "SUBSCRIBE",
            Method::Message => "MESSAGE",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }

    fn parse(s: &str) -> Option<Method> {
        if s.is_empty() || !s.bytes().all(is_token_char) {
            return None;
        }
        // Methods are case-sensitive (§7.1).
        Some(match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "REFER" => Method::Refer,
            "NOTIFY" => Method::Notify,
            "SUBSCRIBE" => Method::Subscribe,
            "MESSAGE" => Method::Message,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other.to_string()),
        })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Header fields in wire order. Names are stored in their canonical long form so
/// compact forms (§7.3.3) need no special casing anywhere else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }
    /// First value of a header (case-insensitive, §7.3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// All values, with comma-separated lists split into elements (§7.3.1).
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| split_comma(v))
            .collect()
    }
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }
    /// Replace every occurrence of `name` by a single value.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.0.push((name.to_string(), value.into()));
    }
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
    fn count(&self, name: &str) -> usize {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: Headers,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipMessage {
    Request(Request),
    Response(Response),
}

/// Why a message was rejected, with the status a UAS answers it with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {reason}: {detail}")]
pub struct ParseError {
    pub status: u16,
    pub reason: &'static str,
    pub detail: String,
}

impl ParseError {
    fn bad(detail: impl Into<String>) -> Self {
        ParseError {
            status: 400,
            reason: "Bad Request",
            detail: detail.into(),
        }
    }
    fn version(detail: impl Into<String>) -> Self {
        ParseError {
            status: 505,
            reason: "Version Not Supported",
            detail: detail.into(),
        }
    }
    fn too_large(detail: impl Into<String>) -> Self {
        ParseError {
            status: 513,
            reason: "Message Too Large",
            detail: detail.into(),
        }
    }
}

/// The cseq of a message, parsed (§20.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

/// Accessors shared by requests and responses. All mandatory headers were checked
/// by the parser, so for parsed messages these only fail for hand-built ones.
pub trait HeaderAccess {
    fn headers(&self) -> &Headers;
    fn headers_mut(&mut self) -> &mut Headers;
    fn body(&self) -> &[u8];

    fn call_id(&self) -> &str {
        self.headers().get("Call-ID").unwrap_or("")
    }
    fn cseq(&self) -> Option<CSeq> {
        parse_cseq(self.headers().get("CSeq")?).ok()
    }
    fn header_from(&self) -> Option<NameAddr> {
        NameAddr::parse(self.headers().get("From")?).ok()
    }
    fn header_to(&self) -> Option<NameAddr> {
        NameAddr::parse(self.headers().get("To")?).ok()
    }
    fn top_via(&self) -> Option<Via> {
        Via::parse(self.headers().get_all("Via").first()?).ok()
    }
    fn contact(&self) -> Option<NameAddr> {
        NameAddr::parse(self.headers().get_all("Contact").first()?).ok()
    }
    fn content_type(&self) -> Option<String> {
        self.headers().get("Content-Type").map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }
}

impl HeaderAccess for Request {
    fn headers(&self) -> &Headers {
        &self.headers
    }
    fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }
    fn body(&self) -> &[u8] {
        &self.body
    }
}

impl HeaderAccess for Response {
    fn headers(&self) -> &Headers {
        &self.headers
    }
    fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }
    fn body(&self) -> &[u8] {
        &self.body
    }
}

impl SipMessage {
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            SipMessage::Request(r) => r.to_bytes(),
            SipMessage::Response(r) => r.to_bytes(),
        }
    }
}

fn write_headers_and_body(out: &mut Vec<u8>, headers: &Headers, body: &[u8]) {
    for (n, v) in headers.iter() {
        // Content-Length is always recomputed so it can never disagree with the body.
        if n.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
}

impl Request {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} SIP/2.0\r\n", self.method, self.uri).into_bytes();
        write_headers_and_body(&mut out, &self.headers, &self.body);
        out
    }
}

impl Response {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("SIP/2.0 {} {}\r\n", self.status, self.reason).into_bytes();
        write_headers_and_body(&mut out, &self.headers, &self.body);
        out
    }
    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Token characters (§25.1) — used for methods and header names.
pub(crate) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Map compact header forms (§7.3.3) and common spellings to one canonical name.
fn canonical_name(name: &str) -> String {
    let canon = match name.to_ascii_lowercase().as_str() {
        "i" | "call-id" => "Call-ID",
        "m" | "contact" => "Contact",
        "e" | "content-encoding" => "Content-Encoding",
        "l" | "content-length" => "Content-Length",
        "c" | "content-type" => "Content-Type",
        "f" | "from" => "From",
        "s" | "subject" => "Subject",
        "k" | "supported" => "Supported",
        "t" | "to" => "To",
        "v" | "via" => "Via",
        "r" | "refer-to" => "Refer-To",
        "b" | "referred-by" => "Referred-By",
        "o" | "event" => "Event",
        "u" | "allow-events" => "Allow-Events",
        "cseq" => "CSeq",
        "max-forwards" => "Max-Forwards",
        "www-authenticate" => "WWW-Authenticate",
        "proxy-authenticate" => "Proxy-Authenticate",
        "authorization" => "Authorization",
        "proxy-authorization" => "Proxy-Authorization",
        "record-route" => "Record-Route",
        "route" => "Route",
        "require" => "Require",
        "expires" => "Expires",
        _ => return name.to_string(),
    };
    canon.to_string()
}

/// Split a header value at commas that are outside quotes and angle brackets
/// (§7.3.1: "comma-separated list" headers). Quoted-pair escapes are honoured.
pub fn split_comma(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut in_quote, mut in_angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in v.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            '<' if !in_quote => in_angle = true,
            '>' if !in_quote => in_angle = false,
            ',' if !in_quote && !in_angle => {
                out.push(v[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(v[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

pub fn parse_cseq(v: &str) -> Result<CSeq, ParseError> {
    let mut it = v.split_ascii_whitespace();
    let (Some(num), Some(m), None) = (it.next(), it.next(), it.next()) else {
        return Err(ParseError::bad("malformed CSeq"));
    };
    // §8.1.1.5: the sequence number MUST be expressible as a 32-bit unsigned integer
    // and less than 2**31.
    let seq: u32 = num
        .parse()
        .ok()
        .filter(|n| *n < (1u32 << 31) && num.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| ParseError::bad("CSeq number out of range"))?;
    let method = Method::parse(m).ok_or_else(|| ParseError::bad("CSeq method"))?;
    Ok(CSeq { seq, method })
}

/// Where the header section ends: index of the first byte of the body.
pub(crate) fn find_header_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
}

/// Parse one complete SIP message (a UDP datagram, or one framed stream message).
///
/// Strictness follows §7 and §8.2: a well-formed start line, token header names,
/// UTF-8 header text, the mandatory headers of §8.1.1 (To, From, CSeq, Call-ID, Via)
/// exactly once where the grammar allows one, a CSeq method matching the request
/// method (§8.2.3 leaves this to the 400 case), and a Content-Length that is not
/// larger than the bytes present (§18.3: a shorter one truncates the body).
pub fn parse_message(bytes: &[u8]) -> Result<SipMessage, ParseError> {
    if bytes.len() > MAX_MESSAGE_SIZE {
        return Err(ParseError::too_large(format!("{} bytes", bytes.len())));
    }
    // §7.5: implementations SHOULD ignore CRLFs before the start line (keep-alives).
    let start = bytes
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .ok_or_else(|| ParseError::bad("empty message"))?;
    let bytes = &bytes[start..];
    let hdr_end = find_header_end(bytes).ok_or_else(|| ParseError::bad("no end of headers"))?;
    let head = std::str::from_utf8(&bytes[..hdr_end - 4])
        .map_err(|_| ParseError::bad("header section is not UTF-8"))?;
    let raw_body = &bytes[hdr_end..];

    let mut lines = head.split("\r\n");
    let start_line = lines.next().unwrap_or("");
    if start_line.contains(['\r', '\n']) || start_line.bytes().any(|b| b.is_ascii_control()) {
        return Err(ParseError::bad("control characters in start line"));
    }

    // The start line decides first: a request for another SIP version is
    // answered 505 whatever else is wrong with it (§8.2.2, RFC 4475 §3.1.2.16).
    let request_line = if start_line.starts_with("SIP/") {
        None
    } else {
        // Request-Line = Method SP Request-URI SP SIP-Version CRLF: exactly one SP
        // between the elements and none after (§7.1; RFC 4475 §3.1.2.8-§3.1.2.10).
        let mut parts = start_line.split(' ');
        let (Some(m), Some(u), Some(v), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseError::bad("malformed request line"));
        };
        if v != "SIP/2.0" {
            let numeric = v.strip_prefix("SIP/").is_some_and(|n| {
                n.split_once('.').is_some_and(|(a, b)| {
                    !a.is_empty()
                        && !b.is_empty()
                        && a.bytes().all(|c| c.is_ascii_digit())
                        && b.bytes().all(|c| c.is_ascii_digit())
                })
            });
            return Err(if numeric {
                ParseError::version(format!("{v} is not supported"))
            } else {
                ParseError::bad("malformed SIP version")
            });
        }
        Some((m, u))
    };

    // Unfold continuation lines (§7.3.1) and split name: value.
    let mut headers = Headers::new();
    for line in lines {
        if line.contains(['\r', '\n']) {
            return Err(ParseError::bad("bare CR or LF in header section"));
        }
        if line.starts_with([' ', '\t']) {
            let Some(last) = headers.0.last_mut() else {
                return Err(ParseError::bad("continuation before first header"));
            };
            last.1.push(' ');
            last.1.push_str(line.trim());
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| ParseError::bad("header line without colon"))?;
        let name = name.trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Err(ParseError::bad("invalid header name"));
        }
        if !header_value_ok(value) {
            return Err(ParseError::bad("control characters in header value"));
        }
        if headers.0.len() >= MAX_HEADERS {
            return Err(ParseError::bad("too many headers"));
        }
        headers.push(canonical_name(name), value.trim());
    }

    // Mandatory headers (§8.1.1), single-valued ones exactly once.
    for name in ["Call-ID", "CSeq", "From", "To"] {
        match headers.count(name) {
            1 => {}
            0 => return Err(ParseError::bad(format!("missing {name}"))),
            _ => return Err(ParseError::bad(format!("duplicate {name}"))),
        }
    }
    if headers.count("Content-Length") > 1 || headers.count("Max-Forwards") > 1 {
        return Err(ParseError::bad("duplicate single-valued header"));
    }
    let vias = headers.get_all("Via");
    if vias.is_empty() {
        return Err(ParseError::bad("missing Via"));
    }
    for v in &vias {
        Via::parse(v).map_err(|e| ParseError::bad(format!("Via: {e}")))?;
    }
    if headers.get("Call-ID").is_some_and(|c| {
        c.is_empty() || c.contains(char::is_whitespace) || c.bytes().any(|b| !b.is_ascii())
    }) {
        return Err(ParseError::bad("malformed Call-ID"));
    }
    let cseq = parse_cseq(headers.get("CSeq").unwrap_or_default())?;
    for name in ["From", "To"] {
        NameAddr::parse(headers.get(name).unwrap_or_default())
            .map_err(|e| ParseError::bad(format!("{name}: {e}")))?;
    }
    for c in headers.get_all("Contact") {
        if c != "*" {
            NameAddr::parse(c).map_err(|e| ParseError::bad(format!("Contact: {e}")))?;
        }
    }
    if let Some(mf) = headers.get("Max-Forwards") {
        // 1*DIGIT (§25.1); leading zeros are legal ("0068", RFC 4475 §3.1.1.1). A
        // UA never forwards, so an out-of-range value is otherwise ignored (§3.1.2.4).
        if mf.is_empty() || mf.len() > 10 || !mf.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::bad("malformed Max-Forwards"));
        }
    }

    // §18.3: with Content-Length present, the body is exactly that long; a datagram
    // with fewer bytes is rejected, extra bytes are discarded. Without it (only
    // legal on UDP) the body runs to the end of the datagram.
    let body = match headers.get("Content-Length") {
        Some(cl) => {
            if cl.is_empty() || cl.len() > 10 || !cl.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::bad("malformed Content-Length"));
            }
            let n: usize = cl
                .parse()
                .map_err(|_| ParseError::bad("malformed Content-Length"))?;
            if n > MAX_MESSAGE_SIZE {
                return Err(ParseError::too_large("Content-Length too large"));
            }
            if n > raw_body.len() {
                return Err(ParseError::bad("body shorter than Content-Length"));
            }
            raw_body[..n].to_vec()
        }
        None => raw_body.to_vec(),
    };

    if let Some(rest) = start_line.strip_prefix("SIP/2.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::bad("malformed status code"));
        }
        let status: u16 = code
            .parse()
            .map_err(|_| ParseError::bad("malformed status code"))?;
        if !(100..700).contains(&status) {
            return Err(ParseError::bad("status code out of range"));
        }
        return Ok(SipMessage::Response(Response {
            status,
            reason: reason.to_string(),
            headers,
            body,
        }));
    }

    let Some((m, u)) = request_line else {
        return Err(ParseError::bad("malformed status line"));
    };
    let method = Method::parse(m).ok_or_else(|| ParseError::bad("malformed method"))?;
    let uri = Uri::parse(u).map_err(|e| ParseError::bad(format!("Request-URI: {e}")))?;
    if !uri.is_sip_or_tel() {
        // §8.2.2.1: a well-formed URI of a scheme we do not serve → 416
        // (RFC 4475 §3.3.2, §3.3.3).
        return Err(ParseError {
            status: 416,
            reason: "Unsupported URI Scheme",
            detail: format!("unsupported scheme {}", uri.scheme),
        });
    }
    if uri.headers.is_some() {
        // §19.1.5: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11).
        return Err(ParseError::bad("Request-URI carries headers"));
    }
    // §8.2.3 / §20.16: CSeq method must match the request method. An unknown
    // method is answered 501 whatever its CSeq says (RFC 4475 §3.1.2.18 prefers
    // 501 to 400 there), so only known methods are held to it.
    if cseq.method != method && !matches!(method, Method::Other(_)) {
        return Err(ParseError::bad("CSeq method does not match request method"));
    }
    Ok(SipMessage::Request(Request {
        method,
        uri,
        headers,
        body,
    }))
}

/// Whether a header value is free of control characters, except HTAB and the
/// quoted-pairs of a quoted-string (§25.1: `quoted-pair = "\\" (%x00-09 /
/// %x0B-0C / %x0E-7F)`, so a quoted NUL, BEL or DEL is legal — RFC 4475
/// §3.1.1.2 — while CR and LF never are).
pub(crate) fn header_value_ok(v: &str) -> bool {
    let (mut in_quote, mut escaped) = (false, false);
    for b in v.bytes() {
        if escaped {
            escaped = false;
            if b == b'\r' || b == b'\n' {
                return false;
            }
            continue;
        }
        match b {
            b'\\' if in_quote => escaped = true,
            b'"' => in_quote = !in_quote,
            b'\t' => {}
            b if b.is_ascii_control() => return false,
            _ => {}
        }
    }
    true
}

/// Build the error response for a request that failed to parse (§8.2.6.2: Via,
/// From, To, Call-ID and CSeq are copied), from whatever of those headers did
/// survive: a message is never left unanswered because one of them is itself
/// what was malformed (RFC 4475 §3.3.1 has no From, To or Call-ID and still
/// expects its 400). The caller sends it to where the message came from (the
/// datagram's source, or back down the connection), so the copied Via does not
/// need to be routable. Responses, ACKs (§17.1.1.3: never answered) and input
/// that is not a request at all, or has no Via to match an answer on, get `None`:
/// the caller drops and logs them.
pub fn error_response(raw: &[u8], err: &ParseError, server: &str) -> Option<Vec<u8>> {
    error_response_with(raw, err, server, &[])
}

/// [`error_response`] with extra header fields (`Retry-After` on a 503).
pub fn error_response_with(
    raw: &[u8],
    err: &ParseError,
    server: &str,
    extra: &[(&str, String)],
) -> Option<Vec<u8>> {
    let raw = &raw[..raw.len().min(MAX_MESSAGE_SIZE)];
    let skip = raw
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(raw.len());
    let raw = &raw[skip..];
    let head_end = find_header_end(raw).map_or(raw.len(), |e| e - 4);
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    // A request line: a method token first and a SIP version last.
    let mut words = start.split_whitespace();
    let method = words.next()?;
    if start.starts_with("SIP/")
        || method == "ACK"
        || !method.bytes().all(is_token_char)
        || !words.last().is_some_and(|v| v.starts_with("SIP/"))
    {
        return None;
    }
    // Unfold (§7.3.1) before picking the headers.
    let mut unfolded: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = unfolded.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        if let Some((n, v)) = line.split_once(':') {
            unfolded.push((canonical_name(n.trim()), v.trim().to_string()));
        }
    }
    let mut copied = Headers::new();
    for (n, v) in &unfolded {
        let wanted = n == "Via"
            || (["From", "To", "Call-ID", "CSeq"].contains(&n.as_str())
            // single-valued: the first one only (RFC 4475 §3.3.8 repeats them all)
            && copied.get(n).is_none());
        if wanted && !v.is_empty() && header_value_ok(v) && !v.contains(['\r', '\n']) {
            let v = match (n.as_str(), NameAddr::parse(v)) {
                // §8.2.6.2: a UAS adds a To tag to a final response.
                ("To", Ok(na)) if na.tag().is_none() && err.status > 100 => {
                    format!("{v};tag={:016x}", rand::random::<u64>())
                }
                _ => v.clone(),
            };
            copied.push(n.clone(), v);
        }
    }
    copied.get("Via")?;
    copied.push("Server", server);
    for (n, v) in extra {
        copied.push(*n, v.clone());
    }
    let resp = Response {
        status: err.status,
        reason: err.reason.to_string(),
        headers: copied,
        body: Vec::new(),
    };
    Some(resp.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:+15551234567@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:+15551234567@127.0.0.1>\r\n\
f: \"Alice\" <sip:alice@127.0.0.1>;tag=1928301774\r\n\
i: a84b4c76e66710@pc33\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@127.0.0.1:5070>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\nEXTRA";

    #[test]
    fn parses_invite_with_compact_headers_and_truncates_body() {
        let SipMessage::Request(r) = parse_message(INVITE.as_bytes()).unwrap() else {
            panic!("not a request")
        };
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.uri.user.as_deref(), Some("+15551234567"));
        assert_eq!(r.call_id(), "a84b4c76e66710@pc33");
        assert_eq!(r.header_from().unwrap().tag(), Some("1928301774"));
        assert_eq!(r.body, b"v=0\n");
        let again = parse_message(&r.to_bytes()).unwrap();
        assert_eq!(again, SipMessage::Request(r));
    }

    #[test]
    fn rejects_malformed_with_400_or_513() {
        let missing_callid = INVITE.replace("i: a84b4c76e66710@pc33\r\n", "");
        let e = parse_message(missing_callid.as_bytes()).unwrap_err();
        assert_eq!(e.status, 400);
        // Without a Call-ID the answer still goes out, with what there is.
        let resp = error_response(missing_callid.as_bytes(), &e, "x").unwrap();
        let text = String::from_utf8(resp).unwrap();
        assert!(text.starts_with("SIP/2.0 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("CSeq: 314159 INVITE\r\n"), "{text}");
        assert!(!text.contains("Call-ID"), "{text}");

        let long_cl = INVITE.replace("Content-Length: 4", "Content-Length: 400");
        let e = parse_message(long_cl.as_bytes()).unwrap_err();
        assert_eq!(e.status, 400);
        let resp = error_response(long_cl.as_bytes(), &e, "x").unwrap();
        let SipMessage::Response(r) = parse_message(&resp).unwrap() else {
            panic!()
        };
        assert_eq!(r.status, 400);
        assert_eq!(r.call_id(), "a84b4c76e66710@pc33");

        let bad_cseq = INVITE.replace("314159 INVITE", "314159 BYE");
        assert_eq!(parse_message(bad_cseq.as_bytes()).unwrap_err().status, 400);
        let bad_hdr = INVITE.replace("Max-Forwards: 70", "Max Forwards: 70");
        assert_eq!(parse_message(bad_hdr.as_bytes()).unwrap_err().status, 400);
        let huge = format!("{INVITE}{}", "x".repeat(MAX_MESSAGE_SIZE));
        assert_eq!(parse_message(huge.as_bytes()).unwrap_err().status, 513);
        let huge_cl = INVITE.replace("Content-Length: 4", "Content-Length: 99999999");
        assert_eq!(parse_message(huge_cl.as_bytes()).unwrap_err().status, 513);
        let scheme = INVITE.replace("INVITE sip:+1", "INVITE http://x/+1");
        assert_eq!(parse_message(scheme.as_bytes()).unwrap_err().status, 416);
        let dup = INVITE.replace(
            "CSeq: 314159 INVITE\r\n",
            "CSeq: 1 INVITE\r\nCSeq: 2 INVITE\r\n",
        );
        assert_eq!(parse_message(dup.as_bytes()).unwrap_err().status, 400);
    }

    #[test]
    fn splits_lists_outside_quotes() {
        assert_eq!(
            split_comma("\"a,b\" <sip:x@y>, <sip:z@w;lr>"),
            vec!["\"a,b\" <sip:x@y>", "<sip:z@w;lr>"]
        );
    }
}
