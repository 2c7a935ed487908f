//! RtpSession over real loopback UDP sockets.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use switchboard_media::audio::{decode_mp3, rms, sine, tone_ratio};
use switchboard_media::dtmf::{encode_digit, DtmfDigit};
use switchboard_media::recorder::CallRecorder;
use switchboard_media::rtp::RtpPacket;
use switchboard_media::session::{bind_rtp_pair, MediaEvent, RtpSession, SessionConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Safety net only: every wait below ends on an event.
const LIMIT: Duration = Duration::from_secs(20);

async fn pair() -> (UdpSocket, UdpSocket) {
    bind_rtp_pair(LO, 30000, 39999).await.unwrap()
}

/// Wait for the first event matching `f`, returning what it maps to.
async fn wait_for<T>(
    rx: &mut Receiver<MediaEvent>,
    mut f: impl FnMut(&MediaEvent) -> Option<T>,
) -> T {
    timeout(LIMIT, async {
        loop {
            let ev = rx.recv().await.expect("session ended");
            if let Some(v) = f(&ev) {
                return v;
            }
        }
    })
    .await
    .expect("timed out waiting for media event")
}

/// Count 20 ms windows where the 1 kHz tone dominates.
fn tone_windows(samples: &[i16]) -> usize {
    samples
        .chunks(160)
        .filter(|w| rms(w) > 1000.0 && tone_ratio(w, 8000, 1000.0) > 0.5)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tone_goes_to_the_right_channel_of_both_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let (a_rtp, a_rtcp) = pair().await;
    let (b_rtp, b_rtcp) = pair().await;
    let (a_addr, b_addr) = (a_rtp.local_addr().unwrap(), b_rtp.local_addr().unwrap());
    assert_eq!(a_addr.port() % 2, 0);
    assert_eq!(a_rtcp.local_addr().unwrap().port(), a_addr.port() + 1);

    let started = Instant::now();
    let rec_a = CallRecorder::create(dir.path().join("a")).unwrap();
    let rec_b = CallRecorder::create(dir.path().join("b")).unwrap();
    let (ha, mut ea) = RtpSession::start(
        SessionConfig::new(b_addr, 0),
        a_rtp,
        Some(a_rtcp),
        Some(rec_a),
    );
    let mut cfg_b = SessionConfig::new(a_addr, 0);
    cfg_b.emit_caller_audio = true;
    let (hb, mut eb) = RtpSession::start(cfg_b, b_rtp, Some(b_rtcp), Some(rec_b));

    // A plays one second of 1 kHz to B.
    ha.play(sine(1000.0, 8000, 8000, 12000.0)).await.unwrap();
    wait_for(&mut ea, |e| {
        (*e == MediaEvent::PlaybackFinished).then_some(())
    })
    .await;
    // B: wait until the tone has come through its jitter buffer and 10 silent frames followed.
    let mut tone_frames = 0;
    let mut quiet_after = 0;
    wait_for(&mut eb, |e| {
        if let MediaEvent::CallerAudio(f) = e {
            if rms(f) > 1000.0 {
                tone_frames += 1;
                quiet_after = 0;
            } else if tone_frames > 0 {
                quiet_after += 1;
            }
        }
        (quiet_after >= 10).then_some(())
    })
    .await;
    assert!(
        (48..=52).contains(&tone_frames),
        "B heard {tone_frames} tone frames"
    );

    let ra = ha.stop().await.unwrap();
    let rb = hb.stop().await.unwrap();
    let elapsed_ms = started.elapsed().as_millis() as u64;

    // Transport: nothing lost or broken on loopback, both directions flowed.
    for r in [&ra, &rb] {
        assert_eq!(r.stats.parse_errors, 0);
        assert_eq!(r.stats.unexpected_source, 0);
        assert_eq!(r.stats.jitter.lost, 0, "{:?}", r.stats);
        assert!(r.stats.packets_sent >= 60);
        assert!(r.stats.jitter.received >= 55);
        assert!(r.recording_error.is_none());
    }
    assert_eq!(rb.stats.remote_ssrc, Some(ha_ssrc(&ra)));

    // B's recording: tone on the caller (left) channel only, about one second of it.
    let info_b = rb.recording.unwrap();
    let (ch, rate, pcm) = decode_mp3(&info_b.stereo_path).unwrap();
    assert_eq!((ch, rate), (2, 8000));
    let left = tone_windows(&pcm[0]);
    assert!(
        (45..=55).contains(&left),
        "B caller channel tone windows {left}"
    );
    assert_eq!(tone_windows(&pcm[1]), 0, "B agent channel must be silent");
    assert!(rms(&pcm[1]) < 50.0);
    let (_, _, mono) = decode_mp3(&info_b.mono_path).unwrap();
    assert!((45..=55).contains(&tone_windows(&mono[0])));

    // A's recording: the tone it played is on the agent (right) channel.
    let info_a = ra.recording.unwrap();
    let (_, _, pcm_a) = decode_mp3(&info_a.stereo_path).unwrap();
    let right = tone_windows(&pcm_a[1]);
    assert!(
        (48..=52).contains(&right),
        "A agent channel tone windows {right}"
    );
    assert_eq!(
        tone_windows(&pcm_a[0]),
        0,
        "A caller channel must be silent"
    );

    // Durations: recorded ticks match wall-clock time and the decoded length.
    for (info, pcm) in [(&info_a, &pcm_a), (&info_b, &pcm)] {
        assert!(
            info.duration_ms <= elapsed_ms + 40 && info.duration_ms + 300 >= elapsed_ms,
            "{} vs {elapsed_ms}",
            info.duration_ms
        );
        let decoded_ms = pcm[0].len() as u64 / 8;
        assert!(
            decoded_ms.abs_diff(info.duration_ms) <= 200,
            "decoded {decoded_ms} ms vs {} ms",
            info.duration_ms
        );
    }
}

fn ha_ssrc(r: &switchboard_media::session::StopReport) -> u32 {
    r.stats.local_ssrc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_garbage_reordering_duplicates_and_strangers() {
    let raw = UdpSocket::bind((LO, 0)).await.unwrap();
    let stranger = UdpSocket::bind((LO, 0)).await.unwrap();
    let (b_rtp, b_rtcp) = pair().await;
    let b_addr = b_rtp.local_addr().unwrap();
    let (hb, mut eb) = RtpSession::start(
        SessionConfig::new(raw.local_addr().unwrap(), 0),
        b_rtp,
        Some(b_rtcp),
        None,
    );

    let audio =
        |seq: u16| RtpPacket::new(0, seq, u32::from(seq) * 160, 0xCAFE, vec![0xFF; 160]).to_bytes();
    let mut datagrams: Vec<Vec<u8>> = Vec::new();
    for seq in [0u16, 1, 2, 4, 3, 5, 5, 6] {
        datagrams.push(audio(seq));
    }
    // Garbage: empty, short, wrong version, CSRC overflow, bad padding.
    datagrams.push(vec![]);
    datagrams.push(vec![0x80, 0, 1]);
    let mut v1 = audio(7);
    v1[0] = 0x40;
    datagrams.push(v1);
    let mut cc = audio(7);
    cc[0] |= 0x0F;
    cc.truncate(20);
    datagrams.push(cc);
    let mut pad = audio(7);
    pad[0] |= 0x20;
    *pad.last_mut().unwrap() = 200;
    datagrams.push(pad);
    for d in &datagrams {
        raw.send_to(d, b_addr).await.unwrap();
    }
    // A valid packet from an address not in the SDP.
    stranger.send_to(&audio(7), b_addr).await.unwrap();
    // Sentinel: one RFC 4733 digit, up to its first end packet (where it is reported). Loopback
    // keeps order, so once it is reported every datagram above has been processed.
    let train = encode_digit('7', 480, 160, 10).unwrap();
    assert_eq!(train.len(), 5);
    for (i, p) in train.iter().take(3).enumerate() {
        let mut pkt = RtpPacket::new(101, 7 + i as u16, 7 * 160, 0xCAFE, p.payload.to_vec());
        pkt.marker = p.marker;
        raw.send_to(&pkt.to_bytes(), b_addr).await.unwrap();
    }
    let digit = wait_for(&mut eb, |e| match e {
        MediaEvent::Dtmf(d) => Some(*d),
        _ => None,
    })
    .await;
    assert_eq!(digit.digit, Some('7'));

    let s = hb.stats().await.unwrap();
    assert_eq!(s.parse_errors, 5, "{s:?}");
    assert_eq!(s.unexpected_source, 1);
    assert_eq!(s.jitter.duplicates, 1);
    assert_eq!(s.jitter.reordered, 1);
    assert_eq!(s.jitter.received, 7 + 3, "7 audio + 3 event packets");
    assert_eq!(s.jitter.lost, 0);
    assert_eq!(s.dtmf_digits, 1);
    assert_eq!(s.remote_ssrc, Some(0xCAFE));

    // Still alive and sending to the raw peer.
    let mut buf = [0u8; 2048];
    let (n, from) = timeout(LIMIT, raw.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from, b_addr);
    assert!(RtpPacket::parse(&buf[..n]).is_ok());
    let report = hb.stop().await.unwrap();
    assert_eq!(
        report.stats.dtmf_digits, 1,
        "no duplicate digit reported at stop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4733_digits_are_reported_once_each() {
    let (a_rtp, a_rtcp) = pair().await;
    let (b_rtp, b_rtcp) = pair().await;
    let (a_addr, b_addr) = (a_rtp.local_addr().unwrap(), b_rtp.local_addr().unwrap());
    let (ha, mut ea) = RtpSession::start(SessionConfig::new(b_addr, 8), a_rtp, Some(a_rtcp), None);
    let (hb, mut eb) = RtpSession::start(SessionConfig::new(a_addr, 8), b_rtp, Some(b_rtcp), None);
    assert!(ha.send_dtmf("12x", 100).await.is_err());
    ha.send_dtmf("123#9", 100).await.unwrap();
    let mut digits: Vec<DtmfDigit> = Vec::new();
    wait_for(&mut eb, |e| {
        if let MediaEvent::Dtmf(d) = e {
            digits.push(*d);
        }
        (digits.last().and_then(|d| d.digit) == Some('9')).then_some(())
    })
    .await;
    // The trailing end retransmissions of '9' are flushed by A finishing the train.
    wait_for(&mut ea, |e| (*e == MediaEvent::DtmfSent).then_some(())).await;
    let s: String = digits.iter().filter_map(|d| d.digit).collect();
    assert_eq!(s, "123#9");
    assert!(digits.iter().all(|d| d.duration == 800), "{digits:?}");
    ha.stop().await.unwrap();
    let rb = hb.stop().await.unwrap();
    assert_eq!(rb.stats.dtmf_digits, 5);
    assert_eq!(rb.stats.jitter.lost, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latches_to_the_real_source_and_exchanges_rtcp() {
    let (a_rtp, a_rtcp) = pair().await;
    let (b_rtp, b_rtcp) = pair().await;
    let (a_addr, b_addr) = (a_rtp.local_addr().unwrap(), b_rtp.local_addr().unwrap());
    // B's SDP says A is at a dead address; with latching it follows the real source.
    let mut cfg_b = SessionConfig::new(SocketAddr::new(LO, 9), 0);
    cfg_b.latch_remote = true;
    cfg_b.remote_rtcp = Some(SocketAddr::new(LO, a_addr.port() + 1));
    cfg_b.rtcp_interval = Duration::from_millis(200);
    let mut cfg_a = SessionConfig::new(b_addr, 0);
    cfg_a.rtcp_interval = Duration::from_millis(200);
    let (ha, mut ea) = RtpSession::start(cfg_a, a_rtp, Some(a_rtcp), None);
    let (hb, mut eb) = RtpSession::start(cfg_b, b_rtp, Some(b_rtcp), None);
    let latched = wait_for(&mut eb, |e| match e {
        MediaEvent::RemoteLatched(a) => Some(*a),
        _ => None,
    })
    .await;
    assert_eq!(latched, a_addr);
    // A now receives B's stream.
    let from = wait_for(&mut ea, |e| match e {
        MediaEvent::MediaStarted { from, .. } => Some(*from),
        _ => None,
    })
    .await;
    assert_eq!(from, b_addr);
    // A stops: its RTCP BYE reaches B.
    let ra = ha.stop().await.unwrap();
    wait_for(&mut eb, |e| (*e == MediaEvent::RemoteBye).then_some(())).await;
    let rb = hb.stop().await.unwrap();
    assert!(ra.stats.rtcp_sent >= 1);
    assert!(rb.stats.rtcp_received >= 1);
    assert_eq!(rb.stats.rtcp_errors, 0);
}

#[tokio::test]
async fn hold_stops_sending() {
    let peer = UdpSocket::bind((LO, 0)).await.unwrap();
    let (rtp, rtcp) = pair().await;
    let (h, _ev) = RtpSession::start(
        SessionConfig::new(peer.local_addr().unwrap(), 0),
        rtp,
        Some(rtcp),
        None,
    );
    let mut buf = [0u8; 2048];
    let (n, _) = timeout(LIMIT, peer.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let first = RtpPacket::parse(&buf[..n]).unwrap();
    assert!(first.marker, "first packet carries the marker bit");
    h.set_hold(true).await.unwrap();
    // Commands are handled in order, so once this returns the hold is in effect and every
    // packet sent before it is already queued on the loopback socket: drain those.
    let sent_at_hold = h.stats().await.unwrap().packets_sent;
    let mut last = first.clone();
    let mut drained = 1;
    while let Ok((n, _)) = peer.try_recv_from(&mut buf) {
        last = RtpPacket::parse(&buf[..n]).unwrap();
        drained += 1;
    }
    assert_eq!(drained, sent_at_hold);
    // Nothing arrives while held (a bounded negative check, not synchronisation).
    assert!(
        timeout(Duration::from_millis(300), peer.recv_from(&mut buf))
            .await
            .is_err()
    );
    h.set_hold(false).await.unwrap();
    let (n, _) = timeout(LIMIT, peer.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let resumed = RtpPacket::parse(&buf[..n]).unwrap();
    assert!(resumed.marker, "first packet after hold starts a talkspurt");
    assert_eq!(
        resumed.sequence,
        last.sequence.wrapping_add(1),
        "no packets were sent while held"
    );
    // The timestamp kept running during the hold (RFC 3550 §5.1): >= 300 ms of samples.
    assert!(resumed.timestamp.wrapping_sub(last.timestamp) >= 2400);
    h.stop().await.unwrap();
}

#[tokio::test]
async fn port_pairs_are_even_distinct_and_bounded() {
    let (a, a2) = bind_rtp_pair(LO, 41000, 41003).await.unwrap();
    let (b, b2) = bind_rtp_pair(LO, 41000, 41003).await.unwrap();
    let mut ports = [
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    ];
    ports.sort();
    assert_eq!(ports, [41000, 41002]);
    assert_eq!(
        a2.local_addr().unwrap().port(),
        a.local_addr().unwrap().port() + 1
    );
    assert_eq!(
        b2.local_addr().unwrap().port(),
        b.local_addr().unwrap().port() + 1
    );
    // Range exhausted.
    assert!(bind_rtp_pair(LO, 41000, 41003).await.is_err());
    assert!(bind_rtp_pair(LO, 41005, 41005).await.is_err());
}
