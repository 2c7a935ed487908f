//! Labelled greetings for answering-machine detection, generated at run time (nothing is
//! committed): live people answering (espeak-ng openers, then the silence of someone waiting
//! for a reply, sometimes a second "Hello?"), machine greetings of various lengths (sentence by
//! sentence, with pauses) with or without a beep at various frequencies and lengths, then the
//! silence of a recording; fax tones (CNG, CED). Voices and rates vary, white or pink noise is
//! added at a few SNRs, and everything goes through G.711 µ-law like a phone call.
//!
//! Shared by `tests/amd.rs` (a modest set, asserting the goals) and `examples/amd_bench.rs`
//! (a larger set, printing the confusion matrix); both run every sample through Silero VAD
//! (`vad::Vad`, as the call driver does) and the detector.

#![allow(dead_code)]

use std::collections::HashMap;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use switchboard_agent::amd::{AmdConfig, AmdEvent, AnsweredBy, Detector, Verdict};
use switchboard_agent::vad::{Vad, VadModel, FRAME_SAMPLES};

pub const RATE: u32 = 8000;

/// What really answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Truth {
    Human,
    MachineBeep,
    MachineSilence,
    Fax,
}

impl Truth {
    pub const ALL: [Truth; 4] = [
        Truth::Human,
        Truth::MachineBeep,
        Truth::MachineSilence,
        Truth::Fax,
    ];
    pub fn label(self) -> &'static str {
        match self {
            Truth::Human => "human",
            Truth::MachineBeep => "machine + beep",
            Truth::MachineSilence => "machine, no beep",
            Truth::Fax => "fax",
        }
    }
    pub fn is_machine(self) -> bool {
        matches!(self, Truth::MachineBeep | Truth::MachineSilence)
    }
}

#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub truth: Truth,
    /// 8 kHz audio from the moment of answer.
    pub audio: Vec<i16>,
    /// When each sentence (or opener) ends (ms since answer) and the text said so far: what a
    /// streaming STT would have finalised by then.
    pub sentences: Vec<(u64, String)>,
    /// End of the greeting's speech (ms), for machines.
    pub speech_end_ms: u64,
    /// The beep: frequency, start and end (ms since answer).
    pub beep: Option<(f32, u64, u64)>,
}

/// Openers of live people: what they say on picking up, before waiting for the caller.
pub const HUMAN_OPENERS: &[&str] = &[
    "Hello?",
    "Hi, this is Sam.",
    "Yeah?",
    "Hello, who is this?",
    "He's not available right now, can I take a message?",
    "She's not available right now, who's calling?",
    "Sorry, he is not available at the moment. Who is calling, please?",
    "Hello, Maria speaking.",
    "Good morning, Smith and Partners, how can I help you?",
    "Yes?",
    "Hi there.",
    "Hello, this is the front desk.",
    "Yes, I got your voicemail, who is this?",
    "Hello? Yes, this is she.",
    "Hey, what's up?",
    "Doctor Patel's office, how may I help you?",
    "Hello, you've reached Tony's Pizza, what can I get you?",
    "Mm-hmm, hello?",
];

/// Harder openers of live people, added after the first figures: they use greeting phrases
/// ("leave a message", "you've reached", "not here right now") and mean them as a person
/// does. Each is one extra human sample of every corpus (drawn from its own random stream, so
/// the samples above are the same as before they were added).
pub const HARD_HUMAN_OPENERS: &[&str] = &[
    "He's not here right now. Do you want to leave a message?",
    "She's in a meeting, but you can leave a message with me.",
    "Sorry, you've reached the wrong extension. Who are you looking for?",
    "Hi, Sam's phone. Sam is not available, this is his assistant speaking.",
    "Hello? I can't hear you very well.",
];

/// Openers of one or two short words: the human verdict must come within 2.5 s of answer.
pub const SHORT_OPENERS: &[&str] = &["Hello?", "Yeah?", "Yes?", "Hi there."];

/// Machine greetings, sentence by sentence.
pub const MACHINE_GREETINGS: &[&[&str]] = &[
    &["Hi, you've reached Sam.", "Leave a message."],
    &["Please leave a message after the tone."],
    &[
        "Hi, this is John.",
        "I can't come to the phone right now.",
        "Please leave a message after the beep, and I will get back to you as soon as I can.",
    ],
    &[
        "The person you are calling is not available.",
        "At the tone, please record your message.",
        "When you have finished recording, you may hang up.",
    ],
    &[
        "Hello, you have reached the voicemail of Maria Lopez.",
        "I am either on the other line or away from my desk.",
        "Please leave your name, number and a brief message, and I will return your call.",
    ],
    &[
        "Your call has been forwarded to an automatic voice message system.",
        "The number you have dialed is not available.",
        "At the tone, please record your message.",
    ],
    &[
        "Thank you for calling Smith and Partners.",
        "Our office is currently closed.",
        "Our hours are Monday to Friday, nine to five.",
        "Please leave a message and we will call you back on the next business day.",
    ],
    &["Hey, it's Dave.", "You know what to do."],
    &[
        "Hi, you've reached the Johnsons.",
        "We're not home right now, but if you leave your name and number, we'll call you back.",
    ],
    &[
        "Sorry I missed your call.",
        "Leave me a message and I'll get back to you.",
    ],
    &[
        "You have reached the desk of Doctor Patel.",
        "I am out of the office until Monday.",
        "For urgent matters, please call the front desk.",
        "Otherwise, leave a message.",
    ],
    &[
        "Hello.",
        "You have reached five five five, one two three four.",
        "Please leave a message.",
    ],
    &["This is Emma.", "Leave a message."],
    &[
        "Hi, it's Chris.",
        "I'm probably out riding my bike or something.",
        "Leave a message and I'll call you back.",
    ],
];

pub const VOICES: &[&str] = &[
    "en-us",
    "en",
    "en-gb",
    "en-us+f3",
    "en+m3",
    "en-gb+f2",
    "en-us+m7",
    "en-gb-x-rp+f4",
];

pub const BEEP_HZ: &[f32] = &[440.0, 850.0, 1000.0, 1400.0, 2000.0];

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Noise {
    Clean,
    White(f64),
    Pink(f64),
}

impl Noise {
    pub fn label(self) -> String {
        match self {
            Noise::Clean => "clean".into(),
            Noise::White(snr) => format!("white{snr:.0}dB"),
            Noise::Pink(snr) => format!("pink{snr:.0}dB"),
        }
    }
}

/// The noise conditions drawn from (clean twice as often).
pub const NOISES: &[Noise] = &[
    Noise::Clean,
    Noise::Clean,
    Noise::White(20.0),
    Noise::White(10.0),
    Noise::Pink(20.0),
    Noise::Pink(10.0),
];

/// xorshift64*: deterministic, seedable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in 0..1.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    pub fn ms(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next_u64() % items.len() as u64) as usize]
    }
}

/// Synthesised sentences by (text, voice, rate).
type SpeechCache = HashMap<(String, String, u32), Vec<i16>>;

static CACHE: Mutex<Option<SpeechCache>> = Mutex::new(None);

/// `text` spoken by espeak-ng `voice` at `wpm`, at 8 kHz, without its leading and trailing
/// silence.
pub fn speak(text: &str, voice: &str, wpm: u32) -> Vec<i16> {
    let key = (text.to_string(), voice.to_string(), wpm);
    if let Some(hit) = CACHE
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .get(&key)
    {
        return hit.clone();
    }
    let out = Command::new("espeak-ng")
        .args(["--stdout", "-v", voice, "-s", &wpm.to_string(), "--", text])
        .output()
        .expect("espeak-ng is installed");
    assert!(out.status.success(), "espeak-ng failed: {out:?}");
    let wav = switchboard_media::tts::parse_wav(&out.stdout).expect("espeak-ng wav");
    let pcm = switchboard_media::resample::resample(&wav.samples, wav.sample_rate, RATE);
    let first = pcm.iter().position(|s| s.unsigned_abs() > 300).unwrap_or(0);
    let last = pcm
        .iter()
        .rposition(|s| s.unsigned_abs() > 300)
        .unwrap_or(pcm.len());
    let trimmed = pcm[first.saturating_sub(40)..(last + 40).min(pcm.len())].to_vec();
    CACHE
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(key, trimmed.clone());
    trimmed
}

fn ms_to_samples(ms: u64) -> usize {
    (ms * u64::from(RATE) / 1000) as usize
}

fn len_ms(audio: &[i16]) -> u64 {
    audio.len() as u64 * 1000 / u64::from(RATE)
}

fn silence(audio: &mut Vec<i16>, ms: u64) {
    audio.extend(std::iter::repeat_n(0i16, ms_to_samples(ms)));
}

fn tone(audio: &mut Vec<i16>, hz: f64, ms: u64, rms: f64) {
    let amp = rms * std::f64::consts::SQRT_2;
    let n = ms_to_samples(ms);
    // 5 ms raised-cosine ramps, as tone generators do (no clicks).
    let ramp = 40usize;
    for i in 0..n {
        let edge = i.min(n - 1 - i);
        let g = if edge < ramp {
            0.5 - 0.5 * (std::f64::consts::PI * edge as f64 / ramp as f64).cos()
        } else {
            1.0
        };
        let x = g * amp * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(RATE)).sin();
        audio.push(x.round().clamp(-32768.0, 32767.0) as i16);
    }
}

/// RMS of the frames of `audio` above -40 dBFS (the active speech level).
fn active_rms(audio: &[i16]) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for f in audio.chunks(FRAME_SAMPLES) {
        let ms: f64 = f.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / f.len() as f64;
        if ms.sqrt() > 327.0 {
            sum += ms * f.len() as f64;
            n += f.len();
        }
    }
    if n == 0 {
        0.0
    } else {
        (sum / n as f64).sqrt()
    }
}

fn add_noise(audio: &mut [i16], noise: Noise, reference_rms: f64, rng: &mut Rng) {
    let (snr, pink) = match noise {
        Noise::Clean => return,
        Noise::White(s) => (s, false),
        Noise::Pink(s) => (s, true),
    };
    let mut raw: Vec<f64> = Vec::with_capacity(audio.len());
    // Paul Kellet's economy pink filter over white noise.
    let (mut b0, mut b1, mut b2) = (0.0, 0.0, 0.0);
    for _ in 0..audio.len() {
        let w = rng.range(-1.0, 1.0);
        if pink {
            b0 = 0.99765 * b0 + w * 0.0990460;
            b1 = 0.96300 * b1 + w * 0.2965164;
            b2 = 0.57000 * b2 + w * 1.0526913;
            raw.push(b0 + b1 + b2 + w * 0.1848);
        } else {
            raw.push(w);
        }
    }
    let rms = (raw.iter().map(|x| x * x).sum::<f64>() / raw.len().max(1) as f64).sqrt();
    let target = reference_rms / 10f64.powf(snr / 20.0);
    for (s, n) in audio.iter_mut().zip(raw) {
        *s = (f64::from(*s) + n * target / rms)
            .round()
            .clamp(-32768.0, 32767.0) as i16;
    }
}

/// Through G.711 µ-law and back, like the call's audio.
fn telephone(audio: &[i16]) -> Vec<i16> {
    use switchboard_media::g711::{linear_to_ulaw, ulaw_to_linear};
    audio
        .iter()
        .map(|&s| ulaw_to_linear(linear_to_ulaw(s)))
        .collect()
}

fn gain(audio: &mut [i16], db: f64) {
    let g = 10f64.powf(db / 20.0);
    for s in audio {
        *s = (f64::from(*s) * g).round().clamp(-32768.0, 32767.0) as i16;
    }
}

/// Build one sample of class `truth` from `rng`.
pub fn sample(truth: Truth, index: usize, rng: &mut Rng) -> Sample {
    sample_with(truth, index, rng, None)
}

/// [`sample`], with a live person saying `opener` (one of [`HARD_HUMAN_OPENERS`]) instead of
/// one drawn from [`HUMAN_OPENERS`].
fn sample_with(truth: Truth, index: usize, rng: &mut Rng, opener: Option<usize>) -> Sample {
    let voice = *rng.pick(VOICES);
    let wpm = rng.ms(130, 200) as u32;
    let noise = *rng.pick(NOISES);
    let level_db = rng.range(-6.0, 2.0);
    let mut audio = Vec::new();
    let mut sentences = Vec::new();
    let mut beep = None;
    let mut speech_end_ms = 0;
    let name;
    match truth {
        Truth::Human => {
            let drawn = (rng.next_u64() % HUMAN_OPENERS.len() as u64) as usize;
            let (opener, label) = match opener {
                Some(i) => (HARD_HUMAN_OPENERS[i], format!("h{i}")),
                None => (HUMAN_OPENERS[drawn], format!("o{drawn}")),
            };
            silence(&mut audio, rng.ms(200, 900));
            audio.extend(speak(opener, voice, wpm));
            speech_end_ms = len_ms(&audio);
            sentences.push((speech_end_ms, opener.to_string()));
            // Waiting for the caller; a third of them ask again.
            if rng.unit() < 0.33 {
                silence(&mut audio, rng.ms(2500, 3500));
                audio.extend(speak("Hello?", voice, wpm));
                sentences.push((len_ms(&audio), format!("{opener} Hello?")));
            }
            silence(&mut audio, 3000);
            name = format!("human{index:03}-{label}");
        }
        Truth::MachineBeep | Truth::MachineSilence => {
            let g_ix = (rng.next_u64() % MACHINE_GREETINGS.len() as u64) as usize;
            silence(&mut audio, rng.ms(100, 800));
            let mut said = String::new();
            for (i, s) in MACHINE_GREETINGS[g_ix].iter().enumerate() {
                if i > 0 {
                    silence(&mut audio, rng.ms(250, 650));
                    said.push(' ');
                }
                audio.extend(speak(s, voice, wpm));
                said.push_str(s);
                sentences.push((len_ms(&audio), said.clone()));
            }
            speech_end_ms = len_ms(&audio);
            if truth == Truth::MachineBeep {
                silence(&mut audio, rng.ms(200, 800));
                let hz = if rng.unit() < 0.8 {
                    *rng.pick(BEEP_HZ)
                } else {
                    rng.range(400.0, 2100.0) as f32
                };
                let ms = rng.ms(150, 1000);
                let start = len_ms(&audio);
                let rms = active_rms(&audio) * 10f64.powf(rng.range(-12.0, -3.0) / 20.0);
                tone(&mut audio, f64::from(hz), ms, rms);
                beep = Some((hz, start, len_ms(&audio)));
            }
            silence(&mut audio, 4000);
            name = format!(
                "machine{index:03}-g{g_ix}{}",
                beep.map_or(String::new(), |(hz, s, e)| format!(
                    "-beep{hz:.0}x{}",
                    e - s
                ))
            );
        }
        Truth::Fax => {
            silence(&mut audio, rng.ms(0, 800));
            let rms = rng.range(1000.0, 5000.0);
            if rng.unit() < 0.5 {
                // CNG: 1100 Hz, 0.5 s on, 3 s off (T.30 §5.2.1).
                for _ in 0..3 {
                    tone(&mut audio, 1100.0, 500, rms);
                    silence(&mut audio, 3000);
                }
                name = format!("fax{index:03}-cng");
            } else {
                // CED: 2100 Hz for 2.6-4 s (T.30 §5.2.2), then silence.
                tone(&mut audio, 2100.0, rng.ms(2600, 4000), rms);
                silence(&mut audio, 1500);
                name = format!("fax{index:03}-ced");
            }
        }
    }
    gain(&mut audio, level_db);
    let reference = active_rms(&audio);
    add_noise(&mut audio, noise, reference, rng);
    Sample {
        name: format!("{name}-{voice}-{wpm}wpm-{}", noise.label()),
        truth,
        audio: telephone(&audio),
        sentences,
        speech_end_ms,
        beep,
    }
}

/// `per_class` samples of each class (fax: a quarter as many), from `seed`, synthesised on
/// `threads` threads.
pub fn corpus(per_class: usize, seed: u64, threads: usize) -> Vec<Sample> {
    let mut specs = Vec::new();
    for truth in Truth::ALL {
        let n = if truth == Truth::Fax {
            per_class.div_ceil(4)
        } else {
            per_class
        };
        for i in 0..n {
            specs.push((truth, i, None));
        }
    }
    // The harder openers: one each, after everything else (indices, and so random streams,
    // of the samples above unchanged).
    for i in 0..HARD_HUMAN_OPENERS.len() {
        specs.push((Truth::Human, per_class + i, Some(i)));
    }
    let next = Mutex::new(0usize);
    let out = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let ix = {
                    let mut n = next.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                let Some(&(truth, i, opener)) = specs.get(ix) else {
                    break;
                };
                let mut rng = Rng::new(seed ^ ((ix as u64 + 1) * 0x1000_0001));
                let s = sample_with(truth, i, &mut rng, opener);
                out.lock().unwrap().push((ix, s));
            });
        }
    });
    let mut out = out.into_inner().unwrap();
    out.sort_by_key(|(ix, _)| *ix);
    out.into_iter().map(|(_, s)| s).collect()
}

/// What the detector said about one sample.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub decision: Option<Verdict>,
    pub greeting_end: Option<Verdict>,
}

/// STT latency after the end of a sentence before its transcript reaches the detector.
pub const STT_LATENCY_MS: u64 = 300;

/// Run `sample` through Silero VAD and a fresh detector, frame by frame on the audio clock,
/// giving it the transcript of each sentence `STT_LATENCY_MS` after the sentence ends when
/// `with_transcript` (and telling it whether words will come, as screening does).
pub fn run(sample: &Sample, model: &VadModel, with_transcript: bool) -> Outcome {
    let mut vad = Vad::new(model);
    let mut det = Detector::new(AmdConfig {
        transcribed: with_transcript,
        ..AmdConfig::default()
    });
    let mut out = Outcome {
        decision: None,
        greeting_end: None,
    };
    let record = |ev: Option<AmdEvent>, out: &mut Outcome| match ev {
        Some(AmdEvent::Decided(v)) => out.decision = Some(v),
        Some(AmdEvent::GreetingEnded(v)) => out.greeting_end = Some(v),
        None => {}
    };
    let mut next_sentence = 0;
    for (i, frame) in sample.audio.chunks_exact(FRAME_SAMPLES).enumerate() {
        let now_ms = (i as u64 + 1) * 20;
        let p = vad.push_frame(frame);
        let ev = det.push_frame(Duration::from_millis(now_ms), frame, p);
        record(ev, &mut out);
        if with_transcript {
            while let Some((end, text)) = sample.sentences.get(next_sentence) {
                if end + STT_LATENCY_MS > now_ms {
                    break;
                }
                next_sentence += 1;
                let ev = det.on_transcript(text);
                record(ev, &mut out);
            }
        }
        if !det.is_listening() {
            break;
        }
    }
    out
}

/// Whether a machine's greeting end was reported in time for a message: at or after the beep's
/// end (never over the greeting or the beep); without a beep, `machine_end_silence` after the
/// speech ended.
pub fn greeting_end_ok(sample: &Sample, o: &Outcome) -> bool {
    let end = o.greeting_end.as_ref().or(o
        .decision
        .as_ref()
        .filter(|d| d.answered_by.greeting_over()));
    let Some(end) = end else {
        return false;
    };
    match sample.beep {
        // A beep lost in noise ends the greeting by silence, still after the beep.
        Some((_, _, beep_end)) => end.decision_ms >= beep_end,
        None => {
            end.answered_by == AnsweredBy::MachineEndSilence
                && end.decision_ms >= sample.speech_end_ms
        }
    }
}

/// Percentile (0..100) of sorted values, nearest rank.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}
