//! SIP flood protection on real sockets: one source (127.0.0.2) floods the endpoint
//! with OPTIONS, INVITEs and malformed requests far over its rate; it gets its burst,
//! one 503 with Retry-After, then silence. A trusted peer (127.0.0.1, exempt as a
//! trunk would be) interleaves its own requests and places a call meanwhile: it is
//! never throttled. (Linux routes all of 127.0.0.0/8 to the loopback interface.)
//!
//! No fixed ports: everything binds port 0.

mod common;

use std::collections::HashSet;
use std::time::Instant;

use common::EVENT_TIMEOUT;
use switchboard_sip::message::{parse_message, HeaderAccess, SipMessage};
use switchboard_sip::{sdp, EndpointConfig, FloodGuard, RateLimit, SipEndpoint};
use tokio::net::UdpSocket;

const FLOOD: usize = 300;
const BURST: u32 = 5;
const RATE: f64 = 1.0;

fn request(method: &str, call_id: &str, from: &UdpSocket, body: &str) -> Vec<u8> {
    let via = from.local_addr().unwrap();
    let ct = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".into()
    };
    format!(
        "{method} sip:+15550009999@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK{call_id}\r\n\
From: <sip:flood@127.0.0.1>;tag=1\r\nTo: <sip:+15550009999@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
CSeq: 1 {method}\r\nContact: <sip:flood@{via}>\r\nMax-Forwards: 70\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Status and Call-ID of a response (raw: a 400 to garbage may lack fields).
fn answer(buf: &[u8]) -> (u16, String, Option<String>) {
    let text = String::from_utf8_lossy(buf);
    let status = text[8..11].parse().unwrap();
    let header = |name: &str| {
        text.split("\r\n")
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
    };
    (
        status,
        header("Call-ID:").unwrap_or_default(),
        header("Retry-After:"),
    )
}

#[tokio::test]
async fn flooder_gets_its_burst_one_503_then_silence_while_a_trusted_peer_calls() {
    let trusted_ip = "127.0.0.1".parse().unwrap();
    let guard = FloodGuard::new(
        RateLimit {
            per_second: RATE,
            burst: BURST,
        },
        [trusted_ip],
    );
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (ep, mut incoming) = SipEndpoint::start(
        EndpointConfig {
            flood: Some(guard.clone()),
            ..Default::default()
        },
        udp,
        None,
    )
    .unwrap();
    let to = format!("127.0.0.1:{}", ep.udp_port());
    // The "engine": every call that gets through is refused 486, after noting who.
    let (calls_tx, mut calls_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(call) = incoming.recv().await {
            let _ = calls_tx.send(call.call_id.clone());
            call.reject(486, "Busy Here");
        }
    });

    let flooder = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let trusted = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let offer = sdp::build_offer(
        "127.0.0.1".parse().unwrap(),
        4000,
        1,
        1,
        sdp::Direction::SendRecv,
    )
    .to_string();

    // The flood goes in rounds of 30 datagrams, each closed by a trusted OPTIONS
    // whose 200 proves the round was handled (one receive loop, in order) and keeps
    // the kernel's socket buffer from overflowing, which would drop datagrams before
    // any limiter sees them.
    let started = Instant::now();
    let mut buf = vec![0u8; 65536];
    for i in 0..FLOOD {
        let id = format!("flood{i}");
        let msg = match i % 3 {
            0 => request("OPTIONS", &id, &flooder, ""),
            1 => request("INVITE", &id, &flooder, &offer),
            // Malformed: a CSeq that does not name the method (400 if it got through).
            _ => String::from_utf8(request("OPTIONS", &id, &flooder, ""))
                .unwrap()
                .replace("1 OPTIONS", "1 BYE")
                .into_bytes(),
        };
        flooder.send_to(&msg, &to).await.unwrap();
        if i % 30 == 29 {
            let tid = format!("trusted{i}");
            trusted
                .send_to(&request("OPTIONS", &tid, &trusted, ""), &to)
                .await
                .unwrap();
            let (n, _) = tokio::time::timeout(EVENT_TIMEOUT, trusted.recv_from(&mut buf))
                .await
                .expect("trusted peer left unanswered")
                .unwrap();
            assert_eq!(answer(&buf[..n]).0, 200, "trusted peer throttled ({tid})");
            assert_eq!(answer(&buf[..n]).1, tid);
        }
    }
    let flood_secs = started.elapsed().as_secs_f64();

    // The trusted peer places a call right after: it reaches the engine.
    trusted
        .send_to(&request("INVITE", "trusted-call", &trusted, &offer), &to)
        .await
        .unwrap();
    let call_final = loop {
        let (n, _) = tokio::time::timeout(EVENT_TIMEOUT, trusted.recv_from(&mut buf))
            .await
            .expect("trusted peer left unanswered")
            .unwrap();
        let (status, id, _) = answer(&buf[..n]);
        assert_eq!(id, "trusted-call");
        if status >= 200 {
            break status;
        }
    };
    assert_eq!(call_final, 486, "the trusted call reached the engine");

    // A last trusted request (the 486 above may be retransmitted: skip it).
    trusted
        .send_to(&request("OPTIONS", "last", &trusted, ""), &to)
        .await
        .unwrap();
    loop {
        let (n, _) = tokio::time::timeout(EVENT_TIMEOUT, trusted.recv_from(&mut buf))
            .await
            .expect("no answer")
            .unwrap();
        if let Ok(SipMessage::Response(r)) = parse_message(&buf[..n]) {
            if r.call_id() == "last" {
                assert_eq!(r.status, 200);
                break;
            }
        }
    }

    // What the flooder got: answers to its burst, one 503, nothing else.
    let mut answered = HashSet::new();
    let mut refusals = Vec::new();
    while let Ok((n, _)) = flooder.try_recv_from(&mut buf) {
        let (status, id, retry_after) = answer(&buf[..n]);
        if status == 503 {
            refusals.push((id, retry_after));
        } else {
            answered.insert(id);
        }
    }
    // The burst, plus what the bucket refilled while the flood was being sent.
    let allowed = BURST as usize + (flood_secs * RATE).ceil() as usize;
    assert!(
        (BURST as usize..=allowed).contains(&answered.len()),
        "{} flood requests served (allowed {allowed}): {answered:?}",
        answered.len()
    );
    assert_eq!(refusals.len(), 1, "exactly one 503: {refusals:?}");
    let (id, retry_after) = &refusals[0];
    assert!(!answered.contains(id));
    // Retry-After: until the bucket is full again (5 tokens at 1/s).
    let secs: u32 = retry_after
        .as_deref()
        .expect("503 without Retry-After")
        .parse()
        .unwrap();
    assert!((1..=BURST).contains(&secs), "Retry-After {secs}");
    let stats = ep.flood_stats();
    assert_eq!(stats.refused, 1);
    assert_eq!(
        stats.dropped as usize,
        FLOOD - answered.len() - 1,
        "every other flood message dropped unanswered"
    );
    // Of the flood's INVITEs, only those within the burst reached the engine.
    let mut flood_calls = 0;
    while let Ok(id) = calls_rx.try_recv() {
        if id.starts_with("flood") {
            assert!(answered.contains(&id));
            flood_calls += 1;
        }
    }
    assert!(flood_calls <= answered.len());
}
