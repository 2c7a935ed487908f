//! Malformed input: raw datagrams get the right 4xx (or are dropped) and the
//! endpoint keeps working; plus a deterministic random-input no-panic sweep over
//! every parser entry point (the same ones the cargo-fuzz target drives).

mod common;

use std::time::Duration;

use common::*;
use switchboard_sip::endpoint::{frame, Framed};
use switchboard_sip::message::{error_response, parse_message, HeaderAccess, SipMessage};
use switchboard_sip::{sdp, IncomingCall};
use tokio::net::UdpSocket;

fn options(call_id: &str, extra: &str) -> String {
    format!(
        "OPTIONS sip:sb@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{call_id}\r\n\
From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:sb@127.0.0.1>\r\n\
Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n{extra}"
    )
}

async fn recv_response(sock: &UdpSocket) -> switchboard_sip::message::Response {
    let mut buf = vec![0u8; 65536];
    let (n, _) = tokio::time::timeout(EVENT_TIMEOUT, sock.recv_from(&mut buf))
        .await
        .expect("no response")
        .unwrap();
    match parse_message(&buf[..n]).expect("our response must parse") {
        SipMessage::Response(r) => r,
        SipMessage::Request(r) => panic!("unexpected request {:?}", r.method),
    }
}

#[tokio::test]
async fn malformed_datagrams_get_4xx_and_endpoint_survives() {
    let (ep, _incoming): (_, tokio::sync::mpsc::Receiver<IncomingCall>) = endpoint(false).await;
    let to = format!("127.0.0.1:{}", ep.udp_port());
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();

    // Unroutable garbage is dropped (no Call-ID / no Via / not SIP at all). Each
    // is followed by a probe so we know the drop happened without waiting.
    let droppable = [
        b"\x00\x01garbage\xff".to_vec(),
        b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
        b"\r\n\r\n".to_vec(),
    ];
    for (i, d) in droppable.iter().enumerate() {
        sock.send_to(d, &to).await.unwrap();
        let probe = format!("probe{i}");
        sock.send_to(options(&probe, "Content-Length: 0\r\n\r\n").as_bytes(), &to)
            .await
            .unwrap();
        let r = recv_response(&sock).await;
        assert_eq!((r.status, r.call_id()), (200, probe.as_str()), "case {i}");
    }

    // A request missing Call-ID is still answered, from the headers it has
    // (RFC 4475 §3.3.1): our strict parser would refuse that answer (no
    // Call-ID), so it is read raw here.
    sock.send_to(
        options("x1", "Content-Length: 0\r\n\r\n")
            .replace("Call-ID: x1\r\n", "")
            .as_bytes(),
        &to,
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, _) = tokio::time::timeout(EVENT_TIMEOUT, sock.recv_from(&mut buf))
        .await
        .expect("no answer to a request without Call-ID")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("SIP/2.0 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("\r\nCSeq: 1 OPTIONS\r\n"), "{text}");
    assert!(!text.contains("Call-ID"), "{text}");

    let cases: Vec<(String, Vec<u8>, u16)> = vec![
        // Content-Length larger than the body (§18.3).
        (
            "cl".into(),
            options("cl", "Content-Length: 50\r\n\r\nshort").into_bytes(),
            400,
        ),
        // Bad header name, non-numeric Content-Length, CSeq/method mismatch.
        (
            "hn".into(),
            options("hn", "Bad Header: x\r\nContent-Length: 0\r\n\r\n").into_bytes(),
            400,
        ),
        (
            "nc".into(),
            options("nc", "Content-Length: abc\r\n\r\n").into_bytes(),
            400,
        ),
        (
            "cs".into(),
            options("cs", "Content-Length: 0\r\n\r\n")
                .replace("1 OPTIONS", "1 INVITE")
                .into_bytes(),
            400,
        ),
        // Huge body: 513 Message Too Large (§21.5.14).
        (
            "big".into(),
            format!(
                "{}{}",
                options("big", "Content-Length: 40000\r\n\r\n"),
                "a".repeat(40000)
            )
            .into_bytes(),
            513,
        ),
        // Unsupported Request-URI scheme: 416 (§8.2.2.1).
        (
            "sch".into(),
            options("sch", "Content-Length: 0\r\n\r\n")
                .replace("OPTIONS sip:sb@", "OPTIONS http:sb@")
                .into_bytes(),
            416,
        ),
        // Unknown method: 501; unsupported extension: 420.
        (
            "unk".into(),
            options("unk", "Content-Length: 0\r\n\r\n")
                .replace("OPTIONS", "FROBNICATE")
                .into_bytes(),
            501,
        ),
        (
            "req".into(),
            options("req", "Require: 100rel\r\nContent-Length: 0\r\n\r\n").into_bytes(),
            420,
        ),
        // Dialog-bound method outside a dialog: 481 (§12.2.2); REGISTER: 405.
        (
            "bye".into(),
            options("bye", "Content-Length: 0\r\n\r\n")
                .replace("OPTIONS", "BYE")
                .into_bytes(),
            481,
        ),
        (
            "reg".into(),
            options("reg", "Content-Length: 0\r\n\r\n")
                .replace("OPTIONS", "REGISTER")
                .into_bytes(),
            405,
        ),
    ];
    for (call_id, bytes, want) in cases {
        sock.send_to(&bytes, &to).await.unwrap();
        let r = recv_response(&sock).await;
        assert_eq!(r.call_id(), call_id);
        assert_eq!(r.status, want, "case {call_id}");
    }

    // Still alive and well.
    sock.send_to(
        options("alive", "Content-Length: 0\r\n\r\n").as_bytes(),
        &to,
    )
    .await
    .unwrap();
    let r = recv_response(&sock).await;
    assert_eq!(r.status, 200);
    assert!(r.headers.get("Allow").unwrap().contains("INVITE"));
}

#[tokio::test]
async fn invite_without_usable_sdp_is_refused_not_stuck() {
    let (ep, mut incoming) = endpoint(false).await;
    let to = format!("127.0.0.1:{}", ep.udp_port());
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let invite = |cid: &str, ct: &str, body: &str| {
        format!(
            "INVITE sip:+15550001111@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{cid}\r\n\
From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:sb@127.0.0.1>\r\n\
Call-ID: {cid}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Type: {ct}\r\n\
Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    for (cid, ct, body, want) in [
        ("badsdp", "application/sdp", "v=0\r\nnonsense\r\n", 400),
        ("ct", "text/plain", "hello", 415),
        ("nosdp", "application/sdp", "", 488),
    ] {
        sock.send_to(invite(cid, ct, body).as_bytes(), &to)
            .await
            .unwrap();
        let r = recv_response(&sock).await;
        assert_eq!(r.status, 100, "Trying first ({cid})");
        let r = recv_response(&sock).await;
        assert_eq!((r.call_id(), r.status), (cid, want));
    }
    // The engine never saw these.
    assert!(incoming.try_recv().is_err());

    // An INVITE the engine ignores (drops the IncomingCall) gets 480, never hangs.
    let good_sdp = sdp::build_offer(
        "127.0.0.1".parse().unwrap(),
        5000,
        1,
        1,
        sdp::Direction::SendRecv,
    )
    .to_string();
    sock.send_to(
        invite("dropped", "application/sdp", &good_sdp).as_bytes(),
        &to,
    )
    .await
    .unwrap();
    assert_eq!(recv_response(&sock).await.status, 100);
    let inc = tokio::time::timeout(EVENT_TIMEOUT, incoming.recv())
        .await
        .unwrap()
        .unwrap();
    drop(inc);
    let r = recv_response(&sock).await;
    assert_eq!((r.call_id(), r.status), ("dropped", 480));
    let _ = Duration::ZERO;
}

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SEED_INVITE: &str = "INVITE sip:+15551234567@127.0.0.1:5060;transport=udp SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\nTo: \"Bob\" <sip:+15551234567@127.0.0.1>\r\n\
From: <sip:alice@127.0.0.1>;tag=1928301774\r\nCall-ID: a84b4c76e66710@pc33\r\n\
CSeq: 314159 INVITE\r\nContact: <sip:alice@127.0.0.1:5070>\r\n\
Content-Type: application/sdp\r\nContent-Length: 129\r\n\r\n\
v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n";

/// `input` with a plain request line (for the method its CSeq names) and no
/// body, so a message whose only flaw was that line or its body parses: its
/// answer, copying the rest, must then parse too.
fn fix_start_line(input: &[u8]) -> Vec<u8> {
    let Some(eol) = input.windows(2).position(|w| w == b"\r\n") else {
        return Vec::new();
    };
    let rest = &input[eol..];
    let head_end = rest
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(rest.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&rest[..head_end]);
    let method = head.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case("cseq")
            .then(|| v.split_whitespace().nth(1).unwrap_or("").to_string())
    });
    let Some(method) = method.filter(|m| !m.is_empty() && m != "ACK") else {
        return Vec::new();
    };
    let head: String = head
        .split("\r\n")
        .map(|l| match l.split_once(':') {
            Some((n, _)) if n.trim().eq_ignore_ascii_case("content-length") || n.trim() == "l" => {
                "Content-Length: 0".to_string()
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\r\n");
    format!("{method} sip:x@127.0.0.1 SIP/2.0{head}").into_bytes()
}

fn exercise(input: &[u8]) {
    let parsed = parse_message(input);
    if let Err(e) = &parsed {
        if let Some(resp) = error_response(input, e, "fuzz") {
            // Whatever we answer is one framed response whose lines cannot smuggle
            // a header or a second message in (no bare CR/LF), carrying a Via…
            assert_eq!(frame(&resp), Framed::Message(resp.len()), "{input:?}");
            let text = String::from_utf8_lossy(&resp);
            assert!(text.starts_with("SIP/2.0 "), "{text}");
            let head = &text[..text.find("\r\n\r\n").unwrap()];
            assert!(head.split("\r\n").all(|l| !l.contains(['\r', '\n'])));
            assert!(head.contains("\r\nVia: "), "{text}");
            // …and is well-formed SIP whenever the headers it copies were.
            if let Ok(SipMessage::Request(_)) = parse_message(&fix_start_line(input)) {
                assert!(
                    matches!(parse_message(&resp), Ok(SipMessage::Response(_))),
                    "{text}"
                );
            }
        }
    }
    if let Ok(SipMessage::Request(r)) = &parsed {
        let Ok(SipMessage::Request(mut again)) = parse_message(&r.to_bytes()) else {
            panic!("serialized request must re-parse: {input:?}");
        };
        // The serializer always writes Content-Length; compare the rest.
        let mut orig = r.clone();
        orig.headers.remove("Content-Length");
        again.headers.remove("Content-Length");
        assert_eq!(again, orig);
    }
    let _ = frame(input);
    if let Ok(sd) = sdp::parse(input) {
        let text = sd.to_string();
        assert_eq!(
            sdp::parse(text.as_bytes()).as_ref(),
            Ok(&sd),
            "SDP round trip"
        );
        let _ = sdp::negotiate(&sd, "127.0.0.1".parse().unwrap(), 1000, &[sdp::Codec::Pcmu]);
    }
}

#[test]
fn random_and_mutated_input_never_panics() {
    let mut rng = Rng(0x5eed_5eed_1234_5678);
    assert!(
        parse_message(SEED_INVITE.as_bytes()).is_ok(),
        "seed must be valid"
    );
    let body_start = SEED_INVITE.find("v=0").unwrap();
    let sdp_seed = &SEED_INVITE.as_bytes()[body_start..];
    let alphabet = b"\r\n :;<>@=\",/\t0123456789aZ\x00\xff%";
    for i in 0..30_000 {
        let seed: &[u8] = if i % 2 == 0 {
            SEED_INVITE.as_bytes()
        } else {
            sdp_seed
        };
        let mut buf = seed.to_vec();
        match i % 5 {
            0 => {
                let len = rng.below(300);
                buf = (0..len).map(|_| rng.next() as u8).collect();
            }
            _ => {
                for _ in 0..=rng.below(6) {
                    let pos = rng.below(buf.len());
                    match rng.below(4) {
                        0 => buf[pos] = alphabet[rng.below(alphabet.len())],
                        1 => buf.insert(pos, alphabet[rng.below(alphabet.len())]),
                        2 => {
                            buf.remove(pos);
                        }
                        _ => buf.truncate(pos),
                    }
                    if buf.is_empty() {
                        break;
                    }
                }
            }
        }
        exercise(&buf);
    }
}

#[tokio::test]
async fn outbound_arguments_are_validated() {
    use switchboard_sip::{OutboundInvite, SipError, Target, Transport};
    let (ep, _rx) = endpoint(false).await;
    let base = OutboundInvite {
        target: Target {
            host: "127.0.0.1".into(),
            port: 5060,
            transport: Transport::Udp,
        },
        to_user: "+15551230000".into(),
        from_user: "+15557654321".into(),
        credentials: None,
        sdp_offer: sdp::build_offer(ep.public_ip(), 4000, 1, 1, sdp::Direction::SendRecv)
            .to_string(),
        ring_timeout: Duration::from_secs(1),
        extra_headers: vec![],
    };
    let mut header_injection = base.clone();
    header_injection.extra_headers = vec![("X-A".into(), "1\r\nBYE sip:x SIP/2.0".into())];
    let mut user_injection = base.clone();
    user_injection.to_user = "+1555>\r\nX: y".into();
    let mut bad_host = base.clone();
    bad_host.target.host = "exa mple".into();
    let mut bad_sdp = base.clone();
    bad_sdp.sdp_offer = "hello".into();
    for inv in [header_injection, user_injection, bad_host, bad_sdp] {
        assert!(matches!(
            ep.invite(inv),
            Err(SipError::Invalid(_) | SipError::Sdp(_))
        ));
    }
}
