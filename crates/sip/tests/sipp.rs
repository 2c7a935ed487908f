//! End-to-end signalling tests against sipp (a real SIP peer) on loopback.
//! sipp ports are fixed per test (see README.md); our endpoint uses port 0.

mod common;

use std::time::Duration;

use common::*;
use switchboard_sip::sdp::{self, Codec, Direction};
use switchboard_sip::{
    CallEvent, OutboundInvite, RegisterConfig, RegistrationState, SipEndpoint, Target, Transport,
};

fn offer(ep: &SipEndpoint) -> String {
    sdp::build_offer(ep.public_ip(), 40000, 1, 1, Direction::SendRecv).to_string()
}

fn invite_to(ep: &SipEndpoint, port: u16, transport: Transport) -> OutboundInvite {
    OutboundInvite {
        target: Target {
            host: "127.0.0.1".into(),
            port,
            transport,
        },
        to_user: "+15551230000".into(),
        from_user: "+15557654321".into(),
        credentials: None,
        sdp_offer: offer(ep),
        ring_timeout: Duration::from_secs(20),
        extra_headers: vec![("X-Switchboard-Test".into(), "1".into())],
    }
}

#[tokio::test]
async fn outbound_answer_then_remote_bye() {
    let (ep, _rx) = endpoint(false).await;
    let sipp = spawn_sipp(&scenario("uas_answer_bye.xml"), 15060, &[]);
    let mut call = ep
        .invite(invite_to(&ep, sipp.port, Transport::Udp))
        .unwrap();
    assert_eq!(next_significant(&mut call).await, CallEvent::Ringing);
    match next_significant(&mut call).await {
        CallEvent::Answered { remote_sdp } => {
            let answer = sdp::parse(remote_sdp.as_bytes()).unwrap();
            let p = sdp::media_params(&answer, &[Codec::Pcmu, Codec::Pcma]).unwrap();
            assert_eq!(p.codec, Codec::Pcmu);
            assert_eq!(p.remote_rtp.unwrap().port(), media_port(15060));
        }
        other => panic!("expected Answered, got {other:?}"),
    }
    assert_eq!(next(&mut call).await, CallEvent::RemoteHangup);
    assert_eq!(next(&mut call).await, CallEvent::Terminated);
    assert_eq!(sipp.finish().await, 0);
}

#[tokio::test]
async fn outbound_rejections() {
    let (ep, _rx) = endpoint(false).await;
    let template = std::fs::read_to_string(scenario("uas_reject.xml")).unwrap();
    let dir = std::env::temp_dir().join(format!("sb-sip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for code in [486u16, 603, 404, 503, 480] {
        let path = dir.join(format!("uas_reject_{code}.xml"));
        std::fs::write(
            &path,
            template.replace("480 Rejected By Test", &format!("{code} Rejected By Test")),
        )
        .unwrap();
        let sipp = spawn_sipp(&path, 15061, &[]);
        let mut call = ep
            .invite(invite_to(&ep, sipp.port, Transport::Udp))
            .unwrap();
        assert_eq!(
            next_significant(&mut call).await,
            CallEvent::Failed {
                code,
                reason: "Rejected By Test".into(),
                timed_out: false
            }
        );
        assert_eq!(next(&mut call).await, CallEvent::Terminated);
        // sipp completes only if it received our ACK for the final response.
        assert_eq!(sipp.finish().await, 0, "sipp scenario for {code}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn outbound_ring_timeout_cancels() {
    let (ep, _rx) = endpoint(false).await;
    let sipp = spawn_sipp(&scenario("uas_ring_cancel.xml"), 15062, &[]);
    let mut inv = invite_to(&ep, sipp.port, Transport::Udp);
    inv.ring_timeout = Duration::from_secs(1);
    let mut call = ep.invite(inv).unwrap();
    assert_eq!(next_significant(&mut call).await, CallEvent::Ringing);
    match next(&mut call).await {
        CallEvent::Failed {
            code, timed_out, ..
        } => {
            assert_eq!(code, 487);
            assert!(timed_out, "ring timeout must be flagged");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(next(&mut call).await, CallEvent::Terminated);
    assert_eq!(sipp.finish().await, 0);
}

#[tokio::test]
async fn outbound_hangup_while_ringing() {
    let (ep, _rx) = endpoint(false).await;
    let sipp = spawn_sipp(&scenario("uas_ring_cancel.xml"), 15063, &[]);
    let mut call = ep
        .invite(invite_to(&ep, sipp.port, Transport::Udp))
        .unwrap();
    assert_eq!(next_significant(&mut call).await, CallEvent::Ringing);
    call.hangup();
    match next(&mut call).await {
        CallEvent::Failed {
            code, timed_out, ..
        } => {
            assert_eq!(code, 487);
            assert!(!timed_out);
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(next(&mut call).await, CallEvent::Terminated);
    assert_eq!(sipp.finish().await, 0);
}

#[tokio::test]
async fn outbound_reinvite_hold_and_refer() {
    let (ep, _rx) = endpoint(false).await;
    let sipp = spawn_sipp(&scenario("uas_hold_refer.xml"), 15074, &[]);
    let mut call = ep
        .invite(invite_to(&ep, sipp.port, Transport::Udp))
        .unwrap();
    assert!(matches!(
        next_significant(&mut call).await,
        CallEvent::Answered { .. }
    ));
    match next(&mut call).await {
        CallEvent::ReInvite {
            remote_sdp,
            on_hold,
        } => {
            assert!(on_hold, "a=sendonly is hold");
            assert!(remote_sdp.contains("a=sendonly"));
        }
        other => panic!("expected ReInvite, got {other:?}"),
    }
    call.refer("sip:+15550009999@127.0.0.1");
    assert_eq!(next(&mut call).await, CallEvent::TransferAccepted);
    assert_eq!(next(&mut call).await, CallEvent::RemoteHangup);
    assert_eq!(next(&mut call).await, CallEvent::Terminated);
    assert_eq!(sipp.finish().await, 0);
}

#[tokio::test]
async fn outbound_hangup_after_answer() {
    let (ep, _rx) = endpoint(false).await;
    let sipp = spawn_sipp(&scenario("uas_answer_wait_bye.xml"), 15064, &[]);
    let mut call = ep
        .invite(invite_to(&ep, sipp.port, Transport::Udp))
        .unwrap();
    assert!(matches!(
        next_significant(&mut call).await,
        CallEvent::Answered { .. }
    ));
    call.hangup();
    assert_eq!(next(&mut call).await, CallEvent::Terminated);
    // sipp only succeeds if it received our BYE (and we got its 200).
    assert_eq!(sipp.finish().await, 0);
}

#[tokio::test]
async fn outbound_over_tcp() {
    let (ep, _rx) = endpoint(true).await;
    let sipp = spawn_sipp(&scenario("uas_answer_wait_bye.xml"), 15070, &["-t", "t1"]);
    // Readiness probe: sipp gives no "listening" signal, so poll its TCP port with
    // a bounded back-off before dialling (the call itself is never retried).
    let mut call = None;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(sipp.addr()).await.is_ok() {
            call = Some(
                ep.invite(invite_to(&ep, sipp.port, Transport::Tcp))
                    .unwrap(),
            );
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut call = call.expect("sipp TCP listener never came up");
    assert!(matches!(
        next_significant(&mut call).await,
        CallEvent::Answered { .. }
    ));
    call.hangup();
    assert_eq!(next(&mut call).await, CallEvent::Terminated);
    assert_eq!(sipp.finish().await, 0);
}

#[tokio::test]
async fn inbound_accept_dtmf_bye() {
    let (ep, mut incoming) = endpoint(false).await;
    let target = format!("127.0.0.1:{}", ep.udp_port());
    let sipp = spawn_sipp(&scenario("uac_dtmf_bye.xml"), 15065, &[&target]);
    let inc = tokio::time::timeout(EVENT_TIMEOUT, incoming.recv())
        .await
        .expect("no incoming call")
        .unwrap();
    assert_eq!(inc.request_uri_user, "+15550001111");
    assert_eq!(inc.to_user, "+15550001111");
    assert_eq!(inc.from_user, "+15559998888");
    assert_eq!(inc.from_display.as_deref(), Some("Test Caller"));
    assert_eq!(inc.source.port(), 15065);
    let offer = sdp::parse(inc.remote_sdp.as_bytes()).unwrap();
    let answer =
        sdp::negotiate(&offer, ep.public_ip(), 41000, &[Codec::Pcmu, Codec::Pcma]).unwrap();
    assert_eq!(answer.params.codec, Codec::Pcma, "caller prefers PCMA");
    assert_eq!(answer.params.telephone_event_pt, Some(101));
    inc.ringing();
    let mut call = inc.accept(answer.sdp.to_string()).unwrap();
    assert_eq!(next(&mut call).await, CallEvent::Dtmf('5'));
    assert_eq!(next(&mut call).await, CallEvent::RemoteHangup);
    assert_eq!(next(&mut call).await, CallEvent::Terminated);
    assert_eq!(sipp.finish().await, 0);
}

#[tokio::test]
async fn inbound_over_tcp() {
    let (ep, mut incoming) = endpoint(true).await;
    let target = format!("127.0.0.1:{}", ep.tcp_port().unwrap());
    let sipp = spawn_sipp(&scenario("uac_dtmf_bye.xml"), 15073, &["-t", "t1", &target]);
    let inc = tokio::time::timeout(EVENT_TIMEOUT, incoming.recv())
        .await
        .expect("no incoming call")
        .unwrap();
    assert_eq!(inc.transport, Transport::Tcp);
    let offer = sdp::parse(inc.remote_sdp.as_bytes()).unwrap();
    let answer =
        sdp::negotiate(&offer, ep.public_ip(), 41002, &[Codec::Pcmu, Codec::Pcma]).unwrap();
    inc.ringing();
    let mut call = inc.accept(answer.sdp.to_string()).unwrap();
    assert_eq!(next(&mut call).await, CallEvent::Dtmf('5'));
    assert_eq!(next(&mut call).await, CallEvent::RemoteHangup);
    assert_eq!(next(&mut call).await, CallEvent::Terminated);
    assert_eq!(sipp.finish().await, 0);
}

#[tokio::test]
async fn inbound_cancelled_by_caller() {
    let (ep, mut incoming) = endpoint(false).await;
    let target = format!("127.0.0.1:{}", ep.udp_port());
    let sipp = spawn_sipp(&scenario("uac_cancel.xml"), 15075, &[&target]);
    let inc = tokio::time::timeout(EVENT_TIMEOUT, incoming.recv())
        .await
        .expect("no incoming call")
        .unwrap();
    inc.ringing();
    tokio::time::timeout(EVENT_TIMEOUT, inc.cancelled())
        .await
        .expect("CANCEL not seen");
    assert!(inc.is_cancelled());
    let offer = sdp::parse(inc.remote_sdp.as_bytes()).unwrap();
    let answer = sdp::negotiate(&offer, ep.public_ip(), 41004, &[Codec::Pcmu]).unwrap();
    assert!(matches!(
        inc.accept(answer.sdp.to_string()),
        Err(switchboard_sip::SipError::Cancelled)
    ));
    // sipp completes only after 200 (CANCEL) and 487 (INVITE) arrived.
    assert_eq!(sipp.finish().await, 0);
}

#[tokio::test]
async fn options_answered() {
    let (ep, _rx) = endpoint(false).await;
    let target = format!("127.0.0.1:{}", ep.udp_port());
    let sipp = spawn_sipp(&scenario("uac_options.xml"), 15066, &[&target]);
    assert_eq!(sipp.finish().await, 0);
}

fn auth_invite(ep: &SipEndpoint, port: u16, password: &str) -> OutboundInvite {
    let mut inv = invite_to(ep, port, Transport::Udp);
    inv.credentials = Some(("trunkuser".into(), password.into()));
    inv
}

async fn digest_call(scenario_file: &str, port: u16, password: &str) -> (CallEvent, common::Sipp) {
    let (ep, _rx) = endpoint(false).await;
    let sipp = spawn_sipp(&scenario(scenario_file), port, &[]);
    let mut call = ep.invite(auth_invite(&ep, sipp.port, password)).unwrap();
    let first = next_significant(&mut call).await;
    if matches!(first, CallEvent::Answered { .. }) {
        call.hangup();
    }
    assert_eq!(next(&mut call).await, CallEvent::Terminated);
    (first, sipp)
}

/// 407 challenge; the scenario requires the exact precomputed Proxy-Authorization
/// response for password "s3cret" (see uas_proxy_auth.xml).
#[tokio::test]
async fn digest_proxy_auth_ok() {
    let (first, sipp) = digest_call("uas_proxy_auth.xml", 15071, "s3cret").await;
    assert!(matches!(first, CallEvent::Answered { .. }), "got {first:?}");
    assert_eq!(sipp.finish().await, 0);
}

#[tokio::test]
async fn digest_proxy_auth_wrong_password() {
    let (first, sipp) = digest_call("uas_proxy_auth.xml", 15072, "wrong").await;
    assert_eq!(
        first,
        CallEvent::Failed {
            code: 407,
            reason: "Proxy Authentication Required".into(),
            timed_out: false
        },
        "a second challenge ends the call"
    );
    assert_eq!(sipp.finish().await, 0);
}

/// 401 challenge; sipp's verifyauth recomputes the digest with the password.
#[tokio::test]
async fn digest_www_auth_ok() {
    let (first, sipp) = digest_call("uas_www_auth.xml", 15067, "s3cret").await;
    assert!(matches!(first, CallEvent::Answered { .. }), "got {first:?}");
    assert_eq!(sipp.finish().await, 0);
}

#[tokio::test]
async fn digest_www_auth_wrong_password() {
    let (first, sipp) = digest_call("uas_www_auth.xml", 15068, "wrong").await;
    assert_eq!(
        first,
        CallEvent::Failed {
            code: 401,
            reason: "Unauthorized".into(),
            timed_out: false
        }
    );
    assert_eq!(sipp.finish().await, 0);
}

#[tokio::test]
async fn register_refresh_and_unregister() {
    let (ep, _rx) = endpoint(false).await;
    let sipp = spawn_sipp(&scenario("uas_register.xml"), 15069, &[]);
    let mut reg = ep.register(RegisterConfig {
        registrar: Target {
            host: "127.0.0.1".into(),
            port: sipp.port,
            transport: Transport::Udp,
        },
        username: "reguser".into(),
        password: "regpass".into(),
        domain: None,
        expires: Duration::from_secs(60),
    });
    let wait_for = |want: RegistrationState| {
        let mut st = reg.state.clone();
        async move {
            tokio::time::timeout(EVENT_TIMEOUT, st.wait_for(|s| *s == want))
                .await
                .expect("registration state")
                .expect("registration task ended")
                .clone()
        }
    };
    wait_for(RegistrationState::Registered { expires: 2 }).await;
    // The 2 s binding must be refreshed before it expires (§10.2.4).
    wait_for(RegistrationState::Registered { expires: 60 }).await;
    reg.state.mark_unchanged();
    reg.stop().await;
    assert_eq!(sipp.finish().await, 0);
}
