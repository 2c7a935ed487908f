//! Audio analysis helpers shared by tests across the project: Goertzel tone detection, RMS
//! energy and MP3 decoding (pure Rust, via symphonia) so a test can prove that a recording
//! decodes and carries a given tone in a given channel.

use std::path::Path;
use thiserror::Error;

/// Errors from [`decode_mp3`].
#[derive(Debug, Error)]
pub enum AudioError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("mp3 decode: {0}")]
    Decode(String),
    #[error("wav: {0}")]
    Wav(String),
}

/// Write 16-bit PCM WAV with one vector per channel (e.g. a prompt for baresip or sipp peers).
/// Channels of unequal length are padded with silence.
pub fn write_wav(
    path: impl AsRef<Path>,
    sample_rate: u32,
    channels: &[Vec<i16>],
) -> Result<(), AudioError> {
    let n_ch = channels.len().clamp(1, u16::MAX as usize) as u16;
    let spec = hound::WavSpec {
        channels: n_ch,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let wav_err = |e: hound::Error| AudioError::Wav(e.to_string());
    let mut w = hound::WavWriter::create(path, spec).map_err(wav_err)?;
    let len = channels.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..len {
        for c in 0..usize::from(n_ch) {
            let s = channels
                .get(c)
                .and_then(|ch| ch.get(i))
                .copied()
                .unwrap_or(0);
            w.write_sample(s).map_err(wav_err)?;
        }
    }
    w.finalize().map_err(wav_err)
}

/// Read a 16-bit PCM WAV into (channels, sample_rate, per-channel samples).
pub fn read_wav(path: impl AsRef<Path>) -> Result<(usize, u32, Vec<Vec<i16>>), AudioError> {
    let wav_err = |e: hound::Error| AudioError::Wav(e.to_string());
    let mut r = hound::WavReader::open(path).map_err(wav_err)?;
    let spec = r.spec();
    if spec.bits_per_sample != 16 || spec.sample_format != hound::SampleFormat::Int {
        return Err(AudioError::Wav("only 16-bit PCM is supported".into()));
    }
    let ch = usize::from(spec.channels.max(1));
    let mut out = vec![Vec::new(); ch];
    for (i, s) in r.samples::<i16>().enumerate() {
        out[i % ch].push(s.map_err(wav_err)?);
    }
    Ok((ch, spec.sample_rate, out))
}

/// Power of `freq` in `samples` by the Goertzel algorithm, normalised so that a full-scale sine
/// at exactly `freq` gives about 0.5 (its mean square relative to full scale) and silence 0.
/// Comparable to [`mean_square`], so `tone_power / mean_square` is the share of the signal's
/// energy at that frequency.
pub fn tone_power(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let n = samples.len();
    if n == 0 || rate == 0 {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) / 32768.0 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let mag2 = (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0);
    // |X(f)| ~ A*N/2 for a sine of amplitude A, so A^2/2 = 2 * mag2 / N^2.
    2.0 * mag2 / (n as f64 * n as f64)
}

/// Share (0..=1, roughly) of the signal's energy at `freq`; 0 for silence.
pub fn tone_ratio(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let ms = mean_square(samples);
    if ms <= 0.0 {
        return 0.0;
    }
    tone_power(samples, rate, freq) / ms
}

/// Mean square relative to full scale (a full-scale sine is 0.5).
pub fn mean_square(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples
        .iter()
        .map(|&s| (f64::from(s) / 32768.0).powi(2))
        .sum();
    sum / samples.len() as f64
}

/// RMS in sample units (0..=32768).
pub fn rms(samples: &[i16]) -> f64 {
    mean_square(samples).sqrt() * 32768.0
}

/// RMS of consecutive windows of `window` samples (the last partial window is included).
pub fn rms_windows(samples: &[i16], window: usize) -> Vec<f64> {
    samples.chunks(window.max(1)).map(rms).collect()
}

/// Convert an RMS value to dBFS (full-scale sine = -3 dBFS); -inf for silence.
pub fn dbfs(rms_value: f64) -> f64 {
    20.0 * (rms_value / 32768.0).log10()
}

/// Decode an MP3 file into (channels, sample_rate, per-channel samples).
pub fn decode_mp3(path: impl AsRef<Path>) -> Result<(usize, u32, Vec<Vec<i16>>), AudioError> {
    decode_mp3_bytes(std::fs::read(path)?)
}

/// Decode MP3 bytes into (channels, sample_rate, per-channel samples).
pub fn decode_mp3_bytes(bytes: Vec<u8>) -> Result<(usize, u32, Vec<Vec<i16>>), AudioError> {
    use symphonia::core::audio::SampleBuffer;
    use symphonia::core::codecs::DecoderOptions;
    use symphonia::core::errors::Error as SymError;
    use symphonia::core::formats::FormatOptions;
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;
    use symphonia::core::probe::Hint;

    let mss = MediaSourceStream::new(Box::new(std::io::Cursor::new(bytes)), Default::default());
    let mut hint = Hint::new();
    hint.with_extension("mp3");
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            mss,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| AudioError::Decode(e.to_string()))?;
    let mut format = probed.format;
    let track = format
        .default_track()
        .ok_or_else(|| AudioError::Decode("no audio track".into()))?;
    let track_id = track.id;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| AudioError::Decode(e.to_string()))?;
    let mut channels = track.codec_params.channels.map(|c| c.count()).unwrap_or(0);
    let mut rate = track.codec_params.sample_rate.unwrap_or(0);
    let mut out: Vec<Vec<i16>> = vec![Vec::new(); channels];
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => break,
            Err(e) => return Err(AudioError::Decode(e.to_string())),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            // A corrupt frame (e.g. a file cut by a crash) is skipped, as players do.
            Err(SymError::DecodeError(_)) => continue,
            Err(e) => return Err(AudioError::Decode(e.to_string())),
        };
        let spec = *decoded.spec();
        let ch = spec.channels.count();
        if out.len() != ch {
            channels = ch;
            out.resize(ch, Vec::new());
        }
        rate = spec.rate;
        let mut buf = SampleBuffer::<i16>::new(decoded.capacity() as u64, spec);
        buf.copy_interleaved_ref(decoded);
        for frame in buf.samples().chunks_exact(ch) {
            for (c, &s) in frame.iter().enumerate() {
                out[c].push(s);
            }
        }
    }
    Ok((channels, rate, out))
}

/// A sine tone of `amplitude` (sample units) for tests and prompts.
pub fn sine(freq: f64, rate: u32, samples: usize, amplitude: f64) -> Vec<i16> {
    (0..samples)
        .map(|i| {
            let v =
                amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin();
            v.round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goertzel_finds_the_tone() {
        let s = sine(1000.0, 8000, 1600, 16000.0);
        let p = tone_power(&s, 8000, 1000.0);
        let expected = 0.5 * (16000.0f64 / 32768.0).powi(2);
        assert!((p - expected).abs() < expected * 0.05, "{p} vs {expected}");
        assert!(tone_ratio(&s, 8000, 1000.0) > 0.95);
        assert!(tone_ratio(&s, 8000, 1400.0) < 0.01);
        assert_eq!(tone_ratio(&[0; 100], 8000, 1000.0), 0.0);
        assert_eq!(tone_power(&[], 8000, 1000.0), 0.0);
    }

    #[test]
    fn rms_values() {
        let s = sine(440.0, 8000, 8000, 10000.0);
        let r = rms(&s);
        assert!((r - 10000.0 / 2f64.sqrt()).abs() < 20.0, "{r}");
        let w = rms_windows(&[0, 0, 100, -100, 5], 2);
        assert_eq!(w, vec![0.0, 100.0, 5.0]);
        assert!((dbfs(32768.0) - 0.0).abs() < 1e-9);
        assert_eq!(rms(&[]), 0.0);
    }

    #[test]
    fn wav_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.wav");
        let left = sine(1000.0, 8000, 800, 9000.0);
        write_wav(&path, 8000, &[left.clone(), vec![7; 400]]).unwrap();
        let (ch, rate, pcm) = read_wav(&path).unwrap();
        assert_eq!((ch, rate), (2, 8000));
        assert_eq!(pcm[0], left);
        assert_eq!(&pcm[1][..400], &[7; 400][..]);
        assert_eq!(&pcm[1][400..], &[0; 400][..]);
        assert!(read_wav(dir.path().join("missing.wav")).is_err());
    }

    #[test]
    fn decode_garbage_is_an_error() {
        assert!(decode_mp3_bytes(vec![1, 2, 3, 4]).is_err());
        assert!(decode_mp3_bytes(Vec::new()).is_err());
        assert!(decode_mp3("/nonexistent/file.mp3").is_err());
    }
}
