//! SDP (RFC 8866, formerly RFC 4566) parsing/serialization and the RFC 3264
//! offer/answer rules for our audio-only, G.711 + telephone-event endpoint.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Largest SDP we parse; real offers are well under 4 KiB.
pub const MAX_SDP_SIZE: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SDP: {0}")]
pub struct SdpError(pub String);

fn err<T>(s: impl Into<String>) -> Result<T, SdpError> {
    Err(SdpError(s.into()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: u64,
    pub session_version: u64,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// "IP4" or "IP6".
    pub addr_type: String,
    pub address: String,
}

impl Connection {
    pub fn ip(&self) -> Option<IpAddr> {
        // Multicast TTL suffix ("/127") is legal syntax; we only use unicast.
        self.address.split('/').next()?.parse().ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn from_attr(name: &str) -> Option<Direction> {
        Some(match name {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
    /// The answer direction for an offered one (RFC 3264 §6.1).
    pub fn answer_to(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    pub media: String,
    pub port: u16,
    pub num_ports: Option<u16>,
    pub proto: String,
    pub formats: Vec<String>,
    pub connection: Option<Connection>,
    pub attributes: Vec<Attribute>,
    /// Other lines (i=, b=, k=) kept verbatim for round-tripping.
    pub other: Vec<(char, String)>,
}

impl MediaDescription {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_deref().unwrap_or(""))
    }
    /// Explicit direction attribute, if any.
    pub fn direction(&self) -> Option<Direction> {
        self.attributes
            .iter()
            .find_map(|a| Direction::from_attr(&a.name))
    }
    /// `a=rtpmap:<pt> <name>/<rate>` for a payload type.
    pub fn rtpmap(&self, pt: u8) -> Option<(String, u32)> {
        self.attributes.iter().find_map(|a| {
            if a.name != "rtpmap" {
                return None;
            }
            let v = a.value.as_deref()?;
            let (p, enc) = v.split_once(' ')?;
            if p.parse::<u8>().ok()? != pt {
                return None;
            }
            let mut it = enc.trim().split('/');
            let name = it.next()?.to_string();
            let rate = it.next()?.parse().ok()?;
            Some((name, rate))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin: Origin,
    pub session_name: String,
    pub connection: Option<Connection>,
    /// t= lines as (start, stop).
    pub timing: Vec<(u64, u64)>,
    pub attributes: Vec<Attribute>,
    pub media: Vec<MediaDescription>,
    /// Other session-level lines (i=, u=, e=, p=, b=, r=, z=, k=) kept verbatim.
    pub other: Vec<(char, String)>,
}

impl SessionDescription {
    pub fn direction(&self) -> Option<Direction> {
        self.attributes
            .iter()
            .find_map(|a| Direction::from_attr(&a.name))
    }
    /// Effective direction of a media stream: media level, then session level,
    /// default sendrecv (RFC 3264 §5.1).
    pub fn media_direction(&self, m: &MediaDescription) -> Direction {
        m.direction()
            .or_else(|| self.direction())
            .unwrap_or(Direction::SendRecv)
    }
    pub fn media_connection<'a>(&'a self, m: &'a MediaDescription) -> Option<&'a Connection> {
        m.connection.as_ref().or(self.connection.as_ref())
    }
}

fn parse_connection(v: &str) -> Result<Connection, SdpError> {
    let mut it = v.split(' ');
    let (Some("IN"), Some(t), Some(a), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return err("malformed c= line");
    };
    let base = a.split('/').next().unwrap_or("");
    let ok = match t {
        "IP4" => base.parse::<Ipv4Addr>().is_ok() || is_fqdn(base),
        "IP6" => base.parse::<std::net::Ipv6Addr>().is_ok() || is_fqdn(base),
        _ => false,
    };
    if !ok {
        return err("bad connection address");
    }
    Ok(Connection {
        addr_type: t.to_string(),
        address: a.to_string(),
    })
}

fn is_fqdn(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && s.bytes().any(|b| b.is_ascii_alphabetic())
}

fn parse_attribute(v: &str) -> Result<Attribute, SdpError> {
    let (name, value) = match v.split_once(':') {
        Some((n, val)) => (n, Some(val.to_string())),
        None => (v, None),
    };
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
    {
        return err("bad attribute name");
    }
    Ok(Attribute {
        name: name.to_string(),
        value,
    })
}

/// Parse an SDP body strictly: `v=0` first, then `o=`, `s=`, at least one `t=`,
/// known type letters only (RFC 8866 §5: a description with an unknown type letter
/// is ignored as a whole), every RTP media with a connection address and numeric
/// payload types. LF-only line endings are accepted (RFC 8866 §5).
pub fn parse(input: &[u8]) -> Result<SessionDescription, SdpError> {
    if input.len() > MAX_SDP_SIZE {
        return err("too large");
    }
    let text = std::str::from_utf8(input).map_err(|_| SdpError("not UTF-8".into()))?;
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.is_empty())
        .peekable();

    let mut next = |expect: char| -> Result<String, SdpError> {
        let l = lines
            .next()
            .ok_or_else(|| SdpError(format!("missing {expect}=")))?;
        match l.split_once('=') {
            Some((t, v)) if t.len() == 1 && t.starts_with(expect) => Ok(v.to_string()),
            _ => err(format!("expected {expect}= line")),
        }
    };
    if next('v')? != "0" {
        return err("unsupported version");
    }
    let o = next('o')?;
    let of: Vec<&str> = o.split(' ').collect();
    if of.len() != 6 || of[3] != "IN" {
        return err("malformed o= line");
    }
    let origin = Origin {
        username: of[0].to_string(),
        session_id: of[1].parse().map_err(|_| SdpError("bad sess-id".into()))?,
        session_version: of[2]
            .parse()
            .map_err(|_| SdpError("bad sess-version".into()))?,
        address: of[5].to_string(),
    };
    let session_name = next('s')?;

    let mut sd = SessionDescription {
        origin,
        session_name,
        connection: None,
        timing: Vec::new(),
        attributes: Vec::new(),
        media: Vec::new(),
        other: Vec::new(),
    };
    for line in lines {
        let Some((t, v)) = line.split_once('=') else {
            return err("line without '='");
        };
        let mut chars = t.chars();
        let (Some(t), None) = (chars.next(), chars.next()) else {
            return err("type is not one letter");
        };
        if v.chars().any(|c| c.is_control() && c != '\t') {
            return err("control character");
        }
        let in_media = !sd.media.is_empty();
        match t {
            'm' => {
                let f: Vec<&str> = v.split(' ').collect();
                if f.len() < 4 {
                    return err("malformed m= line");
                }
                let (port, num_ports) = match f[1].split_once('/') {
                    Some((p, n)) => (p, Some(n)),
                    None => (f[1], None),
                };
                let port: u16 = port
                    .parse()
                    .map_err(|_| SdpError("bad media port".into()))?;
                let num_ports = match num_ports {
                    Some(n) => Some(n.parse().map_err(|_| SdpError("bad port count".into()))?),
                    None => None,
                };
                let proto = f[2].to_string();
                let formats: Vec<String> = f[3..].iter().map(|s| s.to_string()).collect();
                if formats.iter().any(|s| s.is_empty()) {
                    return err("empty format");
                }
                if proto.starts_with("RTP/")
                    && formats
                        .iter()
                        .any(|p| p.parse::<u8>().map_or(true, |n| n > 127))
                {
                    return err("RTP payload type not in 0..=127");
                }
                sd.media.push(MediaDescription {
                    media: f[0].to_string(),
                    port,
                    num_ports,
                    proto,
                    formats,
                    connection: None,
                    attributes: Vec::new(),
                    other: Vec::new(),
                });
            }
            'c' => {
                let c = parse_connection(v)?;
                match sd.media.last_mut() {
                    Some(m) => m.connection = Some(c),
                    None => sd.connection = Some(c),
                }
            }
            'a' => {
                let a = parse_attribute(v)?;
                match sd.media.last_mut() {
                    Some(m) => m.attributes.push(a),
                    None => sd.attributes.push(a),
                }
            }
            't' if !in_media => {
                let mut it = v.split(' ');
                let (Some(a), Some(b), None) = (it.next(), it.next(), it.next()) else {
                    return err("malformed t= line");
                };
                let a = a.parse().map_err(|_| SdpError("bad t= start".into()))?;
                let b = b.parse().map_err(|_| SdpError("bad t= stop".into()))?;
                sd.timing.push((a, b));
            }
            'i' | 'b' | 'k' => match sd.media.last_mut() {
                Some(m) => m.other.push((t, v.to_string())),
                None => sd.other.push((t, v.to_string())),
            },
            'u' | 'e' | 'p' | 'r' | 'z' if !in_media => sd.other.push((t, v.to_string())),
            _ => return err(format!("unexpected '{t}=' line")),
        }
    }
    if sd.timing.is_empty() {
        return err("missing t= line");
    }
    for m in &sd.media {
        if m.port != 0 && m.proto.starts_with("RTP/") && sd.media_connection(m).is_none() {
            return err("media without connection address");
        }
    }
    Ok(sd)
}

fn fmt_attrs(f: &mut fmt::Formatter<'_>, attrs: &[Attribute]) -> fmt::Result {
    for a in attrs {
        match &a.value {
            Some(v) => write!(f, "a={}:{}\r\n", a.name, v)?,
            None => write!(f, "a={}\r\n", a.name)?,
        }
    }
    Ok(())
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        let at = if o.address.contains(':') {
            "IP6"
        } else {
            "IP4"
        };
        write!(
            f,
            "v=0\r\no={} {} {} IN {} {}\r\ns={}\r\n",
            o.username, o.session_id, o.session_version, at, o.address, self.session_name
        )?;
        // RFC 8866 §5 order: i u e p c b t r z k a m.
        for (t, v) in self.other.iter().filter(|(t, _)| "iuep".contains(*t)) {
            write!(f, "{t}={v}\r\n")?;
        }
        if let Some(c) = &self.connection {
            write!(f, "c=IN {} {}\r\n", c.addr_type, c.address)?;
        }
        for (t, v) in self.other.iter().filter(|(t, _)| *t == 'b') {
            write!(f, "{t}={v}\r\n")?;
        }
        for (a, b) in &self.timing {
            write!(f, "t={a} {b}\r\n")?;
        }
        for (t, v) in self.other.iter().filter(|(t, _)| "rzk".contains(*t)) {
            write!(f, "{t}={v}\r\n")?;
        }
        fmt_attrs(f, &self.attributes)?;
        for m in &self.media {
            write!(f, "m={} {}", m.media, m.port)?;
            if let Some(n) = m.num_ports {
                write!(f, "/{n}")?;
            }
            write!(f, " {} {}\r\n", m.proto, m.formats.join(" "))?;
            for (t, v) in m.other.iter().filter(|(t, _)| *t == 'i') {
                write!(f, "{t}={v}\r\n")?;
            }
            if let Some(c) = &m.connection {
                write!(f, "c=IN {} {}\r\n", c.addr_type, c.address)?;
            }
            for (t, v) in m.other.iter().filter(|(t, _)| *t != 'i') {
                write!(f, "{t}={v}\r\n")?;
            }
            fmt_attrs(f, &m.attributes)?;
        }
        Ok(())
    }
}

/// The audio codecs this endpoint can send and receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Pcmu,
    Pcma,
}

impl Codec {
    pub fn static_pt(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }
}

/// Payload type for telephone-event in our offers (RFC 4733; dynamic range).
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// What the media layer needs from a negotiated description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaParams {
    pub codec: Codec,
    /// Payload type to use for the codec (the offerer's number).
    pub payload_type: u8,
    pub telephone_event_pt: Option<u8>,
    /// Where to send RTP. `None` when the peer put us on hold with c=0.0.0.0 or
    /// rejected the stream (port 0).
    pub remote_rtp: Option<SocketAddr>,
    /// The peer's direction for this stream, from the peer's point of view.
    pub remote_direction: Direction,
    /// Our direction (what we put / should put in our SDP).
    pub local_direction: Direction,
    /// RFC 3264 §8.4: the peer holds the call (sendonly/inactive or c=0.0.0.0).
    pub on_hold: bool,
    pub ptime: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// No common audio codec: the INVITE is answered 488 (RFC 3264 §6, RFC 3261 §13.3.1.3).
    #[error("no common codec")]
    NoCommonCodec,
    #[error(transparent)]
    Invalid(#[from] SdpError),
}

impl NegotiationError {
    pub fn status(&self) -> u16 {
        488
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub sdp: SessionDescription,
    pub params: MediaParams,
}

fn ip_strings(ip: IpAddr) -> (&'static str, String) {
    match ip {
        IpAddr::V4(a) => ("IP4", a.to_string()),
        IpAddr::V6(a) => ("IP6", a.to_string()),
    }
}

fn our_session(local_ip: IpAddr, session_id: u64, version: u64) -> SessionDescription {
    let (at, addr) = ip_strings(local_ip);
    SessionDescription {
        origin: Origin {
            username: "switchboard".into(),
            session_id,
            session_version: version,
            address: addr.clone(),
        },
        session_name: "switchboard".into(),
        connection: Some(Connection {
            addr_type: at.into(),
            address: addr,
        }),
        timing: vec![(0, 0)],
        attributes: Vec::new(),
        media: Vec::new(),
        other: Vec::new(),
    }
}

fn codec_for(m: &MediaDescription, pt: u8) -> Option<Codec> {
    match m.rtpmap(pt) {
        Some((name, 8000)) if name.eq_ignore_ascii_case("PCMU") => Some(Codec::Pcmu),
        Some((name, 8000)) if name.eq_ignore_ascii_case("PCMA") => Some(Codec::Pcma),
        Some(_) => None,
        // Static payload types need no rtpmap (RFC 3551 table 4).
        None => match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        },
    }
}

fn telephone_event_in(m: &MediaDescription) -> Option<u8> {
    m.formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .find(|pt| {
            m.rtpmap(*pt)
                .is_some_and(|(n, r)| n.eq_ignore_ascii_case("telephone-event") && r == 8000)
        })
}

/// Media parameters of a remote description for the first usable audio stream,
/// choosing the first codec in the peer's order that we support (RFC 3264 §6.1).
pub fn media_params(
    remote: &SessionDescription,
    supported: &[Codec],
) -> Result<MediaParams, NegotiationError> {
    let m = remote
        .media
        .iter()
        .find(|m| m.media == "audio" && m.port != 0 && m.proto == "RTP/AVP")
        .ok_or(NegotiationError::NoCommonCodec)?;
    let (pt, codec) = m
        .formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .find_map(|pt| {
            codec_for(m, pt)
                .filter(|c| supported.contains(c))
                .map(|c| (pt, c))
        })
        .ok_or(NegotiationError::NoCommonCodec)?;
    let dir = remote.media_direction(m);
    let ip = remote.media_connection(m).and_then(Connection::ip);
    // RFC 3264 §8.4: c=0.0.0.0 is the legacy (RFC 2543) way to put a call on hold.
    let zero = ip.is_some_and(|ip| ip.is_unspecified());
    let on_hold = zero || matches!(dir, Direction::SendOnly | Direction::Inactive);
    Ok(MediaParams {
        codec,
        payload_type: pt,
        telephone_event_pt: telephone_event_in(m),
        remote_rtp: ip.filter(|_| !zero).map(|ip| SocketAddr::new(ip, m.port)),
        remote_direction: dir,
        local_direction: dir.answer_to(),
        on_hold,
        ptime: m.attr("ptime").and_then(|p| p.trim().parse().ok()),
    })
}

fn audio_media(
    port: u16,
    pt: u8,
    codec: Codec,
    te: Option<u8>,
    dir: Direction,
) -> MediaDescription {
    let mut formats = vec![pt.to_string()];
    let mut attributes = vec![Attribute {
        name: "rtpmap".into(),
        value: Some(format!("{pt} {}/8000", codec.name())),
    }];
    if let Some(te) = te {
        formats.push(te.to_string());
        attributes.push(Attribute {
            name: "rtpmap".into(),
            value: Some(format!("{te} telephone-event/8000")),
        });
        attributes.push(Attribute {
            name: "fmtp".into(),
            value: Some(format!("{te} 0-16")),
        });
    }
    attributes.push(Attribute {
        name: "ptime".into(),
        value: Some("20".into()),
    });
    attributes.push(Attribute {
        name: dir.as_str().into(),
        value: None,
    });
    MediaDescription {
        media: "audio".into(),
        port,
        num_ports: None,
        proto: "RTP/AVP".into(),
        formats,
        connection: None,
        attributes,
        other: Vec::new(),
    }
}

/// Answer an offer (RFC 3264 §6): one m= line per offered one in the same order,
/// unusable streams rejected with port 0, the first usable audio stream answered
/// with the offerer's first codec we support (and telephone-event if offered).
pub fn negotiate(
    offer: &SessionDescription,
    local_ip: IpAddr,
    local_rtp_port: u16,
    supported: &[Codec],
) -> Result<Answer, NegotiationError> {
    let params = media_params(offer, supported)?;
    let mut sdp = our_session(local_ip, rand::random::<u32>() as u64, 1);
    let mut chosen = false;
    for m in &offer.media {
        let usable = !chosen && m.media == "audio" && m.port != 0 && m.proto == "RTP/AVP";
        if usable {
            chosen = true;
            sdp.media.push(audio_media(
                local_rtp_port,
                params.payload_type,
                params.codec,
                params.telephone_event_pt,
                params.local_direction,
            ));
        } else {
            sdp.media.push(rejected(m));
        }
    }
    Ok(Answer { sdp, params })
}

/// §6: a rejected stream keeps its position with port 0 and one offered format.
fn rejected(m: &MediaDescription) -> MediaDescription {
    MediaDescription {
        media: m.media.clone(),
        port: 0,
        num_ports: None,
        proto: m.proto.clone(),
        formats: vec![m.formats.first().cloned().unwrap_or_else(|| "0".into())],
        connection: None,
        attributes: Vec::new(),
        other: Vec::new(),
    }
}

/// Our offer: PCMU, PCMA and telephone-event/8000 (RFC 4733).
pub fn build_offer(
    local_ip: IpAddr,
    local_rtp_port: u16,
    session_id: u64,
    session_version: u64,
    direction: Direction,
) -> SessionDescription {
    let mut sdp = our_session(local_ip, session_id, session_version);
    let mut m = audio_media(
        local_rtp_port,
        0,
        Codec::Pcmu,
        Some(TELEPHONE_EVENT_PT),
        direction,
    );
    m.formats.insert(1, "8".into());
    m.attributes.insert(
        1,
        Attribute {
            name: "rtpmap".into(),
            value: Some("8 PCMA/8000".into()),
        },
    );
    sdp.media.push(m);
    sdp
}

/// Re-answer a (re-)offer with an existing local description: same codec and port,
/// session version bumped (RFC 3264 §8), direction set as the complement of the
/// offered one (§6.1) so hold/unhold is acknowledged correctly.
pub fn reanswer(
    local: &SessionDescription,
    offer: &SessionDescription,
) -> Result<(SessionDescription, MediaParams), NegotiationError> {
    let supported = [Codec::Pcmu, Codec::Pcma];
    let params = media_params(offer, &supported)?;
    let mut out = local.clone();
    out.origin.session_version += 1;
    let port = out
        .media
        .iter()
        .find(|m| m.media == "audio" && m.port != 0)
        .map(|m| m.port)
        .ok_or(NegotiationError::NoCommonCodec)?;
    // §6.1: the answer only uses formats from the offer (with the offer's payload
    // type numbers), one m= line per offered one, in the same order.
    let mut chosen = false;
    out.media = offer
        .media
        .iter()
        .map(|m| {
            if !chosen && m.media == "audio" && m.port != 0 && m.proto == "RTP/AVP" {
                chosen = true;
                audio_media(
                    port,
                    params.payload_type,
                    params.codec,
                    params.telephone_event_pt,
                    params.local_direction,
                )
            } else {
                rejected(m)
            }
        })
        .collect();
    Ok((out, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 9 8 0 96\r\na=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\na=sendrecv\r\n\
m=video 5000 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n";

    #[test]
    fn negotiates_offerer_order_and_rejects_video() {
        let offer = parse(OFFER.as_bytes()).unwrap();
        let a = negotiate(
            &offer,
            "127.0.0.1".parse().unwrap(),
            20000,
            &[Codec::Pcmu, Codec::Pcma],
        )
        .unwrap();
        assert_eq!(a.params.codec, Codec::Pcma, "offerer prefers 8 over 0");
        assert_eq!(a.params.telephone_event_pt, Some(96));
        assert_eq!(a.params.remote_rtp, Some("10.0.0.1:4000".parse().unwrap()));
        assert!(!a.params.on_hold);
        assert_eq!(a.sdp.media.len(), 2);
        assert_eq!(a.sdp.media[1].port, 0);
        let text = a.sdp.to_string();
        assert!(text.contains("m=audio 20000 RTP/AVP 8 96\r\n"), "{text}");
        assert_eq!(parse(text.as_bytes()).unwrap(), a.sdp);
    }

    #[test]
    fn no_common_codec_is_488() {
        let offer = parse(OFFER.replace("9 8 0 96", "9 96").as_bytes()).unwrap();
        let e = negotiate(&offer, "127.0.0.1".parse().unwrap(), 1, &[Codec::Pcmu]).unwrap_err();
        assert_eq!(e, NegotiationError::NoCommonCodec);
        assert_eq!(e.status(), 488);
    }

    #[test]
    fn hold_detection() {
        let sendonly = parse(OFFER.replace("a=sendrecv", "a=sendonly").as_bytes()).unwrap();
        let p = media_params(&sendonly, &[Codec::Pcmu]).unwrap();
        assert!(p.on_hold);
        assert_eq!(p.local_direction, Direction::RecvOnly);
        let zero = parse(
            OFFER
                .replace("c=IN IP4 10.0.0.1", "c=IN IP4 0.0.0.0")
                .as_bytes(),
        )
        .unwrap();
        let p = media_params(&zero, &[Codec::Pcmu]).unwrap();
        assert!(p.on_hold);
        assert_eq!(p.remote_rtp, None);
        let local = build_offer(
            "127.0.0.1".parse().unwrap(),
            30000,
            7,
            1,
            Direction::SendRecv,
        );
        let (re, _) = reanswer(&local, &sendonly).unwrap();
        assert_eq!(re.origin.session_version, 2);
        assert_eq!(re.media[0].direction(), Some(Direction::RecvOnly));
        assert_eq!(
            re.media[0].formats,
            vec!["8", "96"],
            "offer's first codec + its te PT"
        );
        assert_eq!(re.media[0].port, 30000);
        assert_eq!(re.media[1].port, 0);
    }

    #[test]
    fn strict_rejections() {
        for bad in [
            "",
            "v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n",
            "v=0\r\ns=-\r\nt=0 0\r\n",
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\n",
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n",
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nx=1\r\n",
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 999.1.1.1\r\nt=0 0\r\n",
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.1.1.1\r\nt=0 0\r\nm=audio 99999 RTP/AVP 0\r\n",
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.1.1.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 300\r\n",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
