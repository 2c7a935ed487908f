//! CPU cost of the in-process models, and a dump for checking them against onnxruntime.
//!
//! `cargo run --release -p switchboard-agent --example model_bench` prints the load times, the
//! VAD's cost per 20 ms frame (speech frames, gated silent frames, and a conversing call's mix)
//! and the cost of one Smart Turn prediction (resampling, features and model separately).
//! Speech is synthesized with espeak-ng.
//!
//! `... --example model_bench -- --dump DIR a.wav b.wav ...` writes, for each 8 kHz 16-bit mono
//! WAV, `DIR/<stem>.vad.f32` (Silero probability of every 256-sample window, run without the
//! energy gate, state carried from window to window), `DIR/<stem>.vadframes.f32` (what
//! `Vad::push_frame` returns for each 20 ms frame, gate and resets included),
//! `DIR/<stem>.16k.f32` (the 8 s of 16 kHz audio Smart Turn sees), `DIR/<stem>.feat.f32` (its
//! 80x800 log-mel features) and `DIR/<stem>.turn.txt` (its probability), all little-endian
//! f32, for a Python script to compare with onnxruntime and transformers'
//! `WhisperFeatureExtractor` (see `models/README.md`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use switchboard_agent::turn::{self, TurnModel};
use switchboard_agent::vad::{
    Vad, VadModel, CONTEXT_SAMPLES, FRAME_SAMPLES, STATE_LEN, WINDOW_SAMPLES,
};

type BoxError = Box<dyn std::error::Error>;

fn write_f32(path: &Path, values: &[f32]) -> Result<(), BoxError> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes)?;
    Ok(())
}

/// Silero over every window of `samples`, no gate, no resets (the onnxruntime reference loop).
fn raw_vad(model: &VadModel, samples: &[i16]) -> Result<Vec<f32>, BoxError> {
    let mut state = vec![0.0f32; STATE_LEN];
    let mut input = vec![0.0f32; CONTEXT_SAMPLES + WINDOW_SAMPLES];
    let mut probs = Vec::new();
    for window in samples.chunks_exact(WINDOW_SAMPLES) {
        input.copy_within(WINDOW_SAMPLES.., 0);
        for (d, &s) in input[CONTEXT_SAMPLES..].iter_mut().zip(window) {
            *d = f32::from(s) / 32768.0;
        }
        probs.push(model.infer(&input, &mut state)?);
    }
    Ok(probs)
}

fn dump(dir: &Path, wavs: &[PathBuf]) -> Result<(), BoxError> {
    let vad = VadModel::load()?;
    let turn_model = TurnModel::load()?;
    std::fs::create_dir_all(dir)?;
    for wav in wavs {
        let (channels, rate, data) = switchboard_media::audio::read_wav(wav)?;
        if channels != 1 || rate != 8000 {
            return Err(format!("{}: need 8 kHz mono", wav.display()).into());
        }
        let samples = &data[0];
        let stem = wav
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or("bad file name")?;
        write_f32(
            &dir.join(format!("{stem}.vad.f32")),
            &raw_vad(&vad, samples)?,
        )?;
        let mut streaming = Vad::new(&vad);
        let per_frame: Vec<f32> = samples
            .chunks_exact(FRAME_SAMPLES)
            .map(|f| streaming.push_frame(f))
            .collect();
        write_f32(&dir.join(format!("{stem}.vadframes.f32")), &per_frame)?;
        let audio = turn::model_audio(samples);
        write_f32(&dir.join(format!("{stem}.16k.f32")), &audio)?;
        let features = turn_model.features(&audio);
        write_f32(&dir.join(format!("{stem}.feat.f32")), &features)?;
        let p = turn_model.predict_features(&features)?;
        std::fs::write(dir.join(format!("{stem}.turn.txt")), format!("{p}\n"))?;
        println!("{stem}: turn probability {p:.4} ({p:?})");
    }
    Ok(())
}

/// Mean µs per frame over one pass of `frames`, best of `repeats` passes (the least disturbed by
/// other processes on the machine).
fn per_frame_us(vad: &mut Vad, frames: &[&[i16]], repeats: usize) -> f64 {
    let mut best = f64::INFINITY;
    let mut sink = 0.0f32;
    for _ in 0..repeats {
        let start = Instant::now();
        for f in frames {
            sink += vad.push_frame(f);
        }
        best = best.min(start.elapsed().as_secs_f64() * 1e6 / frames.len() as f64);
    }
    std::hint::black_box(sink);
    best
}

fn bench() -> Result<(), BoxError> {
    let t = Instant::now();
    let vad_model = VadModel::load()?;
    println!("VadModel::load: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    let t = Instant::now();
    let turn_model = TurnModel::load()?;
    println!("TurnModel::load: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);

    let speech = switchboard_media::tts::synthesize(
        "Hello, thank you for calling. I would like to book a table for two people tomorrow \
         evening, around seven if that is possible.",
        "en-us",
    )?;
    let speech_frames: Vec<&[i16]> = speech.chunks_exact(FRAME_SAMPLES).collect();
    let silence = vec![0i16; FRAME_SAMPLES];
    let silent_frames: Vec<&[i16]> = vec![&silence[..]; 500];

    // Speech: every frame above the gate is counted with the model runs it triggers.
    let mut vad = Vad::new(&vad_model);
    let us_speech = per_frame_us(&mut vad, &speech_frames, 5);
    let runs = vad.model_runs();
    println!(
        "VAD, espeak speech ({} frames incl. its pauses, best of 5 passes): {us_speech:.1} us \
         per 20 ms frame ({:.2} model runs per frame, {:.1} us per run)",
        speech_frames.len(),
        runs as f64 / (speech_frames.len() * 5) as f64,
        us_speech * (speech_frames.len() * 5) as f64 / runs.max(1) as f64
    );
    let mut vad = Vad::new(&vad_model);
    let us_silence = per_frame_us(&mut vad, &silent_frames, 20);
    println!(
        "VAD, digital silence ({} frames, best of 20 passes): {us_silence:.3} us per 20 ms frame \
         ({} model runs)",
        silent_frames.len(),
        vad.model_runs()
    );
    // A conversing call: the caller talks about half the time.
    let avg = 0.5 * us_speech + 0.5 * us_silence;
    println!(
        "VAD, call with the caller speaking half the time: {avg:.1} us per 20 ms frame = {:.3} % \
         of a core",
        avg / 20_000.0 * 100.0
    );

    // espeak-ng reads a cut-off text with a sentence-final fall, and the model goes by prosody:
    // the first pair comes out inverted (see turn.rs), the second one as expected.
    for (label, text) in [
        (
            "complete",
            "I would like to book a table for two people tomorrow evening.",
        ),
        ("cut off", "I would like to book a table for"),
        ("complete", "Can you tell me what time you open tomorrow?"),
        ("cut off", "Can you tell me what time you"),
    ] {
        let audio = switchboard_media::tts::synthesize(text, "en-us")?;
        let p = turn_model.predict(&audio)?;
        println!(
            "Smart Turn, {label} {text:?} ({:.2} s): probability {p:.4} ({p:?})",
            audio.len() as f64 / 8000.0
        );
    }
    let audio = switchboard_media::tts::synthesize(
        "I would like to book a table for two people tomorrow evening.",
        "en-us",
    )?;
    // Best of 5 for each stage.
    let (mut t_resample, mut t_features, mut t_model) = (f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..5 {
        let t = Instant::now();
        let wave = turn::model_audio(&audio);
        t_resample = t_resample.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let features = turn_model.features(&wave);
        t_features = t_features.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        std::hint::black_box(turn_model.predict_features(&features)?);
        t_model = t_model.min(t.elapsed().as_secs_f64());
    }
    let ms = |s: f64| s * 1e3;
    println!(
        "Smart Turn predict: {:.1} ms (resample {:.1} ms, features {:.1} ms, model {:.1} ms; \
         best of 5)",
        ms(t_resample + t_features + t_model),
        ms(t_resample),
        ms(t_features),
        ms(t_model)
    );
    // CPU time of this thread (on a shared machine the wall time above includes waiting for a
    // core; this does not): mean over 20 predictions.
    let wave = turn::model_audio(&audio);
    let features = turn_model.features(&wave);
    let cpu0 = thread_cpu_ns();
    for _ in 0..20 {
        std::hint::black_box(turn_model.predict_features(&features)?);
    }
    if let (Some(a), Some(b)) = (cpu0, thread_cpu_ns()) {
        println!(
            "Smart Turn model: {:.1} ms of CPU per prediction (mean of 20)",
            (b - a) as f64 / 20.0 / 1e6
        );
    }
    Ok(())
}

/// This thread's time on a CPU in nanoseconds (Linux `/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--dump") => {
            let dir = args.get(1).ok_or("--dump DIR file.wav...")?;
            let wavs: Vec<PathBuf> = args[2..].iter().map(PathBuf::from).collect();
            dump(Path::new(dir), &wavs)
        }
        _ => bench(),
    }
}
