//! Answering-machine detection (AMD) for outbound calls, without IO: fed the callee's audio
//! after answer (20 ms frames of 8 kHz samples, each with the VAD's speech probability), and
//! optionally the first words' transcript and an LLM's judgement of them, it decides who
//! answered: [`AnsweredBy`] `human`, `machine_start`, `machine_end_beep`,
//! `machine_end_silence`, `fax` or `unknown`, with a confidence and the decision time. After a
//! `machine_start` verdict it keeps listening and reports when the greeting is over (the beep,
//! or silence), which is when a voicemail message may be spoken.
//!
//! The signals a phone line gives:
//! - **Cadence** (from the VAD): a live person says something short ("Hello?") and waits for an
//!   answer; a machine plays a greeting of several seconds with only sentence-length pauses.
//!   A pause of [`AmdConfig::short_wait`] after a short utterance, or [`AmdConfig::long_wait`]
//!   after a longer one, is a person waiting: `human`. Speech running on for
//!   [`AmdConfig::machine_speech`] is a greeting: `machine_start` at its next pause
//!   ([`AmdConfig::machine_pause`], when the transcript so far can still show a person's long
//!   answer: a question or a person's phrase) or at [`AmdConfig::machine_speech_max`]. A
//!   person who waited and speaks again ("Hello?") is a person.
//! - **Tones** ([`ToneDetector`]): a steady tone between 400 and 2100 Hz held 150 ms or more is
//!   a beep (`machine_end_beep` once it stops; found against the line's learned noise floor,
//!   so a quiet beep under noise counts); fax calling tone CNG (1100 Hz, 0.5 s on, 3 s off,
//!   ITU-T T.30 §5.2) twice, or answer tone CED (2100 Hz, ITU-T T.30 §5.2 / V.25) held 1 s, is a
//!   `fax`.
//! - **Words** ([`Detector::on_transcript`]): phrases that only voicemail greetings use ("after
//!   the tone", "record your message", "voicemail", "mailbox", ...) make a longer utterance a
//!   greeting; so does "leave a message" told to the caller, not asked or offered. Against a
//!   *short* utterance followed by silence they decide nothing on their own: the detector
//!   waits longer for a beep, more greeting or the LLM, and otherwise says `unknown`.
//!   Ambiguous phrases ("not available", "you've reached") only count with others;
//!   phrases a live person uses ("who's calling", "can I take a message") count against.
//! - **The LLM** ([`Detector::on_llm`], messages from [`llm_messages`], answer parsed by
//!   [`parse_llm_answer`]): an async judgement by the caller of this module; a confident
//!   "machine" decides a longer utterance or a deferred short one, a confident "human" decides
//!   a pause.
//!
//! Everything works without a transcript or an LLM (cadence and tones alone); they make short
//! greetings that end without a beep recognisable. Figures on generated greetings are in
//! BENCHMARKS.md ("Answering-machine detection").

use std::sync::Arc;
use std::time::Duration;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Sample rate of the audio the detector is fed.
pub const SAMPLE_RATE: u32 = 8000;
/// Samples in one 20 ms frame.
pub const FRAME_SAMPLES: usize = 160;

/// Who answered the call (the `answered_by` field of a call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnsweredBy {
    Human,
    /// A machine's greeting is playing (its end is reported later).
    MachineStart,
    /// A machine's greeting ended with a beep: the recording has started.
    MachineEndBeep,
    /// A machine's greeting ended in silence without a beep: the recording has (probably)
    /// started.
    MachineEndSilence,
    Fax,
    Unknown,
}

impl AnsweredBy {
    /// The string stored on the call (`"machine_end_beep"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AnsweredBy::Human => "human",
            AnsweredBy::MachineStart => "machine_start",
            AnsweredBy::MachineEndBeep => "machine_end_beep",
            AnsweredBy::MachineEndSilence => "machine_end_silence",
            AnsweredBy::Fax => "fax",
            AnsweredBy::Unknown => "unknown",
        }
    }

    /// Any of the three machine values.
    pub fn is_machine(self) -> bool {
        matches!(
            self,
            AnsweredBy::MachineStart | AnsweredBy::MachineEndBeep | AnsweredBy::MachineEndSilence
        )
    }

    /// A machine whose greeting is over: a voicemail message may be spoken now.
    pub fn greeting_over(self) -> bool {
        matches!(
            self,
            AnsweredBy::MachineEndBeep | AnsweredBy::MachineEndSilence
        )
    }
}

impl std::fmt::Display for AnsweredBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decision of the detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub answered_by: AnsweredBy,
    /// 0..1.
    pub confidence: f32,
    /// Milliseconds from answer to the decision.
    pub decision_ms: u64,
    /// Why, in a few words (for logs and the call's diagnostics).
    pub reason: String,
}

/// What [`Detector`] reports, at most once each.
#[derive(Debug, Clone, PartialEq)]
pub enum AmdEvent {
    /// The decision. `machine_end_beep` here (a beep before any other decision) means the
    /// greeting is already over.
    Decided(Verdict),
    /// After a `machine_start` decision: the greeting ended (`machine_end_beep` or
    /// `machine_end_silence`); a voicemail message may be spoken now.
    GreetingEnded(Verdict),
}

impl AmdEvent {
    pub fn verdict(&self) -> &Verdict {
        match self {
            AmdEvent::Decided(v) | AmdEvent::GreetingEnded(v) => v,
        }
    }
}

/// The whole outcome, to store on the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AmdResult {
    /// The latest value: `machine_end_*` replaces `machine_start` once the greeting has ended.
    pub answered_by: AnsweredBy,
    pub confidence: f32,
    /// Milliseconds from answer to the first decision.
    pub decision_ms: u64,
    /// Milliseconds from answer to the end of a machine's greeting (the beep's end, or the
    /// moment the silence after it was long enough).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_end_ms: Option<u64>,
    /// Frequency of the beep that ended the greeting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beep_hz: Option<f32>,
    /// The first decision (e.g. `machine_start` with its own confidence and reason).
    pub decision: Verdict,
    /// The greeting-end event, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub greeting_end: Option<Verdict>,
    /// The transcript the detector was given, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
    /// The LLM's judgement, if one arrived before the decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmJudgement>,
}

/// Thresholds of the detector (defaults tuned on the generated fixtures, see BENCHMARKS.md).
#[derive(Debug, Clone)]
pub struct AmdConfig {
    /// VAD probability at or above which a frame is voiced.
    pub vad_threshold: f32,
    /// Voiced frames in a row that start speech.
    pub speech_start_frames: u32,
    /// Utterances up to this long are "short" (a greeting like "Hello?" or "Hi, this is Sam").
    pub short_speech: Duration,
    /// Silence after a short utterance that makes it a person waiting for an answer.
    pub short_wait: Duration,
    /// Silence after a longer utterance that makes it a person waiting for an answer (machine
    /// greetings pause between sentences, about 0.3-0.7 s).
    pub long_wait: Duration,
    /// Speech (first onset to last voiced frame, pauses shorter than the waits included) that
    /// makes it a machine's greeting, once it pauses for [`AmdConfig::machine_pause`] or runs
    /// on to [`AmdConfig::machine_speech_max`], unless its words are a person's.
    pub machine_speech: Duration,
    /// After [`AmdConfig::machine_speech`]: the pause that decides `machine_start` (the first
    /// words' transcript arrives in it: a person's long answer ends in a question or a
    /// person's phrase, "... who is calling, please?").
    pub machine_pause: Duration,
    /// Speech this long decides `machine_start` without waiting for a pause.
    pub machine_speech_max: Duration,
    /// Whether the callee's words will follow the audio ([`Detector::on_transcript`]: the
    /// call's STT is running, as in screening). Without words there is nothing to wait for
    /// in the pause after a long monologue: `machine_start` at [`AmdConfig::machine_speech`].
    pub transcribed: bool,
    /// Shortest utterance that voicemail phrases (or a confident LLM) can make a greeting.
    pub keyword_speech: Duration,
    /// After a short utterance with voicemail phrases: silence waited for a beep, more
    /// greeting or the LLM before answering `unknown`.
    pub deferred_wait: Duration,
    /// Silence after a machine's greeting that ends it when no beep came.
    pub end_silence: Duration,
    /// No speech at all for this long after answer: `unknown`.
    pub no_speech: Duration,
    /// LLM confidence needed for its "machine".
    pub llm_machine_confidence: f32,
    /// LLM confidence needed for its "human".
    pub llm_human_confidence: f32,
}

impl Default for AmdConfig {
    fn default() -> Self {
        AmdConfig {
            vad_threshold: 0.5,
            speech_start_frames: 3,
            short_speech: Duration::from_millis(1500),
            short_wait: Duration::from_millis(750),
            long_wait: Duration::from_millis(1100),
            machine_speech: Duration::from_millis(5000),
            machine_pause: Duration::from_millis(500),
            machine_speech_max: Duration::from_millis(6500),
            transcribed: true,
            keyword_speech: Duration::from_millis(1500),
            deferred_wait: Duration::from_millis(3000),
            end_silence: Duration::from_millis(2000),
            no_speech: Duration::from_millis(5000),
            llm_machine_confidence: 0.75,
            llm_human_confidence: 0.6,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tones
// ---------------------------------------------------------------------------------------------

/// Samples analysed per frame: the current frame and the previous one (40 ms: 25 Hz
/// resolution with the Hann window's main lobe of ±50 Hz).
const TONE_WINDOW: usize = 2 * FRAME_SAMPLES;
/// FFT size (zero-padded): 15.6 Hz bins, for the peak's frequency and its lobe.
const TONE_FFT: usize = 512;
const BIN_HZ: f32 = SAMPLE_RATE as f32 / TONE_FFT as f32;
/// Beeps are looked for between these frequencies (Hz).
const BEEP_MIN_HZ: f32 = 380.0;
const BEEP_MAX_HZ: f32 = 2150.0;
/// Bins either side of the peak counted as the tone (±62 Hz: the main lobe).
const LOBE_BINS: usize = 4;
/// Share of the frame's power (100-3900 Hz) that must be in the peak's lobe.
const TONE_PURITY: f32 = 0.7;
/// Tone level below which nothing is a tone (dBFS of the lobe's power): -50 dBFS.
const TONE_MIN_POWER: f32 = 1e-5;
/// Shortest tone reported (the issue's 150 ms; see [`ToneDetector`] for the 20 ms slack).
const TONE_MIN_HELD_MS: u64 = 140;
/// Against a learned noise floor, a tone must add at least this share of the noise's power to
/// the frame (-6 dB): the band's power sums ~150 independent bins, so noise alone varies by
/// about 10 % and rarely crosses it in one frame, let alone in 7 at one frequency (unit tests
/// `weak_beeps_stand_out_of_a_learned_noise_floor`, `speech_in_noise_has_no_beeps`).
const TONE_MIN_EXCESS: f32 = 0.25;
/// ... and stand this far above the noise in its own lobe (6 dB).
const TONE_MIN_LOBE_SNR: f32 = 4.0;
/// Weight of a new frame in the noise floor (an average over ~0.4 s of noise).
const NOISE_ALPHA: f32 = 0.05;

/// A steady tone that was held long enough.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tone {
    /// Mean frequency (Hz).
    pub hz: f32,
    /// Milliseconds from answer to the first and past the last frame carrying it.
    pub start_ms: u64,
    pub end_ms: u64,
}

impl Tone {
    pub fn held_ms(&self) -> u64 {
        self.end_ms.saturating_sub(self.start_ms)
    }
}

#[derive(Debug, Clone, Copy)]
struct ToneRun {
    /// Time at the end of the first tonal window.
    first_ms: u64,
    /// Time at the end of the last tonal window.
    last_ms: u64,
    windows: u32,
    hz_sum: f32,
    /// Frequency the run is anchored to (mean of its first windows).
    anchor_hz: f32,
    /// Non-tonal windows in a row inside the run (one is tolerated).
    misses: u32,
}

impl ToneRun {
    fn hz(&self) -> f32 {
        self.hz_sum / self.windows as f32
    }
    /// The tone's span: a window is 40 ms, so the first tonal window ends about 20 ms into the
    /// tone and the last one about 20 ms after it.
    fn held_ms(&self) -> u64 {
        self.last_ms.saturating_sub(self.first_ms)
    }
    fn tone(&self) -> Tone {
        Tone {
            hz: self.hz(),
            start_ms: self.first_ms.saturating_sub(FRAME_MS),
            end_ms: self.last_ms.saturating_sub(FRAME_MS),
        }
    }
}

const FRAME_MS: u64 = 20;

/// A single steady tone (a voicemail beep, a fax tone) in 20 ms frames.
///
/// Each frame, the last 40 ms (Hann window, zero-padded FFT of 512 points) is searched for its
/// strongest peak between 380 and 2150 Hz; the frame is tonal if that peak's main lobe holds at
/// least 70 % of the power between 100 and 3900 Hz (speech spreads its power over many
/// harmonics and formants; broadband noise over the whole band). Tonal frames whose frequency
/// stays within ±2 % (at least ±20 Hz) of the run's start form a run; one odd frame is
/// tolerated. A run of at least 140 ms of windows (a 150 ms tone gives 140-160 ms, a 100 ms one
/// at most 120 ms) is reported as a [`Tone`] when it stops, and [`ToneDetector::holding`] tells
/// what is held meanwhile.
pub struct ToneDetector {
    fft: Arc<dyn Fft<f32>>,
    hann: Vec<f32>,
    /// The last [`TONE_WINDOW`] samples.
    history: Vec<f32>,
    buf: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    run: Option<ToneRun>,
    last_tonal: Option<(f32, f32)>,
    /// Power per bin of the last window, 100-3900 Hz.
    spec: Vec<f32>,
    /// The line's stationary noise per bin (same bins), learned from frames without speech or
    /// tone; `None` until the first such frame.
    noise: Option<Vec<f32>>,
    /// Frames pushed so far.
    windows: u32,
}

impl std::fmt::Debug for ToneDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToneDetector")
            .field("run", &self.run)
            .finish_non_exhaustive()
    }
}

impl Default for ToneDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl ToneDetector {
    pub fn new() -> ToneDetector {
        let fft = FftPlanner::new().plan_fft_forward(TONE_FFT);
        let scratch = vec![Complex::default(); fft.get_inplace_scratch_len()];
        let hann = (0..TONE_WINDOW)
            .map(|i| {
                let x = std::f32::consts::PI * 2.0 * i as f32 / TONE_WINDOW as f32;
                0.5 - 0.5 * x.cos()
            })
            .collect();
        ToneDetector {
            fft,
            hann,
            history: vec![0.0; TONE_WINDOW],
            buf: vec![Complex::default(); TONE_FFT],
            scratch,
            run: None,
            last_tonal: None,
            spec: Vec::new(),
            noise: None,
            windows: 0,
        }
    }

    /// Feed one 20 ms frame ending at `now_ms` (ms since answer). Returns a tone that was held
    /// at least 140 ms and has just stopped.
    pub fn push(&mut self, now_ms: u64, frame: &[i16]) -> Option<Tone> {
        self.push_with_vad(now_ms, frame, None)
    }

    /// [`ToneDetector::push`] with the frame's VAD speech probability, when known: frames the
    /// VAD calls speech never teach the noise floor.
    pub fn push_with_vad(&mut self, now_ms: u64, frame: &[i16], vad: Option<f32>) -> Option<Tone> {
        let n = frame.len().min(TONE_WINDOW);
        self.history.drain(..n);
        self.history.extend(
            frame[frame.len() - n..]
                .iter()
                .map(|&s| f32::from(s) / 32768.0),
        );
        let tonal = self.analyse();
        self.last_tonal = tonal;
        // The first window is half the zeros the history starts with: not the line's level.
        self.windows = self.windows.saturating_add(1);
        if self.windows >= 2 && tonal.is_none() && self.run.is_none() && vad.is_none_or(|p| p < 0.3)
        {
            self.learn_noise();
        }
        let mut ended = None;
        match (self.run.take(), tonal) {
            (Some(mut run), Some((hz, _)))
                if (hz - run.anchor_hz).abs() <= hz_tolerance(run.anchor_hz) =>
            {
                run.last_ms = now_ms;
                run.windows += 1;
                run.hz_sum += hz;
                run.misses = 0;
                if run.windows <= 3 {
                    run.anchor_hz = run.hz();
                }
                self.run = Some(run);
            }
            (Some(mut run), None) if run.misses == 0 => {
                // One odd window (a click, a burst of noise) does not end a tone.
                run.misses = 1;
                self.run = Some(run);
            }
            (Some(run), _) => {
                if run.held_ms() >= TONE_MIN_HELD_MS {
                    ended = Some(run.tone());
                }
                if let Some((hz, _)) = tonal {
                    self.run = Some(ToneRun::start(now_ms, hz));
                }
            }
            (None, Some((hz, _))) => self.run = Some(ToneRun::start(now_ms, hz)),
            (None, None) => {}
        }
        ended
    }

    /// The tone being held now, if it has been held at least 140 ms.
    pub fn holding(&self) -> Option<Tone> {
        self.run
            .filter(|r| r.misses == 0 && r.held_ms() >= TONE_MIN_HELD_MS)
            .map(|r| r.tone())
    }

    /// Whether the last frame was tonal (a beep is not speech).
    pub fn frame_is_tonal(&self) -> bool {
        self.last_tonal.is_some()
    }

    /// The strongest peak of the window in the beep range if it is a pure tone: (Hz, purity).
    ///
    /// Purity is the peak lobe's share of the window's power once the line's stationary noise
    /// (learned per bin, [`ToneDetector::learn_noise`]) is taken away from both: a beep 3-12 dB
    /// under the greeting in noise 10 dB under it can be weaker than the noise over the whole
    /// band, yet it stands far above the noise in its own ±62 Hz (spectral subtraction, as in
    /// noise-robust tone detectors). Without a learned floor (clean lines, the first frames)
    /// this is the plain share of the power.
    fn analyse(&mut self) -> Option<(f32, f32)> {
        for (i, c) in self.buf.iter_mut().enumerate() {
            *c = match self.history.get(i) {
                Some(&s) => Complex::new(s * self.hann[i], 0.0),
                None => Complex::default(),
            };
        }
        self.fft
            .process_with_scratch(&mut self.buf, &mut self.scratch);
        let lo = (100.0 / BIN_HZ) as usize;
        let hi = (3900.0 / BIN_HZ) as usize;
        self.spec.clear();
        self.spec.extend((lo..=hi).map(|k| self.buf[k].norm_sqr()));
        let power = |k: usize| self.spec[k - lo];
        let floor = |k: usize| self.noise.as_ref().map_or(0.0, |n| n[k - lo]);
        let total: f32 = self.spec.iter().sum();
        let noise_total: f32 = self.noise.as_ref().map_or(0.0, |n| n.iter().sum());
        let (k_lo, k_hi) = (
            (BEEP_MIN_HZ / BIN_HZ).ceil() as usize,
            (BEEP_MAX_HZ / BIN_HZ) as usize,
        );
        // The strongest peak above the noise (a coloured noise's loud low bins are not peaks).
        let (k, _) = (k_lo..=k_hi)
            .map(|k| (k, power(k) - floor(k)))
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        let lobe: f32 = (k - LOBE_BINS..=k + LOBE_BINS).map(power).sum();
        let lobe_noise: f32 = (k - LOBE_BINS..=k + LOBE_BINS).map(floor).sum();
        let lobe_excess = lobe - lobe_noise;
        let excess = total - noise_total;
        // Window gain: a full-scale sine gives (N/4)^2 in its peak bin with a Hann window.
        let norm = (TONE_WINDOW as f32 / 4.0).powi(2);
        if total <= 0.0
            || excess <= TONE_MIN_EXCESS * noise_total
            || lobe_excess <= TONE_MIN_LOBE_SNR * lobe_noise
            || lobe_excess / norm < TONE_MIN_POWER
            || lobe_excess < TONE_PURITY * excess
        {
            return None;
        }
        // Parabolic interpolation of the peak on log power.
        let (a, b, c) = (
            power(k - 1).max(1e-20).ln(),
            power(k).max(1e-20).ln(),
            power(k + 1).max(1e-20).ln(),
        );
        let denom = a - 2.0 * b + c;
        let delta = if denom.abs() > 1e-12 {
            (0.5 * (a - c) / denom).clamp(-0.5, 0.5)
        } else {
            0.0
        };
        Some(((k as f32 + delta) * BIN_HZ, (lobe_excess / excess).min(1.0)))
    }

    /// Learn the line's noise from the last window (no tone, no speech): a running average per
    /// bin, which follows a quieter line quickly (a burst of speech the VAD missed, or the
    /// silence after a greeting) and windows much louder than the floor (speech, a tone too
    /// weak to be called one) only very slowly (a line that got noisier: ~4 s), so a beep is
    /// never learned as noise.
    fn learn_noise(&mut self) {
        let total: f32 = self.spec.iter().sum();
        // Below this (about -75 dBFS over the band) the line is digital silence: nothing
        // learned yet, whatever comes next is taken as it is.
        let silent = 1e-8 * (TONE_WINDOW as f32 / 4.0).powi(2);
        match &mut self.noise {
            Some(noise) if noise.iter().sum::<f32>() > silent => {
                let noise_total: f32 = noise.iter().sum();
                let alpha = if total < noise_total {
                    4.0 * NOISE_ALPHA
                } else if total > 2.0 * noise_total {
                    NOISE_ALPHA / 10.0
                } else {
                    NOISE_ALPHA
                };
                for (n, &p) in noise.iter_mut().zip(&self.spec) {
                    *n += alpha * (p - *n);
                }
            }
            _ => self.noise = Some(self.spec.clone()),
        }
    }
}

impl ToneRun {
    fn start(now_ms: u64, hz: f32) -> ToneRun {
        ToneRun {
            first_ms: now_ms,
            last_ms: now_ms,
            windows: 1,
            hz_sum: hz,
            anchor_hz: hz,
            misses: 0,
        }
    }
}

fn hz_tolerance(hz: f32) -> f32 {
    (hz * 0.02).max(20.0)
}

/// Fax calling tone (CNG): 1100 Hz ±38 Hz, 0.5 s on (ITU-T T.30 §5.2.1).
fn is_cng(t: &Tone) -> bool {
    (t.hz - 1100.0).abs() <= 40.0 && (350..=800).contains(&t.held_ms())
}

/// Fax answer tone (CED): 2100 Hz ±15 Hz for 2.6-4 s (ITU-T T.30 §5.2.2); accepted at ±40 Hz.
fn is_ced(hz: f32) -> bool {
    (hz - 2100.0).abs() <= 40.0
}

/// CED held this long is a fax (beeps are shorter).
const CED_HELD_MS: u64 = 1200;
/// After a first CNG burst, the next one is due 3 s after it ends (T.30: 3 s ±15 % off).
const CNG_NEXT_WITHIN_MS: u64 = 4000;

// ---------------------------------------------------------------------------------------------
// Words
// ---------------------------------------------------------------------------------------------

/// Phrases that only voicemail greetings use (+2 each).
const STRONG_PHRASES: &[&str] = &[
    "after the tone",
    "after the beep",
    "at the tone",
    "at the beep",
    "record your message",
    "voicemail",
    "voice mail",
    "mailbox",
    "voice message",
    "leave your name",
    "leave a message after",
    // "leave a message" itself counts by its sentence, see `leave_a_message_score`.
    "leave me a message",
    "leave a brief message",
    "leave your message",
    "can't come to the phone",
    "cannot come to the phone",
    "unable to take your call",
    "can't take your call",
    "cannot take your call",
    "not available to take your call",
    "get back to you",
    "return your call",
    "call you back as soon",
    "finished recording",
    "press pound",
    "the person you are calling",
    "the number you have dialed",
    "the subscriber",
    "is not available at the tone",
    "you know what to do",
];

/// Phrases greetings use but a live person may say too (+1 each).
const WEAK_PHRASES: &[&str] = &[
    "not available",
    "you've reached",
    "you have reached",
    "not here right now",
    "not home",
    "away from",
    "sorry i missed",
    "sorry we missed",
    "office is closed",
    "office is currently closed",
    "business hours",
    "please leave",
];

/// Phrases of a live person speaking to the caller (-2 each).
const HUMAN_PHRASES: &[&str] = &[
    "who's calling",
    "who is calling",
    "who is this",
    "who's this",
    "can i take a message",
    "take a message",
    "how can i help",
    "how may i help",
    "can i help",
    "what can i do for you",
    "speaking",
    "what's up",
    "who am i speaking",
];

/// Words that make "leave a message" an offer a person makes ("do you want to leave a
/// message?", "you can leave a message with me") rather than a greeting's instruction.
const OFFER_WORDS: &[&str] = &[
    "do you",
    "would you",
    "want to",
    "like to",
    "you can",
    "you could",
    "can i",
    "with me",
];

/// Lower case, apostrophes unified, everything but letters, digits and apostrophes a single
/// space, with a space at each end (so phrases match whole words).
fn normalise(text: &str) -> String {
    let t: String = text
        .to_lowercase()
        .replace(['’', '`'], "'")
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect();
    format!(" {} ", t.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// "Leave a message" by sentence: told to the caller as a statement ("Leave a message.",
/// "Please leave a message.") it is what a recorder says, +2; asked or offered ("Do you want
/// to leave a message?", "You can leave a message with me.") it is a person waiting for the
/// answer, 0. Sentences end at `.`, `!` or `?` as a punctuating STT writes them.
fn leave_a_message_score(text: &str) -> i32 {
    let mut score = 0;
    let mut rest = text;
    while !rest.trim().is_empty() {
        let end = rest.find(['.', '!', '?']).map_or(rest.len(), |i| i + 1);
        let (sentence, tail) = rest.split_at(end);
        rest = tail;
        let t = normalise(sentence);
        if !t.contains(" leave a message ") {
            continue;
        }
        let asked = sentence.trim_end().ends_with('?');
        let offered = OFFER_WORDS.iter().any(|w| t.contains(&format!(" {w} ")));
        if !asked && !offered {
            score += 2;
        }
    }
    score
}

/// Keyword score of a transcript: > 0 for greeting phrases, < 0 for a person's phrases.
pub fn keyword_score(text: &str) -> i32 {
    let t = normalise(text);
    let has = |p: &str| t.contains(&format!(" {p} "));
    let strong = STRONG_PHRASES.iter().filter(|p| has(p)).count() as i32;
    let weak = WEAK_PHRASES.iter().filter(|p| has(p)).count() as i32;
    let human = HUMAN_PHRASES.iter().filter(|p| has(p)).count() as i32;
    2 * strong + weak - 2 * human + leave_a_message_score(text)
}

/// Score at or above which a transcript sounds like a greeting.
const KEYWORD_MACHINE: i32 = 2;

// ---------------------------------------------------------------------------------------------
// LLM judgement
// ---------------------------------------------------------------------------------------------

/// The LLM's side of the judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LlmAnswer {
    Human,
    Machine,
}

/// "The LLM says human/machine with this confidence".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LlmJudgement {
    pub answered_by: LlmAnswer,
    pub confidence: f32,
}

/// Chat messages (OpenAI chat format) asking whether `transcript`, the first words heard after
/// an outbound call was answered, are a voicemail greeting or a live person. `speech_ms` is how
/// long they lasted, when known. The model is asked for
/// `{"answered_by":"human"|"machine","confidence":0..1}` (parse with [`parse_llm_answer`]).
pub fn llm_messages(transcript: &str, speech_ms: Option<u64>) -> Vec<Value> {
    let system = "You classify the start of outbound phone calls. You are given the transcript \
of the first words heard after the callee picked up. Decide whether they are the greeting of a \
voicemail system or answering machine (a recorded message: \"you've reached...\", \"leave a \
message after the tone\", \"the person you are calling is not available\", a carrier's \
voicemail announcement) or a live person answering (\"Hello?\", \"Hi, this is Sam\", or \
someone answering for another person: \"he's not available right now, can I take a message?\", \
\"she's out, who's calling?\"). A live person speaks briefly and then waits for the caller; \
questions to the caller point to a person. Transcripts come from speech recognition and may \
contain errors. Answer with JSON only, no prose: \
{\"answered_by\": \"human\" or \"machine\", \"confidence\": a number from 0 to 1}.";
    let mut user = format!("Transcript: \"{}\"", transcript.trim());
    if let Some(ms) = speech_ms {
        user.push_str(&format!("\nThe speech lasted {:.1} s.", ms as f64 / 1000.0));
    }
    vec![
        json!({"role": "system", "content": system}),
        json!({"role": "user", "content": user}),
    ]
}

/// Why an LLM answer could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmAnswerError {
    #[error("no JSON object in the answer")]
    NoJson,
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("missing or unknown answered_by")]
    AnsweredBy,
    #[error("missing or invalid confidence")]
    Confidence,
}

/// Parse the model's answer to [`llm_messages`]: a JSON object, possibly inside a Markdown
/// code fence or with prose around it. `answered_by` may also be "voicemail" or
/// "answering_machine" (machine) or "person"/"live_person" (human); `confidence` a number or a
/// numeric string, 0..1 (a percentage 1..100 is scaled), and is clamped to 0..1.
pub fn parse_llm_answer(text: &str) -> Result<LlmJudgement, LlmAnswerError> {
    let start = text.find('{').ok_or(LlmAnswerError::NoJson)?;
    let end = text.rfind('}').ok_or(LlmAnswerError::NoJson)?;
    if end < start {
        return Err(LlmAnswerError::NoJson);
    }
    let v: Value = serde_json::from_str(&text[start..=end])
        .map_err(|e| LlmAnswerError::Json(e.to_string()))?;
    let who = v
        .get("answered_by")
        .and_then(Value::as_str)
        .map(|s| s.trim().to_lowercase().replace([' ', '-'], "_"))
        .ok_or(LlmAnswerError::AnsweredBy)?;
    let answered_by = match who.as_str() {
        "human" | "person" | "live_person" | "live" => LlmAnswer::Human,
        "machine" | "voicemail" | "answering_machine" | "machine_start" | "voice_mail" => {
            LlmAnswer::Machine
        }
        _ => return Err(LlmAnswerError::AnsweredBy),
    };
    let confidence = match v.get("confidence") {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().trim_end_matches('%').trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|c| c.is_finite() && *c >= 0.0)
    .ok_or(LlmAnswerError::Confidence)?;
    let confidence = if confidence > 1.0 && confidence <= 100.0 {
        confidence / 100.0
    } else {
        confidence.min(1.0)
    };
    Ok(LlmJudgement {
        answered_by,
        confidence: confidence as f32,
    })
}

// ---------------------------------------------------------------------------------------------
// The detector
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// No decision yet.
    Listening,
    /// A short utterance with voicemail phrases was followed by silence: waiting (until
    /// `deferred_wait` of silence) for a beep, more greeting or the LLM.
    Deferred,
    /// `machine_start` given: waiting for the beep or the silence that ends the greeting.
    GreetingPlaying,
    Done,
}

/// The detector for one call. Feed it every frame from answer with [`Detector::push_frame`];
/// it returns each [`AmdEvent`] once.
#[derive(Debug)]
pub struct Detector {
    config: AmdConfig,
    tones: ToneDetector,
    phase: Phase,
    now_ms: u64,
    voiced_run: u32,
    /// First speech onset (ms since answer, start of its first voiced frame).
    onset_ms: Option<u64>,
    /// End of the last voiced frame after the onset.
    last_voiced_ms: u64,
    /// End of the last frame carrying a tone (the beep is not silence either).
    last_tone_ms: u64,
    cng_bursts: u32,
    last_cng_end_ms: Option<u64>,
    transcript: Option<String>,
    keywords: i32,
    /// The transcript so far ends with a question (a person waiting for the answer).
    asked: bool,
    llm: Option<LlmJudgement>,
    decision: Option<Verdict>,
    greeting_end: Option<Verdict>,
    beep_hz: Option<f32>,
}

impl Detector {
    pub fn new(config: AmdConfig) -> Detector {
        Detector {
            config,
            tones: ToneDetector::new(),
            phase: Phase::Listening,
            now_ms: 0,
            voiced_run: 0,
            onset_ms: None,
            last_voiced_ms: 0,
            last_tone_ms: 0,
            cng_bursts: 0,
            last_cng_end_ms: None,
            transcript: None,
            keywords: 0,
            asked: false,
            llm: None,
            decision: None,
            greeting_end: None,
            beep_hz: None,
        }
    }

    /// Whether the detector still wants audio (false once decided and, for a machine, its
    /// greeting has ended).
    pub fn is_listening(&self) -> bool {
        self.phase != Phase::Done
    }

    /// Whether a transcript or an LLM judgement can still change anything (before the
    /// decision, or while a deferred short utterance waits).
    pub fn wants_judgement(&self) -> bool {
        matches!(self.phase, Phase::Listening | Phase::Deferred)
    }

    /// The first decision, once made.
    pub fn decision(&self) -> Option<&Verdict> {
        self.decision.as_ref()
    }

    /// The outcome to store on the call (`None` before any decision).
    pub fn result(&self) -> Option<AmdResult> {
        let decision = self.decision.clone()?;
        let latest = self.greeting_end.as_ref().unwrap_or(&decision);
        Some(AmdResult {
            answered_by: latest.answered_by,
            confidence: latest.confidence,
            decision_ms: decision.decision_ms,
            machine_end_ms: self
                .greeting_end
                .as_ref()
                .map(|v| v.decision_ms)
                .or_else(|| {
                    decision
                        .answered_by
                        .greeting_over()
                        .then_some(decision.decision_ms)
                }),
            beep_hz: self.beep_hz,
            decision,
            greeting_end: self.greeting_end.clone(),
            transcript: self.transcript.clone(),
            llm: self.llm,
        })
    }

    /// Speech heard so far: first onset to the last voiced frame (ms).
    fn speech_ms(&self) -> u64 {
        self.onset_ms
            .map_or(0, |o| self.last_voiced_ms.saturating_sub(o))
    }

    /// Time since the last voiced (or tonal) frame.
    fn silence_ms(&self) -> u64 {
        self.now_ms
            .saturating_sub(self.last_voiced_ms.max(self.last_tone_ms))
    }

    /// One frame of the callee's audio (`samples`: 8 kHz, normally 160 of them) with its VAD
    /// speech probability; `now` is the time since answer at the end of the frame (the audio
    /// clock: frames × 20 ms gives exact decision times).
    pub fn push_frame(&mut self, now: Duration, samples: &[i16], vad: f32) -> Option<AmdEvent> {
        if self.phase == Phase::Done {
            return None;
        }
        let now_ms = now.as_millis() as u64;
        self.now_ms = now_ms;
        let frame_ms = (samples.len() as u64 * 1000 / u64::from(SAMPLE_RATE)).max(1);

        let ended = self.tones.push_with_vad(now_ms, samples, Some(vad));
        let tonal = self.tones.frame_is_tonal();
        if tonal {
            self.last_tone_ms = now_ms;
        }
        // Speech: voiced frames that are not a tone.
        if vad >= self.config.vad_threshold && !tonal {
            self.voiced_run += 1;
            if self.voiced_run >= self.config.speech_start_frames {
                if self.onset_ms.is_none() {
                    let onset = now_ms.saturating_sub(u64::from(self.voiced_run) * frame_ms);
                    self.onset_ms = Some(onset);
                    self.cng_bursts = 0;
                    self.last_cng_end_ms = None;
                }
                if self.phase == Phase::Deferred {
                    let onset = now_ms.saturating_sub(u64::from(self.voiced_run) * frame_ms);
                    let pause = onset.saturating_sub(self.last_voiced_ms);
                    if pause >= self.config.long_wait.as_millis() as u64 {
                        // Speaking again after waiting longer than a greeting ever pauses
                        // between its sentences: a person asking again ("Hello?"), not more
                        // greeting (a recorder plays on, or records in silence).
                        self.last_voiced_ms = now_ms;
                        return self.decide(
                            AnsweredBy::Human,
                            0.75,
                            &format!("spoke again after {:.1} s of silence", pause as f64 / 1e3),
                        );
                    }
                    // More greeting after a sentence's pause: back to listening (its length
                    // counts).
                    self.phase = Phase::Listening;
                }
                self.last_voiced_ms = now_ms;
            } else if self.onset_ms.is_some()
                && self.voiced_run >= 2
                && self.phase != Phase::Deferred
            {
                // Inside speech, two voiced frames are enough to keep it going (after the
                // wait of a deferred utterance, new speech starts as speech does).
                self.last_voiced_ms = now_ms;
            }
        } else {
            self.voiced_run = 0;
        }

        if let Some(tone) = ended {
            if let Some(ev) = self.on_tone(tone) {
                return Some(ev);
            }
        }
        if let Some(t) = self.tones.holding() {
            if is_ced(t.hz) && t.held_ms() >= CED_HELD_MS && self.onset_ms.is_none() {
                return self.decide(AnsweredBy::Fax, 0.95, "fax answer tone (CED, 2100 Hz)");
            }
        }
        self.check_timers()
    }

    fn on_tone(&mut self, tone: Tone) -> Option<AmdEvent> {
        match self.phase {
            Phase::Listening | Phase::Deferred => {
                if self.onset_ms.is_none() && is_cng(&tone) {
                    self.cng_bursts += 1;
                    self.last_cng_end_ms = Some(tone.end_ms);
                    if self.cng_bursts >= 2 {
                        return self.decide(
                            AnsweredBy::Fax,
                            0.95,
                            "fax calling tone (CNG, 1100 Hz) twice",
                        );
                    }
                    return None;
                }
                if self.onset_ms.is_none() && is_ced(tone.hz) && tone.held_ms() >= CED_HELD_MS {
                    return self.decide(AnsweredBy::Fax, 0.95, "fax answer tone (CED, 2100 Hz)");
                }
                self.beep_hz = Some(tone.hz);
                let (confidence, reason) = if self.onset_ms.is_some() {
                    (0.95, format!("beep at {:.0} Hz after speech", tone.hz))
                } else {
                    (0.8, format!("beep at {:.0} Hz without a greeting", tone.hz))
                };
                self.decide(AnsweredBy::MachineEndBeep, confidence, &reason)
            }
            Phase::GreetingPlaying => {
                self.beep_hz = Some(tone.hz);
                self.end_greeting(
                    AnsweredBy::MachineEndBeep,
                    0.95,
                    &format!("beep at {:.0} Hz", tone.hz),
                )
            }
            Phase::Done => None,
        }
    }

    /// Decisions that fall due with time (pauses, greeting length, timeouts).
    fn check_timers(&mut self) -> Option<AmdEvent> {
        let c = &self.config;
        let ms = |d: Duration| d.as_millis() as u64;
        match self.phase {
            Phase::Listening => {
                let Some(_) = self.onset_ms else {
                    // A first CNG burst waits for its second one.
                    let limit = match self.last_cng_end_ms {
                        Some(end) => end + CNG_NEXT_WITHIN_MS,
                        None => ms(c.no_speech),
                    };
                    if self.now_ms >= limit.max(ms(c.no_speech)) && self.tones.holding().is_none() {
                        if self.cng_bursts > 0 {
                            // One 1100 Hz tone and nothing else: a beep without a greeting.
                            return self.decide(
                                AnsweredBy::MachineEndBeep,
                                0.6,
                                "single 1100 Hz tone, no greeting",
                            );
                        }
                        return self.decide(AnsweredBy::Unknown, 0.3, "no speech");
                    }
                    return None;
                };
                let speech = self.speech_ms();
                let silence = self.silence_ms();
                // A long monologue is a greeting, unless its words (heard in the pause after
                // it, or before) are a person's: people rarely answer for 5 s, but some do
                // ("Sorry, he is not available at the moment. Who is calling, please?").
                let persons_words = self.keywords < 0 || self.asked;
                if speech >= ms(c.machine_speech)
                    && !persons_words
                    && (!c.transcribed
                        || silence >= ms(c.machine_pause)
                        || speech >= ms(c.machine_speech_max))
                {
                    let conf = if self.keywords >= KEYWORD_MACHINE {
                        0.95
                    } else {
                        0.85
                    };
                    return self.decide(
                        AnsweredBy::MachineStart,
                        conf,
                        &format!("{:.1} s of speech without a pause", speech as f64 / 1e3),
                    );
                }
                if speech >= ms(c.keyword_speech) {
                    if self.keywords >= KEYWORD_MACHINE {
                        return self.decide(
                            AnsweredBy::MachineStart,
                            0.85,
                            "voicemail phrases in a greeting-length utterance",
                        );
                    }
                    if let Some(j) = self.llm {
                        if j.answered_by == LlmAnswer::Machine
                            && j.confidence >= c.llm_machine_confidence
                        {
                            return self.decide(
                                AnsweredBy::MachineStart,
                                j.confidence.min(0.9),
                                "the LLM judged the greeting a machine",
                            );
                        }
                    }
                }
                let short = speech < ms(c.short_speech);
                let wait = if short { c.short_wait } else { c.long_wait };
                if silence >= ms(wait) {
                    if let Some(j) = self.llm {
                        if j.answered_by == LlmAnswer::Human
                            && j.confidence >= c.llm_human_confidence
                        {
                            return self.decide(
                                AnsweredBy::Human,
                                j.confidence.max(0.8),
                                "pause after speech, the LLM judged it a person",
                            );
                        }
                    }
                    let llm_machine = self.llm.is_some_and(|j| {
                        j.answered_by == LlmAnswer::Machine
                            && j.confidence >= c.llm_machine_confidence
                    });
                    if self.keywords >= KEYWORD_MACHINE || llm_machine {
                        // Words say greeting, the cadence says person: wait for more.
                        self.phase = Phase::Deferred;
                        return self.check_deferred();
                    }
                    // Longer utterances are less surely a person.
                    let frac = speech as f32 / ms(c.machine_speech) as f32;
                    let confidence = (0.9 - 0.3 * frac).clamp(0.55, 0.9);
                    return self.decide(
                        AnsweredBy::Human,
                        confidence,
                        &format!(
                            "{:.1} s of speech then {:.1} s of silence",
                            speech as f64 / 1e3,
                            silence as f64 / 1e3
                        ),
                    );
                }
                None
            }
            Phase::Deferred => self.check_deferred(),
            Phase::GreetingPlaying => {
                if self.silence_ms() >= ms(c.end_silence) && self.tones.holding().is_none() {
                    return self.end_greeting(
                        AnsweredBy::MachineEndSilence,
                        0.8,
                        "silence after the greeting",
                    );
                }
                None
            }
            Phase::Done => None,
        }
    }

    fn check_deferred(&mut self) -> Option<AmdEvent> {
        let c = &self.config;
        if let Some(j) = self.llm {
            match j.answered_by {
                LlmAnswer::Machine if j.confidence >= c.llm_machine_confidence => {
                    return self.decide(
                        AnsweredBy::MachineStart,
                        j.confidence.min(0.9),
                        "voicemail phrases and the LLM's judgement",
                    );
                }
                LlmAnswer::Human if j.confidence >= c.llm_human_confidence => {
                    return self.decide(
                        AnsweredBy::Human,
                        j.confidence,
                        "pause after speech, the LLM judged it a person",
                    );
                }
                _ => {}
            }
        }
        if self.silence_ms() >= c.deferred_wait.as_millis() as u64 {
            return self.decide(
                AnsweredBy::Unknown,
                0.5,
                "short utterance with voicemail phrases, then silence",
            );
        }
        None
    }

    fn decide(
        &mut self,
        answered_by: AnsweredBy,
        confidence: f32,
        reason: &str,
    ) -> Option<AmdEvent> {
        let v = Verdict {
            answered_by,
            confidence: confidence.clamp(0.0, 1.0),
            decision_ms: self.now_ms,
            reason: reason.to_string(),
        };
        self.phase = if answered_by == AnsweredBy::MachineStart {
            Phase::GreetingPlaying
        } else {
            Phase::Done
        };
        self.decision = Some(v.clone());
        Some(AmdEvent::Decided(v))
    }

    fn end_greeting(
        &mut self,
        answered_by: AnsweredBy,
        confidence: f32,
        reason: &str,
    ) -> Option<AmdEvent> {
        let v = Verdict {
            answered_by,
            confidence,
            decision_ms: self.now_ms,
            reason: reason.to_string(),
        };
        self.phase = Phase::Done;
        self.greeting_end = Some(v.clone());
        Some(AmdEvent::GreetingEnded(v))
    }

    /// The transcript of the callee's first words (the whole text so far; a later call
    /// replaces it). May decide at once (a greeting-length utterance with voicemail phrases).
    pub fn on_transcript(&mut self, text: &str) -> Option<AmdEvent> {
        if !self.wants_judgement() {
            return None;
        }
        self.transcript = Some(text.trim().to_string());
        self.keywords = keyword_score(text);
        self.asked = text.trim_end().ends_with('?');
        self.check_timers()
    }

    /// The LLM's judgement of the transcript (from [`parse_llm_answer`]). May decide at once.
    pub fn on_llm(&mut self, judgement: LlmJudgement) -> Option<AmdEvent> {
        if !self.wants_judgement() {
            return None;
        }
        self.llm = Some(judgement);
        self.check_timers()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(hz: f64, ms: u64, amp: f64) -> Vec<i16> {
        let n = (ms * 8) as usize;
        (0..n)
            .map(|i| {
                (amp * (2.0 * std::f64::consts::PI * hz * i as f64 / 8000.0).sin()).round() as i16
            })
            .collect()
    }

    /// Deterministic white noise (xorshift) with the given RMS.
    fn noise(len: usize, rms: f64, seed: u32) -> Vec<i16> {
        let mut x = seed.max(1);
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let u = f64::from(x) / f64::from(u32::MAX) * 2.0 - 1.0;
                (u * rms * 3f64.sqrt()).round() as i16
            })
            .collect()
    }

    fn mix(a: &[i16], b: &[i16]) -> Vec<i16> {
        a.iter()
            .zip(b.iter().chain(std::iter::repeat(&0)))
            .map(|(&x, &y)| (i32::from(x) + i32::from(y)).clamp(-32768, 32767) as i16)
            .collect()
    }

    /// Tones found in `audio` (frames of 160 from t = 0).
    fn tones(audio: &[i16]) -> Vec<Tone> {
        let mut d = ToneDetector::new();
        let mut out = Vec::new();
        let mut t = 0;
        for f in audio.chunks(FRAME_SAMPLES) {
            t += FRAME_MS;
            out.extend(d.push(t, f));
        }
        // Flush with silence.
        for _ in 0..5 {
            t += FRAME_MS;
            out.extend(d.push(t, &[0; FRAME_SAMPLES]));
        }
        out
    }

    #[test]
    fn beeps_are_found_at_their_frequency_and_length() {
        for hz in [440.0, 850.0, 1000.0, 1400.0, 2000.0] {
            for ms in [150u64, 300, 1000] {
                // 330 ms of silence, then the tone, off the frame grid.
                let mut audio = vec![0i16; 2640];
                audio.extend(sine(hz, ms, 8000.0));
                audio.extend(vec![0; 4000]);
                let found = tones(&audio);
                assert_eq!(found.len(), 1, "{hz} Hz {ms} ms: {found:?}");
                let t = found[0];
                assert!((f64::from(t.hz) - hz).abs() < 8.0, "{hz}: {t:?}");
                let held = t.held_ms() as i64;
                assert!((held - ms as i64).abs() <= 30, "{hz} {ms}: held {held}");
                assert!((t.start_ms as i64 - 330).abs() <= 30, "{t:?}");
            }
        }
    }

    #[test]
    fn short_tones_noise_and_sweeps_are_not_beeps() {
        // 100 ms: shorter than a beep.
        let mut audio = sine(1000.0, 100, 8000.0);
        audio.extend(vec![0; 4000]);
        assert!(tones(&audio).is_empty());
        // White noise, loud.
        assert!(tones(&noise(8000 * 3, 3000.0, 7)).is_empty());
        // A fast sweep (a chirp, 500 -> 2000 Hz in 300 ms) never holds one frequency.
        let chirp: Vec<i16> = (0..2400)
            .map(|i| {
                let t = i as f64 / 8000.0;
                let phase = 2.0 * std::f64::consts::PI * (500.0 * t + 2500.0 * t * t);
                (8000.0 * phase.sin()) as i16
            })
            .collect();
        assert!(tones(&chirp).is_empty());
        // Two tones at once (dial tone 350 + 440 Hz): neither holds 70 % of the power.
        let dual = mix(&sine(350.0, 1000, 6000.0), &sine(440.0, 1000, 6000.0));
        assert!(tones(&dual).is_empty());
        // Very quiet tone (-70 dBFS): line noise, not a beep.
        let quiet = sine(1000.0, 500, 10.0);
        assert!(tones(&quiet).is_empty());
    }

    #[test]
    fn beeps_survive_noise() {
        // A 1400 Hz beep 10 dB above white noise (noise RMS 1000, tone RMS ~3160).
        let beep = sine(1400.0, 200, 4470.0);
        let mut audio = vec![0i16; 1600];
        audio.extend(beep);
        audio.extend(vec![0; 3200]);
        let noisy = mix(&audio, &noise(audio.len(), 1000.0, 3));
        let found = tones(&noisy);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!((found[0].hz - 1400.0).abs() < 10.0);
        assert!(found[0].held_ms() >= 150);
    }

    /// Pink noise (Paul Kellet's economy filter over [`noise`]) with about the given RMS.
    fn pink(len: usize, rms: f64, seed: u32) -> Vec<i16> {
        let white = noise(len, 1000.0, seed);
        let (mut b0, mut b1, mut b2) = (0.0, 0.0, 0.0);
        let raw: Vec<f64> = white
            .iter()
            .map(|&w| {
                let w = f64::from(w);
                b0 = 0.99765 * b0 + w * 0.0990460;
                b1 = 0.96300 * b1 + w * 0.2965164;
                b2 = 0.57000 * b2 + w * 1.0526913;
                b0 + b1 + b2 + w * 0.1848
            })
            .collect();
        let r = (raw.iter().map(|x| x * x).sum::<f64>() / len as f64).sqrt();
        raw.iter().map(|x| (x * rms / r).round() as i16).collect()
    }

    #[test]
    fn weak_beeps_stand_out_of_a_learned_noise_floor() {
        // A beep 2 dB weaker than the white noise over the whole band (its share of the power
        // is 39 %, under the 70 % of a clean line), after 1 s of noise to learn from.
        for (seed, hz, ms) in [(11, 1400.0, 180u64), (12, 850.0, 400), (13, 440.0, 160)] {
            let mut audio = vec![0i16; 8000];
            audio.extend(sine(hz, ms, 800.0 * std::f64::consts::SQRT_2));
            audio.extend(vec![0; 8000]);
            let noisy = mix(&audio, &noise(audio.len(), 1000.0, seed));
            let found = tones(&noisy);
            assert_eq!(found.len(), 1, "{hz} Hz: {found:?}");
            assert!((f64::from(found[0].hz) - hz).abs() < 10.0, "{found:?}");
            let held = found[0].held_ms() as i64;
            assert!(
                (held - ms as i64).abs() <= 40,
                "{hz} Hz {ms} ms: held {held}"
            );
        }
        // A long quiet beep under pink noise is held whole, not lost half way.
        let mut audio = vec![0i16; 8000];
        audio.extend(sine(1000.0, 900, 700.0 * std::f64::consts::SQRT_2));
        audio.extend(vec![0; 8000]);
        let noisy = mix(&audio, &pink(audio.len(), 1000.0, 5));
        let found = tones(&noisy);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].held_ms() >= 860, "{found:?}");
        assert!((found[0].start_ms as i64 - 1000).abs() <= 30, "{found:?}");
        // Noise alone, white or pink, loud or quiet, never holds a tone.
        for seed in 20..26 {
            for rms in [300.0, 3000.0] {
                assert!(
                    tones(&noise(8000 * 5, rms, seed)).is_empty(),
                    "white {seed}"
                );
                assert!(tones(&pink(8000 * 5, rms, seed)).is_empty(), "pink {seed}");
            }
        }
    }

    #[test]
    fn speech_in_noise_has_no_beeps() {
        // The fixtures' speech with white and pink noise 10 dB under it.
        for name in [
            "open_tomorrow_complete_8k.wav",
            "open_tomorrow_cut_off_8k.wav",
        ] {
            let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
            let (_, _, data) = switchboard_media::audio::read_wav(&path).expect("fixture");
            let mut speech = vec![0i16; 8000];
            speech.extend(&data[0]);
            let level = switchboard_media::audio::rms(&data[0]) / 10f64.powf(0.5);
            for seed in 1..4 {
                let white = mix(&speech, &noise(speech.len(), level, seed));
                assert!(tones(&white).is_empty(), "{name} white {seed}");
                let pinked = mix(&speech, &pink(speech.len(), level, seed));
                assert!(tones(&pinked).is_empty(), "{name} pink {seed}");
            }
        }
    }

    #[test]
    fn speech_has_no_beeps() {
        for name in [
            "open_tomorrow_complete_8k.wav",
            "open_tomorrow_cut_off_8k.wav",
        ] {
            let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
            let (_, rate, data) = switchboard_media::audio::read_wav(&path).expect("fixture");
            assert_eq!(rate, 8000);
            assert!(tones(&data[0]).is_empty(), "{name}");
        }
    }

    /// Frames of `audio` fed with a VAD probability from a plain energy rule (enough for
    /// timing tests on synthetic sounds: "speech" here is noise bursts).
    fn run(
        d: &mut Detector,
        audio: &[i16],
        from_ms: u64,
        voiced: impl Fn(&[i16]) -> bool,
    ) -> Vec<AmdEvent> {
        let mut t = from_ms;
        let mut events = Vec::new();
        for f in audio.chunks(FRAME_SAMPLES) {
            t += FRAME_MS;
            let p = if voiced(f) { 0.9 } else { 0.05 };
            events.extend(d.push_frame(Duration::from_millis(t), f, p));
        }
        events
    }

    fn loud(f: &[i16]) -> bool {
        switchboard_media::audio::rms(f) > 500.0
    }

    /// "Speech" of `ms`: noise bursts the energy VAD calls voiced.
    fn talk(ms: u64, seed: u32) -> Vec<i16> {
        noise((ms * 8) as usize, 3000.0, seed)
    }

    fn silence(ms: u64) -> Vec<i16> {
        vec![0; (ms * 8) as usize]
    }

    #[test]
    fn short_hello_then_silence_is_human_quickly() {
        let mut d = Detector::new(AmdConfig::default());
        let mut audio = silence(500);
        audio.extend(talk(500, 1));
        audio.extend(silence(3000));
        let ev = run(&mut d, &audio, 0, loud);
        assert_eq!(ev.len(), 1, "{ev:?}");
        let v = ev[0].verdict();
        assert_eq!(v.answered_by, AnsweredBy::Human);
        // Speech ends at 1.0 s; 750 ms of silence later.
        assert!((1700..=1800).contains(&v.decision_ms), "{v:?}");
        assert!(v.confidence >= 0.8);
        assert!(!d.is_listening());
        // Nothing more, whatever follows.
        assert!(run(&mut d, &talk(6000, 2), 4000, loud).is_empty());
        let r = d.result().unwrap();
        assert_eq!(r.answered_by, AnsweredBy::Human);
        assert_eq!(r.machine_end_ms, None);
    }

    #[test]
    fn long_greeting_then_beep() {
        let mut d = Detector::new(AmdConfig::default());
        let mut audio = silence(300);
        // Sentences of 1.8 s with 500 ms pauses: 6.6 s in all.
        for i in 0..3 {
            audio.extend(talk(1800, 10 + i));
            audio.extend(silence(500));
        }
        audio.extend(sine(850.0, 400, 8000.0));
        audio.extend(silence(3000));
        let ev = run(&mut d, &audio, 0, loud);
        assert_eq!(ev.len(), 2, "{ev:?}");
        let AmdEvent::Decided(start) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!(start.answered_by, AnsweredBy::MachineStart);
        // 5 s of speech from the onset at 0.3 s, then the first pause of 500 ms: the third
        // sentence ends at 6.7 s.
        assert!((7180..=7240).contains(&start.decision_ms), "{start:?}");
        let AmdEvent::GreetingEnded(end) = &ev[1] else {
            panic!("{ev:?}")
        };
        assert_eq!(end.answered_by, AnsweredBy::MachineEndBeep);
        // Beep from 7.2 to 7.6 s: reported within 60 ms of its end.
        assert!((7600..=7660).contains(&end.decision_ms), "{end:?}");
        let r = d.result().unwrap();
        assert_eq!(r.answered_by, AnsweredBy::MachineEndBeep);
        assert_eq!(r.decision.answered_by, AnsweredBy::MachineStart);
        assert!((r.beep_hz.unwrap() - 850.0).abs() < 10.0);
        assert_eq!(r.machine_end_ms, Some(end.decision_ms));
        // Serialises as stored on a call.
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["answered_by"], "machine_end_beep");
        assert_eq!(json["decision"]["answered_by"], "machine_start");
        let back: AmdResult = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn long_greeting_ending_in_silence() {
        let mut d = Detector::new(AmdConfig::default());
        let mut audio = silence(200);
        audio.extend(talk(6000, 4));
        audio.extend(silence(4000));
        let ev = run(&mut d, &audio, 0, loud);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(ev[0].verdict().answered_by, AnsweredBy::MachineStart);
        let end = ev[1].verdict();
        assert_eq!(end.answered_by, AnsweredBy::MachineEndSilence);
        // Greeting ends at 6.2 s, plus 2 s of silence.
        assert!((8200..=8240).contains(&end.decision_ms), "{end:?}");
    }

    #[test]
    fn short_greeting_then_beep_is_machine() {
        // "Leave a message." then a beep 400 ms later: decided by the beep, before the wait.
        let mut d = Detector::new(AmdConfig::default());
        let mut audio = silence(300);
        audio.extend(talk(900, 5));
        audio.extend(silence(400));
        audio.extend(sine(1000.0, 250, 8000.0));
        audio.extend(silence(2000));
        let ev = run(&mut d, &audio, 0, loud);
        assert_eq!(ev.len(), 1, "{ev:?}");
        let AmdEvent::Decided(v) = &ev[0] else {
            panic!()
        };
        assert_eq!(v.answered_by, AnsweredBy::MachineEndBeep);
        assert!(v.answered_by.greeting_over());
        assert!((1850..=1910).contains(&v.decision_ms), "{v:?}");
    }

    #[test]
    fn keywords_alone_do_not_make_a_short_utterance_a_machine() {
        // "He's not available right now, can I take a message?" (weak + human phrases).
        assert!(keyword_score("He's not available right now, can I take a message?") < 2);
        assert!(keyword_score("She's not available right now, who's calling?") < 2);
        assert!(keyword_score("Hello?") == 0);
        assert!(keyword_score("Please leave a message after the tone.") >= 2);
        assert!(keyword_score("You've reached the voicemail of Sam.") >= 2);
        assert!(keyword_score("Hi, you’ve reached Sam. I'm not available, leave a message.") >= 2);
        // "Leave a message" told to the caller is a greeting's; asked or offered, a person's.
        assert!(keyword_score("This is Emma. Leave a message.") >= 2);
        assert!(keyword_score("Please leave a message!") >= 2);
        assert!(keyword_score("He's not here right now. Do you want to leave a message?") < 2);
        assert!(keyword_score("She's out, but you can leave a message with me.") < 2);
        assert!(keyword_score("Leave a message?") < 2);

        // A short utterance with strong phrases, then silence: deferred, never a machine by
        // the words alone; it ends as unknown.
        let mut d = Detector::new(AmdConfig::default());
        let mut audio = silence(300);
        audio.extend(talk(1200, 6));
        let ev = run(&mut d, &audio, 0, loud);
        assert!(ev.is_empty());
        assert_eq!(
            d.on_transcript("Sorry, I got your voicemail, who is this"),
            None
        );
        assert_eq!(d.on_transcript("Leave your name after the tone."), None);
        let ev = run(&mut d, &silence(4000), 1500, loud);
        assert_eq!(ev.len(), 1, "{ev:?}");
        let v = ev[0].verdict();
        assert_eq!(v.answered_by, AnsweredBy::Unknown);
        // Deferred until 3 s of silence after the speech (which ended at 1.5 s).
        assert!((4500..=4540).contains(&v.decision_ms), "{v:?}");

        // The same with a confident LLM "machine" during the wait: machine, then its end.
        let mut d = Detector::new(AmdConfig::default());
        run(&mut d, &audio, 0, loud);
        d.on_transcript("Leave your name after the tone.");
        assert!(run(&mut d, &silence(1000), 1500, loud).is_empty());
        let ev = d.on_llm(LlmJudgement {
            answered_by: LlmAnswer::Machine,
            confidence: 0.9,
        });
        let v = ev.unwrap();
        assert_eq!(v.verdict().answered_by, AnsweredBy::MachineStart);
        assert_eq!(v.verdict().decision_ms, 2500);
        let ev = run(&mut d, &silence(2000), 2500, loud);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].verdict().answered_by, AnsweredBy::MachineEndSilence);
        // The greeting ended 2 s after its last voiced frame (1.5 s).
        assert_eq!(ev[0].verdict().decision_ms, 3500);

        // Deferred, then speaking again after 2 s of silence: a person asking again.
        let mut d = Detector::new(AmdConfig::default());
        run(&mut d, &audio, 0, loud);
        d.on_transcript("Leave your name after the tone.");
        let mut again = silence(2000);
        again.extend(talk(500, 7));
        let ev = run(&mut d, &again, 1500, loud);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(ev[0].verdict().answered_by, AnsweredBy::Human, "{ev:?}");
        // Three voiced frames from 3.5 s start speech.
        assert_eq!(ev[0].verdict().decision_ms, 3560);

        // Without phrases the same utterance is a person after 750 ms.
        let mut d = Detector::new(AmdConfig::default());
        run(&mut d, &audio, 0, loud);
        d.on_transcript("He's not available right now, can I take a message?");
        let ev = run(&mut d, &silence(1000), 1500, loud);
        assert_eq!(ev[0].verdict().answered_by, AnsweredBy::Human);
        assert_eq!(ev[0].verdict().decision_ms, 2260);
    }

    #[test]
    fn keywords_or_llm_decide_a_greeting_length_utterance() {
        let mut audio = silence(200);
        audio.extend(talk(2400, 8));
        // Phrases: machine while still speaking once 1.5 s of speech are heard.
        let mut d = Detector::new(AmdConfig::default());
        assert!(run(&mut d, &audio[..1600 * 8], 0, loud).is_empty());
        d.on_transcript("Hi, you've reached Sam, please leave a message after the tone");
        let ev = run(&mut d, &audio[1600 * 8..], 1600, loud);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(ev[0].verdict().answered_by, AnsweredBy::MachineStart);
        assert!((1700..=1740).contains(&ev[0].verdict().decision_ms));
        // LLM says human: the long pause after is a person.
        let mut d = Detector::new(AmdConfig::default());
        run(&mut d, &audio, 0, loud);
        d.on_llm(LlmJudgement {
            answered_by: LlmAnswer::Human,
            confidence: 0.9,
        });
        let ev = run(&mut d, &silence(2000), 2600, loud);
        assert_eq!(ev[0].verdict().answered_by, AnsweredBy::Human);
        assert_eq!(ev[0].verdict().decision_ms, 2600 + 1100);
    }

    #[test]
    fn fax_tones() {
        // CNG: 0.5 s of 1100 Hz every 3.5 s.
        let mut audio = silence(200);
        for _ in 0..3 {
            audio.extend(sine(1100.0, 500, 6000.0));
            audio.extend(silence(3000));
        }
        let mut d = Detector::new(AmdConfig::default());
        let ev = run(&mut d, &audio, 0, loud);
        assert_eq!(ev.len(), 1, "{ev:?}");
        let v = ev[0].verdict();
        assert_eq!(v.answered_by, AnsweredBy::Fax);
        // Second burst ends at 0.2 + 3.5 + 0.5 = 4.2 s.
        assert!((4200..=4260).contains(&v.decision_ms), "{v:?}");
        // CED: 2100 Hz for 3 s: fax after 1.2 s of it.
        let mut audio = silence(300);
        audio.extend(sine(2100.0, 3000, 6000.0));
        let mut d = Detector::new(AmdConfig::default());
        let ev = run(&mut d, &audio, 0, loud);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(ev[0].verdict().answered_by, AnsweredBy::Fax);
        assert!((1500..=1560).contains(&ev[0].verdict().decision_ms));
        // A single 1100 Hz beep without a greeting: a machine that only beeps.
        let mut audio = silence(300);
        audio.extend(sine(1100.0, 500, 6000.0));
        audio.extend(silence(6000));
        let mut d = Detector::new(AmdConfig::default());
        let ev = run(&mut d, &audio, 0, loud);
        assert_eq!(ev[0].verdict().answered_by, AnsweredBy::MachineEndBeep);
    }

    #[test]
    fn silence_only_is_unknown() {
        let mut d = Detector::new(AmdConfig::default());
        let ev = run(&mut d, &silence(6000), 0, loud);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].verdict().answered_by, AnsweredBy::Unknown);
        assert_eq!(ev[0].verdict().decision_ms, 5000);
    }

    #[test]
    fn llm_messages_and_answers() {
        let m = llm_messages("He's not available right now, who's calling?", Some(2300));
        assert_eq!(m.len(), 2);
        assert_eq!(m[0]["role"], "system");
        assert!(m[0]["content"]
            .as_str()
            .unwrap()
            .contains("\"answered_by\""));
        assert_eq!(m[1]["role"], "user");
        let user = m[1]["content"].as_str().unwrap();
        assert!(user.contains("He's not available right now, who's calling?"));
        assert!(user.contains("2.3 s"));
        assert!(!llm_messages("Hello?", None)[1]["content"]
            .as_str()
            .unwrap()
            .contains("lasted"));

        let j = parse_llm_answer(r#"{"answered_by":"machine","confidence":0.93}"#).unwrap();
        assert_eq!(j.answered_by, LlmAnswer::Machine);
        assert!((j.confidence - 0.93).abs() < 1e-6);
        let fenced = "```json\n{\n  \"answered_by\": \"human\",\n  \"confidence\": 0.7\n}\n```";
        let j = parse_llm_answer(fenced).unwrap();
        assert_eq!(j.answered_by, LlmAnswer::Human);
        let j = parse_llm_answer(
            "Sure! {\"answered_by\": \"Voicemail\", \"confidence\": \"85%\"} Hope this helps.",
        )
        .unwrap();
        assert_eq!(j.answered_by, LlmAnswer::Machine);
        assert!((j.confidence - 0.85).abs() < 1e-6);
        assert_eq!(
            parse_llm_answer(r#"{"answered_by":"human","confidence":3}"#)
                .unwrap()
                .confidence,
            0.03
        );
        assert_eq!(
            parse_llm_answer(r#"{"answered_by":"human","confidence":250}"#)
                .unwrap()
                .confidence,
            1.0
        );
        assert_eq!(parse_llm_answer("human, 0.9"), Err(LlmAnswerError::NoJson));
        assert!(matches!(
            parse_llm_answer("{answered_by: human}"),
            Err(LlmAnswerError::Json(_))
        ));
        assert_eq!(
            parse_llm_answer(r#"{"answered_by":"robot","confidence":0.5}"#),
            Err(LlmAnswerError::AnsweredBy)
        );
        assert_eq!(
            parse_llm_answer(r#"{"answered_by":"human"}"#),
            Err(LlmAnswerError::Confidence)
        );
        assert_eq!(
            parse_llm_answer(r#"{"answered_by":"human","confidence":-1}"#),
            Err(LlmAnswerError::Confidence)
        );
    }

    #[test]
    fn answered_by_strings() {
        for (v, s) in [
            (AnsweredBy::Human, "human"),
            (AnsweredBy::MachineStart, "machine_start"),
            (AnsweredBy::MachineEndBeep, "machine_end_beep"),
            (AnsweredBy::MachineEndSilence, "machine_end_silence"),
            (AnsweredBy::Fax, "fax"),
            (AnsweredBy::Unknown, "unknown"),
        ] {
            assert_eq!(v.as_str(), s);
            assert_eq!(serde_json::to_value(v).unwrap(), s);
        }
    }
}
