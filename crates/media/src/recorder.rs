//! Call recording: two 8 kHz channels (caller = far end, agent = our side) encoded while the
//! call runs into a mono mix MP3 and a two-channel MP3 (caller left, agent right).
//!
//! The recorder is driven by the media tick, one 20 ms frame per channel per tick, with `None`
//! meaning silence, so both channels stay time-aligned whatever the packets did. Encoded bytes
//! are handed to a [`RecordingSink`] every `flush_every_frames` ticks (0.5 s by default): a crash
//! loses at most that much plus LAME's internal look-ahead, and the file on disk is a valid MP3
//! stream up to the last flush (CBR without a Xing/LAME header, so nothing has to be patched at
//! the start of the file when the call ends).

use mp3lame_encoder::{
    Bitrate, Builder, DualPcm, Encoder, FlushNoGap, Mode, MonoPcm, Quality, VbrMode,
};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Write;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Sample rate of everything the recorder sees (G.711 narrowband).
pub const SAMPLE_RATE: u32 = 8000;
/// Samples per channel per tick (20 ms).
pub const FRAME_SAMPLES: usize = 160;

/// Where encoded bytes go. The local-file implementation is [`FileSink`]; an object-store
/// implementation can buffer parts and upload them.
pub trait RecordingSink: Send {
    /// Append encoded bytes. Called at most every few hundred milliseconds.
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// Cut the object back to `len` bytes, after an `append` that failed part-way, so it
    /// ends on the last whole hand-over (and its SHA-256 is that of the bytes counted).
    fn truncate(&mut self, _len: u64) -> std::io::Result<()> {
        Ok(())
    }
    /// All bytes were appended; make them durable.
    fn finish(&mut self) -> std::io::Result<()>;
    /// Path or URL of the stored object, reported in [`RecordingInfo`].
    fn location(&self) -> PathBuf;
}

/// A [`RecordingSink`] writing a local file. Each append is a `write` system call straight to
/// the file (no user-space buffer), so the bytes survive a crash of the process.
#[derive(Debug)]
pub struct FileSink {
    file: File,
    path: PathBuf,
}

impl FileSink {
    /// Create (or truncate) the file.
    pub fn create(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        Ok(Self {
            file: File::create(&path)?,
            path,
        })
    }
}

impl RecordingSink for FileSink {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)
    }
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)
    }
    fn finish(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        self.file.sync_all()
    }
    fn location(&self) -> PathBuf {
        self.path.clone()
    }
}

/// Recorder errors.
#[derive(Debug, Error)]
pub enum RecorderError {
    #[error("recording io: {0}")]
    Io(#[from] std::io::Error),
    #[error("mp3 encoder: {0}")]
    Encoder(String),
}

fn enc_err(e: impl std::fmt::Display) -> RecorderError {
    RecorderError::Encoder(e.to_string())
}

/// Encoder settings.
#[derive(Debug, Clone, Copy)]
pub struct RecorderConfig {
    /// Constant bitrate of the mono mix, kbit/s (one of 8, 16, 24, 32, 40, 48, 64).
    pub mono_kbps: u32,
    /// Constant bitrate of the two-channel file, kbit/s.
    pub stereo_kbps: u32,
    /// Ticks between hand-overs of encoded bytes to the sinks (25 = 0.5 s).
    pub flush_every_frames: u32,
    /// LAME algorithm quality 0 (best, slowest) ..= 9 (worst, fastest).
    pub quality: u8,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        // 8 kHz speech: 32 kbit/s mono and 48 kbit/s for two independent channels are
        // transparent for telephone-band audio (the source is 64 kbit/s G.711 per channel).
        Self {
            mono_kbps: 32,
            stereo_kbps: 48,
            flush_every_frames: 25,
            // 7: no noise shaping. For telephone-band audio from G.711 the difference is
            // not audible, and it takes a third less CPU than 5 (LAME was over half of a
            // recorded call's CPU; see BENCHMARKS.md "Telephony load").
            quality: 7,
        }
    }
}

/// What a finished recording produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingInfo {
    /// Recorded call time (ticks x 20 ms).
    pub duration_ms: u64,
    pub mono_path: PathBuf,
    pub stereo_path: PathBuf,
    /// Size of the mono file.
    pub size_bytes: u64,
    /// SHA-256 of the mono file, lowercase hex.
    pub sha256_hex: String,
    /// Size of the two-channel file.
    pub stereo_size_bytes: u64,
    /// SHA-256 of the two-channel file.
    pub stereo_sha256_hex: String,
    /// Set when writing failed during the call (say, the disk filled up): the files hold the
    /// call up to `duration_ms`, and this says why they stop there.
    pub incomplete: Option<String>,
}

fn bitrate(kbps: u32) -> Result<Bitrate, RecorderError> {
    Ok(match kbps {
        8 => Bitrate::Kbps8,
        16 => Bitrate::Kbps16,
        24 => Bitrate::Kbps24,
        32 => Bitrate::Kbps32,
        40 => Bitrate::Kbps40,
        48 => Bitrate::Kbps48,
        64 => Bitrate::Kbps64,
        other => {
            return Err(RecorderError::Encoder(format!(
                "unsupported bitrate {other} kbit/s at 8 kHz"
            )))
        }
    })
}

fn quality(q: u8) -> Quality {
    match q {
        0 => Quality::Best,
        1 => Quality::SecondBest,
        2 => Quality::NearBest,
        3 => Quality::VeryNice,
        4 => Quality::Nice,
        5 => Quality::Good,
        6 => Quality::Decent,
        7 => Quality::Ok,
        8 => Quality::SecondWorst,
        _ => Quality::Worst,
    }
}

fn build_encoder(channels: u8, kbps: u32, q: u8) -> Result<Encoder, RecorderError> {
    let mut b = Builder::new().ok_or_else(|| RecorderError::Encoder("lame_init failed".into()))?;
    b.set_num_channels(channels).map_err(enc_err)?;
    b.set_sample_rate(SAMPLE_RATE).map_err(enc_err)?;
    // Keep 8 kHz (MPEG-2.5) instead of letting LAME resample.
    b.set_output_sample_rate(NonZeroU32::new(SAMPLE_RATE))
        .map_err(enc_err)?;
    b.set_brate(bitrate(kbps)?).map_err(enc_err)?;
    // Plain stereo, not joint stereo: the channels are different people and must not bleed.
    b.set_mode(if channels == 1 {
        Mode::Mono
    } else {
        Mode::Stereo
    })
    .map_err(enc_err)?;
    b.set_quality(quality(q)).map_err(enc_err)?;
    b.set_vbr_mode(VbrMode::Off).map_err(enc_err)?;
    // A VBR/LAME tag would have to be written at the start of the file after the end of the
    // call; streaming CBR needs none.
    b.set_to_write_vbr_tag(false).map_err(enc_err)?;
    b.build().map_err(enc_err)
}

struct Track {
    encoder: Encoder,
    sink: Box<dyn RecordingSink>,
    pending: Vec<u8>,
    written: u64,
    hasher: Sha256,
}

impl Track {
    fn new(
        channels: u8,
        kbps: u32,
        q: u8,
        sink: Box<dyn RecordingSink>,
    ) -> Result<Self, RecorderError> {
        Ok(Self {
            encoder: build_encoder(channels, kbps, q)?,
            sink,
            pending: Vec::new(),
            written: 0,
            hasher: Sha256::new(),
        })
    }

    fn reserve(&mut self, samples: usize) {
        self.pending
            .reserve(mp3lame_encoder::max_required_buffer_size(samples));
    }

    fn flush_to_sink(&mut self) -> Result<(), RecorderError> {
        if !self.pending.is_empty() {
            if let Err(e) = self.sink.append(&self.pending) {
                // A write that failed part-way (ENOSPC) leaves a torn MP3 frame: cut it off
                // so the file ends where the counted bytes do. If even that fails, the
                // decoder skips a torn last frame anyway.
                let _ = self.sink.truncate(self.written);
                return Err(e.into());
            }
            self.hasher.update(&self.pending);
            self.written += self.pending.len() as u64;
            self.pending.clear();
        }
        Ok(())
    }

    /// Writes the encoder's tail and makes the file durable; describes it either way, with
    /// the error if that last write failed.
    fn finish(mut self) -> ((PathBuf, u64, String), Option<String>) {
        self.pending.reserve(7200 * 2);
        let r = self
            .encoder
            .flush_to_vec::<FlushNoGap>(&mut self.pending)
            .map_err(enc_err)
            .and_then(|_| self.flush_to_sink())
            .and_then(|()| self.sink.finish().map_err(RecorderError::from));
        (self.describe(), r.err().map(|e| e.to_string()))
    }

    /// Location, bytes written and their SHA-256, without writing more (after a failure).
    fn abandon(mut self) -> (PathBuf, u64, String) {
        // Make what was written durable if the device lets us; the file is valid either way.
        let _ = self.sink.finish();
        self.describe()
    }

    fn describe(self) -> (PathBuf, u64, String) {
        (
            self.sink.location(),
            self.written,
            hex::encode(self.hasher.finalize()),
        )
    }
}

/// The two-file call recorder. See the module docs.
pub struct CallRecorder {
    mono: Track,
    stereo: Track,
    cfg: RecorderConfig,
    frames: u64,
    /// Ticks in the files: up to the last hand-over both tracks took.
    flushed_frames: u64,
    /// Why recording stopped during the call (the first write error); the rest of the call
    /// is not recorded and the files keep what they had.
    failed: Option<String>,
    since_flush: u32,
    caller: Vec<i16>,
    agent: Vec<i16>,
    mix: Vec<i16>,
}

impl std::fmt::Debug for CallRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRecorder")
            .field("mono", &self.mono.sink.location())
            .field("stereo", &self.stereo.sink.location())
            .field("frames", &self.frames)
            .finish()
    }
}

/// Copy `src` into `dst` as exactly one frame: missing samples are silence, extra are cut.
fn fill_frame(dst: &mut Vec<i16>, src: Option<&[i16]>) {
    dst.clear();
    if let Some(s) = src {
        dst.extend_from_slice(&s[..s.len().min(FRAME_SAMPLES)]);
    }
    dst.resize(FRAME_SAMPLES, 0);
}

impl CallRecorder {
    /// Record to `<base>.mp3` and `<base>.stereo.mp3` with default settings.
    pub fn create(base: impl AsRef<Path>) -> Result<Self, RecorderError> {
        Self::create_with(base, RecorderConfig::default())
    }

    /// Record to `<base>.mp3` and `<base>.stereo.mp3`.
    pub fn create_with(base: impl AsRef<Path>, cfg: RecorderConfig) -> Result<Self, RecorderError> {
        let base = base.as_ref().as_os_str().to_owned();
        let mut mono = base.clone();
        mono.push(".mp3");
        let mut stereo = base;
        stereo.push(".stereo.mp3");
        Self::with_sinks(
            Box::new(FileSink::create(mono)?),
            Box::new(FileSink::create(stereo)?),
            cfg,
        )
    }

    /// Record into arbitrary sinks (e.g. an object store).
    pub fn with_sinks(
        mono: Box<dyn RecordingSink>,
        stereo: Box<dyn RecordingSink>,
        cfg: RecorderConfig,
    ) -> Result<Self, RecorderError> {
        Ok(Self {
            mono: Track::new(1, cfg.mono_kbps, cfg.quality, mono)?,
            stereo: Track::new(2, cfg.stereo_kbps, cfg.quality, stereo)?,
            cfg,
            frames: 0,
            flushed_frames: 0,
            failed: None,
            since_flush: 0,
            caller: Vec::with_capacity(FRAME_SAMPLES),
            agent: Vec::with_capacity(FRAME_SAMPLES),
            mix: Vec::with_capacity(FRAME_SAMPLES),
        })
    }

    /// Ticks recorded so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Why recording stopped during the call, if it did.
    pub fn failed(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Record one 20 ms tick. `None` (or a short frame) is silence for that channel.
    ///
    /// The first write error is returned once; the recorder then stops recording (later
    /// ticks are no-ops) and [`CallRecorder::finish`] describes the files as they were before
    /// the error, marked incomplete. Writing on after a gap would misalign the two files'
    /// time with the call's, so a recording that stopped stays stopped.
    pub fn push_frame(
        &mut self,
        caller: Option<&[i16]>,
        agent: Option<&[i16]>,
    ) -> Result<(), RecorderError> {
        if self.failed.is_some() {
            return Ok(());
        }
        fill_frame(&mut self.caller, caller);
        fill_frame(&mut self.agent, agent);
        self.mix.clear();
        // Sum with saturation: two people talking over each other should clip, not wrap.
        self.mix.extend(
            self.caller
                .iter()
                .zip(&self.agent)
                .map(|(&a, &b)| a.saturating_add(b)),
        );

        self.mono.reserve(FRAME_SAMPLES);
        self.mono
            .encoder
            .encode_to_vec(MonoPcm(&self.mix[..]), &mut self.mono.pending)
            .map_err(enc_err)?;
        self.stereo.reserve(FRAME_SAMPLES);
        self.stereo
            .encoder
            .encode_to_vec(
                DualPcm {
                    left: &self.caller[..],
                    right: &self.agent[..],
                },
                &mut self.stereo.pending,
            )
            .map_err(enc_err)?;
        self.frames += 1;
        self.since_flush += 1;
        if self.since_flush >= self.cfg.flush_every_frames.max(1) {
            self.flush()?;
        }
        Ok(())
    }

    /// Hand encoded bytes to the sinks now.
    pub fn flush(&mut self) -> Result<(), RecorderError> {
        if self.failed.is_some() {
            return Ok(());
        }
        self.since_flush = 0;
        let r = self
            .mono
            .flush_to_sink()
            .and_then(|()| self.stereo.flush_to_sink());
        match r {
            Ok(()) => {
                self.flushed_frames = self.frames;
                Ok(())
            }
            Err(e) => {
                self.failed = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Flush the encoders, close the sinks and describe the result. After a write error
    /// during the call, the files are described as they stand (`incomplete` says why);
    /// `Err` only when the final write itself fails.
    pub fn finish(mut self) -> Result<RecordingInfo, RecorderError> {
        let ms = |frames: u64| frames * 1000 * FRAME_SAMPLES as u64 / u64::from(SAMPLE_RATE);
        if let Some(why) = self.failed.take() {
            let duration_ms = ms(self.flushed_frames);
            let (mono_path, size_bytes, sha256_hex) = self.mono.abandon();
            let (stereo_path, stereo_size_bytes, stereo_sha256_hex) = self.stereo.abandon();
            return Ok(RecordingInfo {
                duration_ms,
                mono_path,
                stereo_path,
                size_bytes,
                sha256_hex,
                stereo_size_bytes,
                stereo_sha256_hex,
                incomplete: Some(why),
            });
        }
        let ((mono_path, size_bytes, sha256_hex), e1) = self.mono.finish();
        let ((stereo_path, stereo_size_bytes, stereo_sha256_hex), e2) = self.stereo.finish();
        let incomplete = e1.or(e2);
        // A failed last write loses the tail since the last hand-over.
        let duration_ms = ms(if incomplete.is_some() {
            self.flushed_frames
        } else {
            self.frames
        });
        Ok(RecordingInfo {
            duration_ms,
            mono_path,
            stereo_path,
            size_bytes,
            sha256_hex,
            stereo_size_bytes,
            stereo_sha256_hex,
            incomplete,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{decode_mp3, rms, sine, tone_ratio};
    use std::sync::{Arc, Mutex};

    #[test]
    fn records_two_aligned_channels_and_a_mix() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("call-1");
        let mut rec = CallRecorder::create(&base).unwrap();
        let caller_tone = sine(1000.0, SAMPLE_RATE, 8000 * 2, 12000.0);
        let agent_tone = sine(600.0, SAMPLE_RATE, 8000 * 2, 12000.0);
        // 2 s: caller speaks during the first second only, agent during the second only;
        // missing frames are passed as None.
        for i in 0..100 {
            let c = (i < 50).then(|| &caller_tone[i * 160..(i + 1) * 160]);
            let a = (i >= 50).then(|| &agent_tone[i * 160..(i + 1) * 160]);
            rec.push_frame(c, a).unwrap();
        }
        let info = rec.finish().unwrap();
        assert_eq!(info.duration_ms, 2000);
        assert_eq!(info.mono_path, dir.path().join("call-1.mp3"));
        assert_eq!(info.stereo_path, dir.path().join("call-1.stereo.mp3"));
        let bytes = std::fs::read(&info.mono_path).unwrap();
        assert_eq!(info.size_bytes, bytes.len() as u64);
        assert_eq!(info.sha256_hex, hex::encode(Sha256::digest(&bytes)));
        // 32 kbit/s for ~2 s.
        assert!(
            (6000..12000).contains(&bytes.len()),
            "mono size {}",
            bytes.len()
        );

        let (ch, rate, pcm) = decode_mp3(&info.stereo_path).unwrap();
        assert_eq!((ch, rate), (2, 8000));
        let len = pcm[0].len();
        assert!((15_500..=17_500).contains(&len), "decoded {len} samples");
        // Encoder delay is well under 0.25 s: judge the middle of each half.
        let first = 2400..5600;
        let second = 10400..13600;
        let (l, r) = (&pcm[0], &pcm[1]);
        assert!(tone_ratio(&l[first.clone()], 8000, 1000.0) > 0.8);
        assert!(
            rms(&r[first.clone()]) < 100.0,
            "agent silent in first second: {}",
            rms(&r[first.clone()])
        );
        assert!(tone_ratio(&r[second.clone()], 8000, 600.0) > 0.8);
        assert!(rms(&l[second.clone()]) < 100.0);

        let (mch, mrate, mono) = decode_mp3(&info.mono_path).unwrap();
        assert_eq!((mch, mrate), (1, 8000));
        assert!(tone_ratio(&mono[0][first], 8000, 1000.0) > 0.8);
        assert!(tone_ratio(&mono[0][second], 8000, 600.0) > 0.8);
    }

    /// Sink that records each append, to observe incremental writing.
    #[derive(Clone, Default)]
    struct Spy(Arc<Mutex<Vec<usize>>>);
    impl RecordingSink for Spy {
        fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
            self.0.lock().unwrap().push(bytes.len());
            Ok(())
        }
        fn finish(&mut self) -> std::io::Result<()> {
            Ok(())
        }
        fn location(&self) -> PathBuf {
            PathBuf::from("spy://")
        }
    }

    #[test]
    fn bytes_reach_the_sink_while_recording() {
        let (m, s) = (Spy::default(), Spy::default());
        let mut rec = CallRecorder::with_sinks(
            Box::new(m.clone()),
            Box::new(s.clone()),
            RecorderConfig::default(),
        )
        .unwrap();
        let tone = sine(440.0, 8000, 160, 8000.0);
        for _ in 0..250 {
            rec.push_frame(Some(&tone), None).unwrap();
        }
        // 5 s recorded with 0.5 s flushes: ~10 appends, all non-empty, before finish.
        let appends = m.0.lock().unwrap().clone();
        assert!(appends.len() >= 9, "{appends:?}");
        assert!(appends.iter().all(|&n| n > 0));
        assert!(s.0.lock().unwrap().len() >= 9);
        let info = rec.finish().unwrap();
        assert_eq!(info.duration_ms, 5000);
        assert_eq!(
            info.size_bytes,
            m.0.lock().unwrap().iter().sum::<usize>() as u64
        );
        assert_eq!(info.mono_path, PathBuf::from("spy://"));
    }

    #[test]
    fn crash_without_finish_leaves_a_playable_file() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("crash");
        let mut rec = CallRecorder::create(&base).unwrap();
        let tone = sine(1000.0, 8000, 160, 10000.0);
        for _ in 0..150 {
            rec.push_frame(Some(&tone), Some(&tone)).unwrap();
        }
        drop(rec); // no finish(): what a crash leaves behind
        let (_, _, pcm) = decode_mp3(dir.path().join("crash.mp3")).unwrap();
        // At most ~0.5 s + encoder look-ahead lost out of 3 s.
        assert!(
            pcm[0].len() >= 8000 * 2,
            "only {} samples survived",
            pcm[0].len()
        );
        assert!(tone_ratio(&pcm[0][4000..12000], 8000, 1000.0) > 0.8);
    }

    /// A file on a device with `room` bytes left: an append that does not fit writes what
    /// fits, then fails with ENOSPC, as write(2) does on a full file system.
    struct FullDisk {
        file: FileSink,
        room: usize,
    }
    impl RecordingSink for FullDisk {
        fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
            let n = bytes.len().min(self.room);
            self.file.append(&bytes[..n])?;
            self.room -= n;
            if n < bytes.len() {
                return Err(std::io::Error::from_raw_os_error(28));
            }
            Ok(())
        }
        fn truncate(&mut self, len: u64) -> std::io::Result<()> {
            self.file.truncate(len)
        }
        fn finish(&mut self) -> std::io::Result<()> {
            self.file.finish()
        }
        fn location(&self) -> PathBuf {
            self.file.location()
        }
    }

    #[test]
    fn a_full_disk_keeps_what_was_written_and_says_why_it_stops() {
        let dir = tempfile::tempdir().unwrap();
        let sink = |name: &str, room| {
            Box::new(FullDisk {
                file: FileSink::create(dir.path().join(name)).unwrap(),
                room,
            })
        };
        // Room for ~2.5 s of the 32 kbit/s mono file; the stereo file has plenty.
        let mut rec = CallRecorder::with_sinks(
            sink("m.mp3", 10_000),
            sink("s.mp3", 1 << 20),
            RecorderConfig::default(),
        )
        .unwrap();
        let tone = sine(1000.0, 8000, 160, 10000.0);
        let mut errors = 0;
        for _ in 0..250 {
            // 5 s of call: the error comes back once, then the call goes on unrecorded.
            if rec.push_frame(Some(&tone), Some(&tone)).is_err() {
                errors += 1;
            }
        }
        assert_eq!(errors, 1);
        assert!(
            rec.failed().unwrap().contains("os error 28"),
            "{:?}",
            rec.failed()
        );
        let info = rec.finish().expect("described, not an error");
        let why = info.incomplete.expect("marked incomplete");
        assert!(why.contains("No space left on device"), "{why}");
        // What is described is what the files hold: whole hand-overs before the failure.
        assert!(
            (2000..=2500).contains(&info.duration_ms),
            "{}",
            info.duration_ms
        );
        let bytes = std::fs::read(&info.mono_path).unwrap();
        assert_eq!(
            info.size_bytes,
            bytes.len() as u64,
            "the torn write was cut off"
        );
        assert_eq!(info.sha256_hex, hex::encode(Sha256::digest(&bytes)));
        let stereo = std::fs::read(&info.stereo_path).unwrap();
        assert_eq!(info.stereo_size_bytes, stereo.len() as u64);
        // Both files play, and hold the tone up to where they stop.
        let (_, _, pcm) = decode_mp3(&info.mono_path).unwrap();
        let expect = info.duration_ms as usize * 8;
        assert!(
            pcm[0].len().abs_diff(expect) < 1600,
            "{} vs {expect}",
            pcm[0].len()
        );
        assert!(tone_ratio(&pcm[0][2000..12000], 8000, 1000.0) > 0.8);
        let (_, _, spcm) = decode_mp3(&info.stereo_path).unwrap();
        assert!(
            spcm[0].len().abs_diff(expect) < 1600,
            "{} vs {expect}",
            spcm[0].len()
        );
    }

    #[test]
    fn odd_frame_sizes_and_bad_config() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = CallRecorder::create(dir.path().join("odd")).unwrap();
        rec.push_frame(Some(&[1; 10]), Some(&[1; 500])).unwrap();
        rec.push_frame(None, None).unwrap();
        assert_eq!(rec.finish().unwrap().duration_ms, 40);
        let cfg = RecorderConfig {
            mono_kbps: 33,
            ..RecorderConfig::default()
        };
        assert!(CallRecorder::create_with(dir.path().join("bad"), cfg).is_err());
    }
}
