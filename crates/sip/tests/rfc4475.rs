//! RFC 4475 "SIP Torture Test Messages": all 49 messages, byte for byte as the
//! RFC's appendix B carries them (`tests/rfc4475/*.dat`, named as in the RFC),
//! sent to our endpoint listening on loopback. Each is answered as the RFC
//! describes (or, where it leaves a choice, as documented per case below), and
//! each is followed by a well-formed OPTIONS from the same socket that must
//! still get its 200. Every message goes over UDP; those the RFC frames as
//! stream messages (top Via TCP/TLS, and the two whose TCP handling the RFC
//! spells out: §3.1.2.3 and §3.3.9) go over TCP too.
//!
//! No fixed ports: the endpoint and every client socket bind port 0.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use switchboard_sip::endpoint::{frame, Framed};
use switchboard_sip::message::{parse_message, SipMessage};
use switchboard_sip::{IncomingCall, SipEndpoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// What the endpoint must do with a message.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Parsed and handled: this final status (a 100 Trying may precede it).
    Handled(u16),
    /// An INVITE the parser accepted and handed to the engine as a new call;
    /// the test's "engine" refuses it 486, so 486 is the final status.
    NewCall,
    /// Refused: this final status, built from what parsed.
    Refused(u16),
    /// A response matching no transaction, or unparseable: silently dropped
    /// (§18.1.2; the RFC's own words per case).
    Dropped,
}
use Expect::*;

struct Case {
    file: &'static str,
    /// RFC 4475 section.
    section: &'static str,
    expect: Expect,
    /// Also sent over TCP.
    tcp: bool,
}

const fn case(file: &'static str, section: &'static str, expect: Expect, tcp: bool) -> Case {
    Case {
        file,
        section,
        expect,
        tcp,
    }
}

const CASES: &[Case] = &[
    // §3.1.1 Valid messages — "all elements should treat this as well-formed".
    // wsinv carries a To tag, so as a UAS we answer it as a request inside an
    // unknown dialog: 481 (§12.2.2), after having parsed every folded line.
    case("wsinv.dat", "3.1.1.1", Handled(481), false),
    // "Endpoints will respond with a 501": the method is unknown.
    case("intmeth.dat", "3.1.1.2", Handled(501), true),
    case("esc01.dat", "3.1.1.3", NewCall, false),
    // REGISTER to a UA that is no registrar: 405 (§3.3.7's advice for endpoints).
    case("escnull.dat", "3.1.1.4", Handled(405), false),
    // "An endpoint would reject this message with a 501."
    case("esc02.dat", "3.1.1.5", Handled(501), true),
    case("lwsdisp.dat", "3.1.1.6", Handled(200), false),
    case("longreq.dat", "3.1.1.7", NewCall, true),
    // The REGISTER is handled; the INVITE-looking trailing octets are ignored.
    case("dblreq.dat", "3.1.1.8", Handled(405), false),
    case("semiuri.dat", "3.1.1.9", Handled(200), false),
    case("transports.dat", "3.1.1.10", Handled(200), false),
    case("mpart01.dat", "3.1.1.11", Handled(405), false),
    // Well-formed responses that answer nothing of ours.
    case("unreason.dat", "3.1.1.12", Dropped, false),
    case("noreason.dat", "3.1.1.13", Dropped, false),
    // §3.1.2 Invalid messages.
    case("badinv01.dat", "3.1.2.1", Refused(400), false),
    case("clerr.dat", "3.1.2.2", Refused(400), false),
    case("ncl.dat", "3.1.2.3", Refused(400), true),
    case("scalar02.dat", "3.1.2.4", Refused(400), true),
    // "An element receiving this response will simply discard it."
    case("scalarlg.dat", "3.1.2.5", Dropped, true),
    case("quotbal.dat", "3.1.2.6", Refused(400), false),
    case("ltgtruri.dat", "3.1.2.7", Refused(400), false),
    case("lwsruri.dat", "3.1.2.8", Refused(400), false),
    // §3.1.2.9/§3.1.2.10: "It is acceptable to reject this request as malformed."
    case("lwsstart.dat", "3.1.2.9", Refused(400), false),
    case("trws.dat", "3.1.2.10", Refused(400), true),
    case("escruri.dat", "3.1.2.11", Refused(400), false),
    // "an element shouldn't [reject] unless the contents of the Date header
    // field were actually important to its processing": ours ignores Date.
    case("baddate.dat", "3.1.2.12", NewCall, false),
    case("regbadct.dat", "3.1.2.13", Refused(400), false),
    case("badaspec.dat", "3.1.2.14", Refused(400), false),
    case("baddn.dat", "3.1.2.15", Refused(400), false),
    case("badvers.dat", "3.1.2.16", Refused(505), false),
    case("mismatch01.dat", "3.1.2.17", Refused(400), false),
    // "should respond with a 501 Not Implemented" (400 also acceptable).
    case("mismatch02.dat", "3.1.2.18", Handled(501), false),
    // "An element receiving this response should simply drop it."
    case("bigcode.dat", "3.1.2.19", Dropped, false),
    // §3.2.1: no transaction id beyond the cookie: we fall back to RFC 2543
    // matching rather than rejecting.
    case("badbranch.dat", "3.2.1", Handled(200), false),
    // §3.3 Application layer semantics.
    // "Ideally, it will respond with a 400": with Via and CSeq, all it has.
    case("insuf.dat", "3.3.1", Refused(400), false),
    case("unkscm.dat", "3.3.2", Refused(416), true),
    case("novelsc.dat", "3.3.3", Refused(416), true),
    // Unknown schemes in To/From/Contact parse; a non-registrar answers 405.
    case("unksm2.dat", "3.3.4", Handled(405), false),
    // "respond with a 420 Bad Extension ... containing an Unsupported header".
    case("bext01.dat", "3.3.5", Handled(420), true),
    // "An endpoint receiving this request would reject it with a 415".
    case("invut.dat", "3.3.6", Handled(415), false),
    // "Endpoints choosing not to act as registrars ... A 405 ... is appropriate."
    case("regaut01.dat", "3.3.7", Handled(405), true),
    case("multi01.dat", "3.3.8", Refused(400), false),
    case("mcl01.dat", "3.3.9", Refused(400), true),
    // "an endpoint receiving this message should simply discard it."
    case("bcast.dat", "3.3.10", Dropped, false),
    // "An endpoint should process the request as if the Max-Forwards field
    // value were still positive."
    case("zeromf.dat", "3.3.11", Handled(200), false),
    case("cparam01.dat", "3.3.12", Handled(405), false),
    case("cparam02.dat", "3.3.13", Handled(405), false),
    case("regescrt.dat", "3.3.14", Handled(405), false),
    // Accept excludes application/sdp, which our answer would carry: 406.
    case("sdp01.dat", "3.3.15", Handled(406), false),
    // §3.4.1: RFC 2543 syntax (no branch, no From tag, no Content-Length, no
    // Max-Forwards) is accepted for backwards compatibility.
    case("inv2543.dat", "3.4.1", NewCall, false),
];

/// Messages whose answer copies the malformed header (file, header).
const ECHOES_FLAW: &[(&str, &str)] = &[
    ("badinv01.dat", "Via"),
    ("badvers.dat", "Via"),
    ("scalar02.dat", "CSeq"),
    ("quotbal.dat", "To"),
    ("badaspec.dat", "To"),
    ("baddn.dat", "To"),
    // Not a flaw echoed but one kept: no From, To or Call-ID to copy (§3.3.1).
    ("insuf.dat", "Via"),
];

/// Streams whose framing breaks are closed after the 400 (§3.1.2.3, §3.3.9).
const TCP_CLOSES: &[&str] = &["ncl.dat", "mcl01.dat"];

fn fixture(file: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/rfc4475")
        .join(file);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// First value of a header in raw message text (long or compact name), for
/// fixtures and for answers our strict parser may refuse (badvers' Via).
fn raw_header(msg: &[u8], long: &str, compact: &str) -> Option<String> {
    let text = String::from_utf8_lossy(msg);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    // Unfold continuation lines (§7.3.1) first.
    let mut lines: Vec<String> = Vec::new();
    for l in head.split("\r\n").skip(1) {
        match lines.last_mut() {
            Some(last) if l.starts_with([' ', '\t']) => {
                last.push(' ');
                last.push_str(l.trim());
            }
            _ => lines.push(l.to_string()),
        }
    }
    lines.iter().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        let n = n.trim();
        (n.eq_ignore_ascii_case(long) || n.eq_ignore_ascii_case(compact))
            .then(|| v.split_whitespace().collect::<Vec<_>>().join(" "))
    })
}

fn status(msg: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(msg);
    let code = text
        .strip_prefix("SIP/2.0 ")
        .unwrap_or_else(|| panic!("not a response: {text}"));
    code[..3].parse().unwrap()
}

fn options(call_id: &str, via: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:sb@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{via};branch=z9hG4bK{call_id}\r\n\
From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:sb@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The test's engine: records each new call's Call-ID and refuses it 486.
fn engine(mut incoming: mpsc::Receiver<IncomingCall>) -> Arc<Mutex<Vec<String>>> {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    tokio::spawn(async move {
        while let Some(call) = incoming.recv().await {
            seen.lock().unwrap().push(call.call_id.clone());
            call.reject(486, "Busy Here");
        }
    });
    calls
}

/// What a peer saw: the final answer to the message (None when it was
/// dropped: the probe's 200 came first) and whether the probe got its 200.
trait Peer {
    async fn send(&mut self, bytes: &[u8]);
    /// Next complete message, or None when the connection closed.
    async fn recv(&mut self) -> Option<Vec<u8>>;
}

struct Udp {
    sock: UdpSocket,
    to: String,
}

impl Peer for Udp {
    async fn send(&mut self, bytes: &[u8]) {
        self.sock.send_to(bytes, &self.to).await.unwrap();
    }
    async fn recv(&mut self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65536];
        let (n, _) = tokio::time::timeout(EVENT_TIMEOUT, self.sock.recv_from(&mut buf))
            .await
            .expect("no answer")
            .unwrap();
        Some(buf[..n].to_vec())
    }
}

struct Tcp {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Peer for Tcp {
    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }
    async fn recv(&mut self) -> Option<Vec<u8>> {
        loop {
            match frame(&self.buf) {
                Framed::Message(n) => return Some(self.buf.drain(..n).collect()),
                Framed::Skip(n) => {
                    self.buf.drain(..n);
                }
                Framed::Incomplete => {}
                Framed::Invalid(e) => panic!("endpoint sent an unframeable message: {e}"),
            }
            let mut chunk = [0u8; 8192];
            let n = tokio::time::timeout(EVENT_TIMEOUT, self.stream.read(&mut chunk))
                .await
                .expect("no answer")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Send one torture message and its probe; check the outcome.
async fn run_case(
    peer: &mut impl Peer,
    c: &Case,
    over: &str,
    probe_via: &str,
    calls: &Arc<Mutex<Vec<String>>>,
) -> bool {
    let msg = fixture(c.file);
    let what = format!("{} (§{}) over {over}", c.file, c.section);
    let call_id = raw_header(&msg, "Call-ID", "i");
    eprintln!("{what}");
    peer.send(&msg).await;
    let probe_id = format!("probe-{}-{over}", c.file.trim_end_matches(".dat"));
    let closes = over == "TCP" && TCP_CLOSES.contains(&c.file);

    let final_answer = if c.expect == Dropped {
        None
    } else {
        // Skip provisionals; the final answer is what the RFC is about.
        loop {
            let m = peer
                .recv()
                .await
                .unwrap_or_else(|| panic!("{what}: connection closed before the answer"));
            if status(&m) >= 200 {
                break Some(m);
            }
            assert_eq!(status(&m), 100, "{what}");
        }
    };
    if let Some(ans) = &final_answer {
        let got = status(ans);
        let want = match c.expect {
            Handled(s) | Refused(s) => s,
            NewCall => 486,
            Dropped => unreachable!(),
        };
        assert_eq!(got, want, "{what}: {}", String::from_utf8_lossy(ans));
        // The answer is matched to the request by Call-ID and CSeq (§8.1.3.3):
        // copied from what parsed (insuf has no Call-ID, and gets none).
        assert_eq!(
            raw_header(ans, "Call-ID", "i"),
            call_id,
            "{what}: Call-ID of the answer"
        );
        assert_eq!(
            raw_header(ans, "CSeq", "CSeq"),
            raw_header(&msg, "CSeq", "CSeq"),
            "{what}: CSeq of the answer"
        );
        // Whatever we answer is itself well-formed SIP — except where a header
        // §8.2.6.2 copies into it is itself what is malformed: it is copied as
        // it came (the client matches on Via and CSeq; the answer goes to the
        // source anyway), so those messages get their own flaw back.
        match ECHOES_FLAW.iter().find(|(f, _)| *f == c.file) {
            Some((_, header)) => assert!(
                raw_header(ans, header, header).is_some(),
                "{what}: {header} not copied"
            ),
            None => assert!(
                matches!(parse_message(ans), Ok(SipMessage::Response(_))),
                "{what}: our answer does not parse: {}",
                String::from_utf8_lossy(ans)
            ),
        }
        if c.expect == NewCall {
            assert!(
                calls.lock().unwrap().contains(call_id.as_ref().unwrap()),
                "{what}: not handed to the engine"
            );
        }
        match c.file {
            "bext01.dat" => assert_eq!(
                raw_header(ans, "Unsupported", "Unsupported").as_deref(),
                Some("nothingSupportsThis, nothingSupportsThisEither"),
                "{what}"
            ),
            "invut.dat" => assert_eq!(
                raw_header(ans, "Accept", "Accept").as_deref(),
                Some("application/sdp"),
                "{what}"
            ),
            _ if want == 405 => assert!(raw_header(ans, "Allow", "Allow").is_some(), "{what}"),
            _ => {}
        }
    }

    if closes {
        // §3.1.2.3 / §3.3.9: "the framing error is not recoverable, and the
        // connection should be closed."
        assert!(peer.recv().await.is_none(), "{what}: stream left open");
        return false;
    }
    peer.send(&options(&probe_id, probe_via)).await;
    let m = peer.recv().await.expect("connection closed");
    // For Dropped cases this is also the proof: nothing came before the probe's
    // answer (messages on one socket are handled in order).
    assert_eq!(
        raw_header(&m, "Call-ID", "i").as_deref(),
        Some(probe_id.as_str()),
        "{what}: expected only the probe's answer, got {}",
        String::from_utf8_lossy(&m)
    );
    assert_eq!(status(&m), 200, "{what}: probe");
    true
}

async fn start() -> (SipEndpoint, Arc<Mutex<Vec<String>>>) {
    let (ep, incoming) = endpoint(true).await;
    (ep, engine(incoming))
}

#[test]
fn all_49_messages_are_classified() {
    assert_eq!(CASES.len(), 49);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rfc4475");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".dat"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = CASES.iter().map(|c| c.file.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed);
}

#[tokio::test]
async fn torture_messages_over_udp() {
    let (ep, calls) = start().await;
    for c in CASES {
        // A fresh source per message, so a retransmitted final response of an
        // earlier case (Timer G) can never be taken for this one's.
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let via = format!("UDP {}", sock.local_addr().unwrap());
        let mut peer = Udp {
            sock,
            to: format!("127.0.0.1:{}", ep.udp_port()),
        };
        run_case(&mut peer, c, "UDP", &via, &calls).await;
    }
}

#[tokio::test]
async fn torture_messages_over_tcp() {
    let (ep, calls) = start().await;
    let to = format!("127.0.0.1:{}", ep.tcp_port().unwrap());
    for c in CASES.iter().filter(|c| c.tcp) {
        let stream = TcpStream::connect(&to).await.unwrap();
        let via = format!("TCP {}", stream.local_addr().unwrap());
        let mut peer = Tcp {
            stream,
            buf: Vec::new(),
        };
        if !run_case(&mut peer, c, "TCP", &via, &calls).await {
            // The stream was closed as the RFC asks; the endpoint still serves
            // a new one.
            let stream = TcpStream::connect(&to).await.unwrap();
            let via = format!("TCP {}", stream.local_addr().unwrap());
            let mut peer = Tcp {
                stream,
                buf: Vec::new(),
            };
            let id = format!("after-{}", c.file);
            peer.send(&options(&id, &via)).await;
            let m = peer.recv().await.expect("closed");
            assert_eq!(status(&m), 200, "{}: probe on a new connection", c.file);
        }
    }
}

/// §3.1.1.1 parsed to what the RFC says it means, not merely accepted: line
/// folding, LWS around '/' and ';' and '=' in Via, escaped quotes in the
/// display names, leading zeros, a mix of long and compact names.
#[test]
fn wsinv_parses_to_the_values_the_rfc_describes() {
    use switchboard_sip::message::{HeaderAccess, Method};
    use switchboard_sip::uri::{NameAddr, Via};
    let Ok(SipMessage::Request(r)) = parse_message(&fixture("wsinv.dat")) else {
        panic!("wsinv must parse")
    };
    assert_eq!(r.method, Method::Invite);
    assert_eq!(r.uri.param("unknownparam"), Some(""));
    let cseq = r.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));
    assert_eq!(r.header_to().unwrap().tag(), Some("1918181833n"));
    let from = r.header_from().unwrap();
    assert_eq!(from.display.as_deref(), Some("J Rosenberg \\\""));
    assert_eq!(from.tag(), Some("98asjd8"));
    let vias: Vec<Via> = r
        .headers
        .get_all("Via")
        .iter()
        .map(|v| Via::parse(v).unwrap())
        .collect();
    let got: Vec<(&str, &str, Option<&str>)> = vias
        .iter()
        .map(|v| (v.transport.as_str(), v.host.as_str(), v.branch()))
        .collect();
    assert_eq!(
        got,
        [
            ("UDP", "192.0.2.2", Some("390skdjuw")),
            ("TCP", "spindle.example.com", Some("z9hG4bK9ikj8")),
            ("UDP", "192.168.255.111", Some("z9hG4bK30239")),
        ]
    );
    let contact: NameAddr = r.contact().unwrap();
    assert_eq!(contact.display.as_deref(), Some("Quoted string \"\""));
    assert_eq!(contact.uri.user.as_deref(), Some("jdrosen"));
    assert_eq!(
        contact
            .params
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>(),
        ["newparam", "secondparam", "q"]
    );
    assert_eq!(r.body.len(), 150);
    // §3.1.1.2: the quoted NUL, BEL and DEL survive as quoted-pairs and are
    // unescaped in the display name.
    let Ok(SipMessage::Request(r)) = parse_message(&fixture("intmeth.dat")) else {
        panic!("intmeth must parse")
    };
    assert_eq!(
        r.header_to().unwrap().display.as_deref(),
        Some("BEL:\u{7} NUL:\u{0} DEL:\u{7f}")
    );
    // §3.3.4: unknown schemes in To/From/Contact are kept, opaque.
    let Ok(SipMessage::Request(r)) = parse_message(&fixture("unksm2.dat")) else {
        panic!("unksm2 must parse")
    };
    assert_eq!(
        r.header_from().unwrap().uri.to_string(),
        "http://www.example.com"
    );
    assert_eq!(r.header_to().unwrap().uri.scheme, "isbn");
}

/// §3.1.2.2 over TCP: "there's not much the receiving party could do but wait for
/// more data on the stream and close the connection if none is forthcoming within a
/// reasonable period of time" — 64*T1 (T1 shortened here), without an answer.
#[tokio::test]
async fn clerr_over_tcp_waits_then_closes_the_connection() {
    use std::time::Duration;
    use switchboard_sip::{EndpointConfig, Timers};
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = EndpointConfig {
        timers: Timers {
            t1: Duration::from_millis(10),
            ..Timers::default()
        },
        ..Default::default()
    };
    let (ep, incoming) = SipEndpoint::start(cfg, udp, Some(tcp)).unwrap();
    let _calls = engine(incoming);
    let to = format!("127.0.0.1:{}", ep.tcp_port().unwrap());
    let stream = TcpStream::connect(&to).await.unwrap();
    let mut peer = Tcp {
        stream,
        buf: Vec::new(),
    };
    peer.send(&fixture("clerr.dat")).await;
    assert!(peer.recv().await.is_none(), "answered or left open");
    // The endpoint still serves new connections.
    let stream = TcpStream::connect(&to).await.unwrap();
    let via = format!("TCP {}", stream.local_addr().unwrap());
    let mut peer = Tcp {
        stream,
        buf: Vec::new(),
    };
    peer.send(&options("after-clerr", &via)).await;
    assert_eq!(status(&peer.recv().await.unwrap()), 200);
}
