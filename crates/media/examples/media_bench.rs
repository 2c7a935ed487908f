//! CPU cost of the per-call media pipeline, for capacity planning.
//!
//! For N simulated calls, S seconds each, every 20 ms tick does what an `RtpSession` does per
//! call: G.711-encode the agent frame and serialise its RTP packet, parse the caller's incoming
//! RTP packet, push it through the jitter buffer, pop and G.711-decode it, mix both channels and
//! MP3-encode the mono and the two-channel recording, writing both files. No sockets or timers:
//! this measures computation, as fast as possible, and reports CPU time per second of call.
//!
//! `cargo run --release -p switchboard-media --example media_bench -- --calls 20 --seconds 60`

use std::time::Instant;
use switchboard_media::audio::sine;
use switchboard_media::g711::G711;
use switchboard_media::jitter::{JitterBuffer, JitterConfig, JitterPacket, Playout};
use switchboard_media::recorder::{CallRecorder, FRAME_SAMPLES};
use switchboard_media::rtp::RtpPacket;

/// Process CPU time (user + system) from /proc/self/stat, in seconds.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on Linux.
    Some((utime + stime) / 100.0)
}

struct Call {
    jb: JitterBuffer,
    rec: CallRecorder,
    seq: u16,
    ts: u32,
    out: Vec<u8>,
}

fn main() {
    let mut calls = 10usize;
    let mut seconds = 60u64;
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--calls" => {
                calls = args
                    .get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(calls)
            }
            "--seconds" => {
                seconds = args
                    .get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(seconds)
            }
            other => eprintln!("ignoring argument {other}"),
        }
        i += 2;
    }
    let dir = std::env::temp_dir().join(format!("media_bench_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    // Speech-like test signals: a chord with slow amplitude modulation, different per side.
    let caller_pcm: Vec<i16> = sine(440.0, 8000, 8000, 6000.0)
        .iter()
        .zip(sine(1250.0, 8000, 8000, 3000.0))
        .enumerate()
        .map(|(i, (a, b))| {
            ((f64::from(*a) + f64::from(b)) * (0.6 + 0.4 * (i as f64 / 1600.0).sin())) as i16
        })
        .collect();
    let agent_pcm = sine(700.0, 8000, 8000, 8000.0);
    let codec = G711::Pcmu;
    let caller_g711 = codec.encode(&caller_pcm);

    let mut set: Vec<Call> = (0..calls)
        .map(|c| Call {
            jb: JitterBuffer::new(JitterConfig::default()),
            rec: CallRecorder::create(dir.join(format!("call{c}"))).expect("recorder"),
            seq: c as u16 * 1000,
            ts: c as u32 * 7919,
            out: Vec::with_capacity(200),
        })
        .collect();
    // Incoming packets as they would arrive (serialised), one per tick, built up front.
    let ticks = seconds * 50;
    let incoming: Vec<Vec<u8>> = (0..50u32)
        .map(|k| {
            let off = (k as usize * FRAME_SAMPLES) % caller_g711.len();
            RtpPacket::new(
                0,
                0,
                0,
                0xABCD,
                caller_g711[off..off + FRAME_SAMPLES].to_vec(),
            )
            .to_bytes()
        })
        .collect();

    let cpu0 = cpu_seconds();
    let wall0 = Instant::now();
    let epoch = Instant::now();
    let mut decoded = Vec::with_capacity(FRAME_SAMPLES);
    for t in 0..ticks {
        for call in set.iter_mut() {
            // Outgoing agent audio: encode + RTP serialise (the send itself is a syscall, excluded).
            let off = (t as usize * FRAME_SAMPLES) % agent_pcm.len();
            let agent = &agent_pcm[off..off + FRAME_SAMPLES];
            let mut pkt = RtpPacket::new(0, call.seq, call.ts, 1, codec.encode(agent));
            pkt.marker = t == 0;
            call.out.clear();
            pkt.write_to(&mut call.out);
            std::hint::black_box(&call.out);

            // Incoming: patch seq/ts into the prepared datagram, parse, jitter buffer.
            let mut datagram = incoming[(t % 50) as usize].clone();
            datagram[2..4].copy_from_slice(&call.seq.to_be_bytes());
            datagram[4..8].copy_from_slice(&call.ts.to_be_bytes());
            let p = RtpPacket::parse(&datagram).expect("valid packet");
            let jp = JitterPacket {
                sequence: p.sequence,
                timestamp: p.timestamp,
                payload_type: p.payload_type,
                marker: p.marker,
                payload: p.payload,
            };
            call.jb
                .push(jp, epoch + std::time::Duration::from_millis(t * 20));
            call.seq = call.seq.wrapping_add(1);
            call.ts = call.ts.wrapping_add(FRAME_SAMPLES as u32);

            decoded.clear();
            let caller = match call.jb.pop() {
                Playout::Audio(p) => {
                    codec.decode_into(&p.payload, &mut decoded);
                    Some(&decoded[..])
                }
                _ => None,
            };
            call.rec.push_frame(caller, Some(agent)).expect("record");
        }
    }
    let mut total_bytes = 0u64;
    for call in set {
        let info = call.rec.finish().expect("finish");
        total_bytes += info.size_bytes + info.stereo_size_bytes;
    }
    let wall = wall0.elapsed().as_secs_f64();
    let cpu = match (cpu0, cpu_seconds()) {
        (Some(a), Some(b)) => b - a,
        _ => wall,
    };
    let call_seconds = calls as f64 * seconds as f64;
    let per = cpu / call_seconds;
    println!("media_bench: {calls} calls x {seconds} s = {call_seconds:.0} call-seconds of audio");
    println!("  wall time:                 {wall:.2} s");
    println!("  CPU time:                  {cpu:.2} s (user+sys)");
    println!("  CPU s per call-second:     {per:.5}");
    println!("  percent of one core/call:  {:.3} %", per * 100.0);
    println!("  calls per core:            {:.0}", 1.0 / per.max(1e-9));
    println!(
        "  MP3 written:               {:.1} KiB ({:.2} KiB per call-minute, both files)",
        total_bytes as f64 / 1024.0,
        total_bytes as f64 / 1024.0 / (call_seconds / 60.0)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
