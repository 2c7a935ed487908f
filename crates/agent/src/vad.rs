//! Voice activity: a cheap energy gate in front of Silero VAD v5, run in process with `tract`
//! (pure Rust, no system library, no model file at run time: the ONNX bytes are embedded).
//!
//! The model is `models/silero_vad.onnx` (Silero VAD v5, MIT; see `models/README.md`). At 8 kHz
//! it scores windows of 256 samples (32 ms) and is fed each window prefixed with the last 32
//! samples of the previous one (its "context"), plus a recurrent state `[2, 1, 128]` that it
//! returns updated. Its inputs are `input` `[1, 288]` f32 in -1..1, `state` `[2, 1, 128]` f32
//! and `sr` (a scalar i64); the outputs are `output` `[1, 1]` (speech probability) and `stateN`.
//! The graph branches on `sr` (8 vs 16 kHz) and, inside, on shape checks, with ONNX `If`s that
//! tract 0.23 cannot type as they are: [`VadModel::load`] fixes the input shapes and `sr` = 8000,
//! inlines the branch each `If` takes (see `inline_ifs`), and optimizes the 8 kHz path alone.
//!
//! Calls arrive in 20 ms frames of 160 samples, so [`Vad`] buffers samples and runs the model
//! each time a 256-sample window is complete (0 or 1 time per frame, 0.625 on average).
//!
//! The energy gate keeps idle audio nearly free: a frame whose RMS is below [`GATE_DBFS`]
//! (-50 dBFS: RMS 104 in sample units; telephone line noise sits around -60..-70 dBFS, quiet
//! speech around -35..-45 dBFS, and the quieter parts of words are carried by the louder frames
//! of the same window) returns 0.0 without running the model. A window made only of gated frames
//! is skipped; a window with any frame above the gate is scored as a whole (so the soft onset and
//! tail of a word reach the model with the rest of it).
//!
//! Recurrent state resets (as pipecat does for Silero at 8 kHz, where long silence or noise
//! leaves the state under-reporting the speech that follows): the state and context are cleared
//! after [`RESET_AFTER_GATED_FRAMES`] gated frames in a row, and, for audio above the gate that
//! the model scores as non-speech (noise, music), once at least 2 s of windows have passed since
//! the last reset and the last 5 windows all scored below 0.1.
//!
//! Verified against onnxruntime (Python, pipecat's loop: same context and state handling) on
//! espeak-ng speech resampled to 8 kHz, digital silence, white noise and a 100 s mix of them:
//! per-window probabilities agree within 1.6e-6 (max abs diff), and the frame-by-frame output
//! of [`Vad::push_frame`] (gate and resets included) matches a Python replica of this module
//! within 7e-7.
//!
//! Cost (release build, one core of the 2-core dev machine, `examples/model_bench.rs`): load
//! 70-90 ms; one model run 46-54 µs; 25-29 µs per 20 ms frame over speech (with its pauses),
//! 0.33 µs per gated frame; a call where the caller talks half the time about 13-15 µs per
//! frame, i.e. about 0.07 % of a core.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::InferenceModelPatch;
use tract_onnx::tract_hir::internal::{ensure, Factoid, TractErrorContext};

/// The Silero VAD v5 ONNX model (MIT), embedded: 2.3 MB.
static SILERO_ONNX: &[u8] = include_bytes!("../models/silero_vad.onnx");

/// Sample rate the VAD works at.
pub const SAMPLE_RATE: u32 = 8000;
/// Samples in one call frame (20 ms at 8 kHz).
pub const FRAME_SAMPLES: usize = 160;
/// Samples the model scores per run at 8 kHz (32 ms).
pub const WINDOW_SAMPLES: usize = 256;
/// Samples of the previous window prepended to each window at 8 kHz.
pub const CONTEXT_SAMPLES: usize = 32;
/// Size of the model's recurrent state (`[2, 1, 128]`).
pub const STATE_LEN: usize = 2 * 128;
/// Frames whose RMS is below this level (dBFS, full scale = 32768) are silence for the VAD.
pub const GATE_DBFS: f64 = -50.0;
/// Gated frames in a row (1 s) after which the model's state is reset.
pub const RESET_AFTER_GATED_FRAMES: u32 = 50;

/// Windows (2 s of audio) after which a reset is due during non-speech above the gate.
const RESET_INTERVAL_WINDOWS: u32 = (2 * SAMPLE_RATE as usize).div_ceil(WINDOW_SAMPLES) as u32;
/// A due reset happens after this many windows in a row scoring below [`RESET_MAX_PROB`].
const RESET_LOW_WINDOWS: u32 = 5;
const RESET_MAX_PROB: f32 = 0.1;

/// Errors loading or running the in-process models (VAD and end of turn).
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The embedded ONNX model could not be parsed, typed or optimized.
    #[error("loading model {model}: {message}")]
    Load {
        model: &'static str,
        message: String,
    },
    /// Inference failed (bad input shape, internal error).
    #[error("running model {model}: {message}")]
    Run {
        model: &'static str,
        message: String,
    },
}

impl ModelError {
    pub(crate) fn load(model: &'static str, e: impl std::fmt::Display) -> ModelError {
        ModelError::Load {
            model,
            message: format!("{e:#}"),
        }
    }
    pub(crate) fn run(model: &'static str, e: impl std::fmt::Display) -> ModelError {
        ModelError::Run {
            model,
            message: format!("{e:#}"),
        }
    }
}

const MODEL_NAME: &str = "silero_vad";

/// The loaded and optimized Silero VAD model, shared by all calls (cheap to clone).
#[derive(Clone)]
pub struct VadModel {
    plan: Arc<TypedSimplePlan>,
    /// Plan states of ended calls, handed to the next calls: the pool grows to the most calls
    /// ever live at once and no further.
    ///
    /// Why not a fresh state per call: tract 0.23 keeps each plan state's matmul scratch (a
    /// kernel buffer and per-node store descriptors) in a thread-local map keyed by the state's
    /// session id, and frees an entry only on the thread that drops the state. A call's task
    /// runs on whichever runtime thread polls it, so every call left entries behind on the
    /// other threads: the 30-minute soak's live heap grew ~1 MiB a minute, linearly with the
    /// calls (heaptrack, BENCHMARKS.md "Reliability"). Reused states keep their session ids,
    /// so the maps stop at one entry per thread and pooled state.
    spare: Arc<Mutex<Vec<TypedSimpleState>>>,
}

impl std::fmt::Debug for VadModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VadModel").finish_non_exhaustive()
    }
}

impl VadModel {
    /// Parse the embedded model, fix its input shapes for 8 kHz windows and optimize it
    /// (about 0.1 s; do it once per process).
    pub fn load() -> Result<VadModel, ModelError> {
        let err = |e: TractError| ModelError::load(MODEL_NAME, e);
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(SILERO_ONNX))
            .map_err(err)?;
        let names: Vec<&str> = model
            .input_outlets()
            .map_err(err)?
            .iter()
            .map(|o| model.node(o.node).name.as_str())
            .collect();
        if names != ["input", "state", "sr"] {
            return Err(ModelError::load(
                MODEL_NAME,
                format!("unexpected inputs {names:?}"),
            ));
        }
        model
            .set_input_fact(0, f32::fact([1, CONTEXT_SAMPLES + WINDOW_SAMPLES]).into())
            .map_err(err)?;
        model
            .set_input_fact(1, f32::fact([2, 1, 128]).into())
            .map_err(err)?;
        // `sr` is fixed to 8000: declared as a known value, so that the analysis knows the
        // condition of every ONNX `If` in the graph (the 8/16 kHz branch, and shape checks
        // inside it), then replaced by a constant in the typed model.
        model
            .set_input_fact(2, tensor0(i64::from(SAMPLE_RATE)).into())
            .map_err(err)?;
        inline_ifs(&mut model).map_err(err)?;
        let mut typed = model.into_typed().map_err(err)?;
        let sr_outlet = typed.input_outlets().map_err(err)?[2];
        let mut patch = TypedModelPatch::default();
        let konst = patch
            .add_const("sr_8000", tensor0(i64::from(SAMPLE_RATE)))
            .map_err(err)?;
        patch.shunt_outside(&typed, sr_outlet, konst).map_err(err)?;
        patch.apply(&mut typed).map_err(err)?;
        let inputs = typed.input_outlets().map_err(err)?[..2].to_vec();
        typed.set_input_outlets(&inputs).map_err(err)?;
        let plan = typed
            .into_optimized()
            .map_err(err)?
            .into_runnable()
            .map_err(err)?;
        Ok(VadModel {
            plan,
            spare: Arc::default(),
        })
    }

    /// The pool of spare plan states. A panic while it was held cannot have left it
    /// inconsistent (a push or a pop), so a poisoned lock is used as it is.
    fn pool(&self) -> std::sync::MutexGuard<'_, Vec<TypedSimpleState>> {
        self.spare.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A plan state for a new call: an ended call's, or a new one when none is spare.
    fn take_state(&self) -> Option<TypedSimpleState> {
        let spare = self.pool().pop();
        spare.or_else(|| self.plan.spawn().ok())
    }

    /// Plan states kept for the next calls (for tests).
    #[cfg(test)]
    fn spare_states(&self) -> usize {
        self.pool().len()
    }

    /// Run the model once: `input` is [`CONTEXT_SAMPLES`] of context followed by
    /// [`WINDOW_SAMPLES`] new samples, as f32 in -1..1; `state` ([`STATE_LEN`] values) is
    /// replaced by the updated state. Returns the speech probability of the window.
    pub fn infer(&self, input: &[f32], state: &mut [f32]) -> Result<f32, ModelError> {
        self.infer_with(None, input, state)
    }

    /// [`VadModel::infer`] through a reusable per-call plan state (saves its allocations).
    fn infer_with(
        &self,
        runner: Option<&mut TypedSimpleState>,
        input: &[f32],
        state: &mut [f32],
    ) -> Result<f32, ModelError> {
        let err = |e: TractError| ModelError::run(MODEL_NAME, e);
        if input.len() != CONTEXT_SAMPLES + WINDOW_SAMPLES || state.len() != STATE_LEN {
            return Err(ModelError::run(
                MODEL_NAME,
                format!(
                    "expected {} input samples and {STATE_LEN} state values, got {} and {}",
                    CONTEXT_SAMPLES + WINDOW_SAMPLES,
                    input.len(),
                    state.len()
                ),
            ));
        }
        let x = Tensor::from_shape(&[1, CONTEXT_SAMPLES + WINDOW_SAMPLES], input).map_err(err)?;
        let s = Tensor::from_shape(&[2, 1, 128], state).map_err(err)?;
        let inputs = tvec!(x.into(), s.into());
        let out = match runner {
            Some(runner) => runner.run(inputs),
            None => self.plan.run(inputs),
        }
        .map_err(err)?;
        let prob = *out[0]
            .try_as_plain_ram()
            .map_err(err)?
            .as_slice::<f32>()
            .map_err(err)?
            .first()
            .ok_or_else(|| ModelError::run(MODEL_NAME, "empty output"))?;
        let new_state = out[1]
            .try_as_plain_ram()
            .map_err(err)?
            .as_slice::<f32>()
            .map_err(err)?;
        if new_state.len() != STATE_LEN {
            return Err(ModelError::run(MODEL_NAME, "unexpected state size"));
        }
        state.copy_from_slice(new_state);
        Ok(prob)
    }
}

/// Replace every ONNX `If` of `model` by the branch its condition selects, until none is left.
///
/// tract 0.23 types both branches of an `If` (and requires them to agree), but Silero's graph
/// has `If`s on shape checks whose branches differ in rank (squeeze or not), and several `If`s
/// in one graph trip a duplicate node name when typed. Once the inputs' shapes and `sr` are
/// fixed, the analysis knows every condition, so each `If` is inlined here, before typing.
fn inline_ifs(model: &mut InferenceModel) -> TractResult<()> {
    use tract_onnx::ops::logic::If;
    loop {
        model.analyse(false)?;
        let Some(id) = model
            .eval_order()?
            .into_iter()
            .find(|&id| model.node(id).op_is::<If>())
        else {
            return Ok(());
        };
        let node = model.node(id);
        let op = node.op_as::<If>().context("not an If")?;
        let cond = model
            .outlet_fact(node.inputs[0])?
            .value
            .concretize()
            .with_context(|| format!("condition of {} is not known at load time", node.name))?
            .cast_to_scalar::<bool>()?;
        // The If's inputs are its condition then the names both branches read from the
        // enclosing graph, sorted and deduplicated (as tract-onnx builds them).
        let names = |body: &InferenceModel| -> TractResult<Vec<String>> {
            Ok(body
                .input_outlets()?
                .iter()
                .map(|o| body.node(o.node).name.clone())
                .collect())
        };
        let mut union = names(&op.then_body)?;
        union.extend(names(&op.else_body)?);
        union.sort();
        union.dedup();
        ensure!(
            union.len() + 1 == node.inputs.len(),
            "unexpected inputs for {}",
            node.name
        );
        let body = if cond { &op.then_body } else { &op.else_body };
        let mut patch = InferenceModelPatch::default();
        let mut mapping: HashMap<OutletId, OutletId> = HashMap::default();
        for (name, outlet) in names(body)?.iter().zip(body.input_outlets()?) {
            let ix = union
                .iter()
                .position(|u| u == name)
                .context("branch input")?
                + 1;
            mapping.insert(*outlet, patch.tap_model(model, node.inputs[ix])?);
        }
        for body_id in body.eval_order()? {
            let body_node = body.node(body_id);
            if body.input_outlets()?.iter().any(|o| o.node == body_id) {
                continue;
            }
            let facts = body_node.outputs.iter().map(|o| o.fact.clone()).collect();
            let new_id = patch.add_node(
                format!("{}/{}", node.name, body_node.name),
                body_node.op.clone(),
                facts,
            )?;
            for (slot, input) in body_node.inputs.iter().enumerate() {
                let from = *mapping.get(input).context("unmapped branch edge")?;
                patch.add_edge(from, InletId::new(new_id, slot))?;
            }
            for slot in 0..body_node.outputs.len() {
                mapping.insert(OutletId::new(body_id, slot), OutletId::new(new_id, slot));
            }
        }
        for (slot, output) in body.output_outlets()?.iter().enumerate() {
            let by = *mapping.get(output).context("unmapped branch output")?;
            patch.shunt_outside(model, OutletId::new(id, slot), by)?;
        }
        patch.apply(model)?;
        model.compact()?;
    }
}

// Shared across calls / moved into a call's task.
const _: fn() = || {
    fn shared<T: Clone + Send + Sync>() {}
    fn per_call<T: Send>() {}
    shared::<VadModel>();
    per_call::<Vad>();
};

/// Per-call VAD state: the model's recurrent state, its context and a partial window.
#[derive(Debug)]
pub struct Vad {
    model: VadModel,
    /// The model's plan state, reused from run to run and, through the model's pool, from
    /// call to call. It carries nothing from one run to the next: the recurrent state is an
    /// input (`state`), cleared per call.
    runner: Option<TypedSimpleState>,
    state: Vec<f32>,
    /// `CONTEXT_SAMPLES` of context followed by up to `WINDOW_SAMPLES` new samples (f32).
    window: Vec<f32>,
    /// Whether any frame that contributed to `window` was above the gate.
    window_loud: bool,
    last_prob: f32,
    gated_run: u32,
    windows_since_reset: u32,
    low_windows: u32,
    model_runs: u64,
    errors: u64,
}

/// Sum of squares (in sample units) under which a 160-sample frame is gated.
fn gate_energy(len: usize) -> f64 {
    let rms = 32768.0 * 10f64.powf(GATE_DBFS / 20.0);
    rms * rms * len as f64
}

impl Vad {
    /// Fresh per-call state over a shared model.
    pub fn new(model: &VadModel) -> Vad {
        let mut window = Vec::with_capacity(CONTEXT_SAMPLES + WINDOW_SAMPLES + FRAME_SAMPLES);
        window.resize(CONTEXT_SAMPLES, 0.0);
        Vad {
            model: model.clone(),
            runner: model.take_state(),
            state: vec![0.0; STATE_LEN],
            window,
            window_loud: false,
            last_prob: 0.0,
            gated_run: 0,
            windows_since_reset: 0,
            low_windows: 0,
            model_runs: 0,
            errors: 0,
        }
    }

    /// Feed one 20 ms frame of 8 kHz 16-bit audio (160 samples; other lengths are accepted);
    /// returns the speech probability 0..1 for the most recent model window. Frames below the
    /// energy gate return 0.0 without running the model (their samples still enter the window,
    /// which is skipped if every frame in it was gated).
    pub fn push_frame(&mut self, frame: &[i16]) -> f32 {
        if frame.is_empty() {
            return 0.0;
        }
        let energy: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        let gated = energy < gate_energy(frame.len());
        if gated {
            self.gated_run = self.gated_run.saturating_add(1);
            if self.gated_run == RESET_AFTER_GATED_FRAMES {
                self.reset_model_state();
            }
        } else {
            self.gated_run = 0;
            self.window_loud = true;
        }
        let mut rest = frame;
        while !rest.is_empty() {
            let room = CONTEXT_SAMPLES + WINDOW_SAMPLES - self.window.len();
            let (take, more) = rest.split_at(room.min(rest.len()));
            self.window
                .extend(take.iter().map(|&s| f32::from(s) / 32768.0));
            rest = more;
            if self.window.len() == CONTEXT_SAMPLES + WINDOW_SAMPLES {
                self.finish_window();
                // The rest of this frame goes into the next window.
                self.window_loud = !gated && !rest.is_empty();
            }
        }
        if gated {
            0.0
        } else {
            self.last_prob
        }
    }

    /// Score (or skip) the complete window and start the next one with its context.
    fn finish_window(&mut self) {
        let mut reset = false;
        if self.window_loud {
            match self
                .model
                .infer_with(self.runner.as_mut(), &self.window, &mut self.state)
            {
                Ok(p) => {
                    self.model_runs += 1;
                    self.last_prob = p;
                }
                Err(e) => {
                    // Never expected (shapes are fixed); count and log once, and report silence.
                    self.errors += 1;
                    if self.errors == 1 {
                        tracing::warn!(error = %e, "silero vad inference failed");
                    }
                    self.last_prob = 0.0;
                }
            }
            self.windows_since_reset += 1;
            if self.last_prob < RESET_MAX_PROB {
                self.low_windows += 1;
            } else {
                self.low_windows = 0;
            }
            reset = self.windows_since_reset >= RESET_INTERVAL_WINDOWS
                && self.low_windows >= RESET_LOW_WINDOWS;
        } else {
            self.last_prob = 0.0;
        }
        self.window
            .copy_within(WINDOW_SAMPLES..WINDOW_SAMPLES + CONTEXT_SAMPLES, 0);
        self.window.truncate(CONTEXT_SAMPLES);
        self.window_loud = false;
        if reset {
            // After the shift, so that the next window starts from a zero context.
            self.reset_model_state();
        }
    }

    /// Clear the recurrent state and the context, as at the start of a stream.
    fn reset_model_state(&mut self) {
        self.state.fill(0.0);
        // Keep the samples of the partial window; zero its context.
        self.window[..CONTEXT_SAMPLES].fill(0.0);
        self.windows_since_reset = 0;
        self.low_windows = 0;
    }

    /// How many times the neural model actually ran (for CPU accounting).
    pub fn model_runs(&self) -> u64 {
        self.model_runs
    }
}

impl Drop for Vad {
    /// The call is over: its plan state goes back to the model's pool (see `VadModel::spare`).
    fn drop(&mut self) {
        if let Some(runner) = self.runner.take() {
            self.model.pool().push(runner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(samples: &[i16]) -> impl Iterator<Item = &[i16]> {
        samples.chunks_exact(FRAME_SAMPLES)
    }

    /// Deterministic white noise (xorshift) with the given RMS in sample units.
    fn white_noise(len: usize, rms: f64) -> Vec<i16> {
        let mut x: u32 = 0x9e37_79b9;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                // Uniform in -1..1 has RMS 1/sqrt(3).
                let u = f64::from(x) / f64::from(u32::MAX) * 2.0 - 1.0;
                (u * rms * 3f64.sqrt()).round() as i16
            })
            .collect()
    }

    fn fixture(name: &str) -> Vec<i16> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let (channels, rate, mut data) =
            switchboard_media::audio::read_wav(&path).expect("read fixture");
        assert_eq!((channels, rate), (1, SAMPLE_RATE));
        data.remove(0)
    }

    fn frame_dbfs(frame: &[i16]) -> f64 {
        switchboard_media::audio::dbfs(switchboard_media::audio::rms(frame))
    }

    /// An ended call's plan state serves the next call (on another thread too) and scores
    /// exactly as a new one; the pool holds at most as many states as calls were ever live.
    #[test]
    fn plan_states_are_reused_across_calls_without_changing_scores() {
        let model = VadModel::load().expect("load silero");
        let mut speech = fixture("open_tomorrow_complete_8k.wav");
        speech.extend(white_noise(8000, 3000.0));
        speech.extend(fixture("open_tomorrow_cut_off_8k.wav"));
        let score =
            |vad: &mut Vad| -> Vec<f32> { frames(&speech).map(|f| vad.push_frame(f)).collect() };

        // The first call runs on a thread of its own and ends there.
        let first = std::thread::scope(|s| {
            s.spawn(|| {
                let mut vad = Vad::new(&model);
                score(&mut vad)
            })
            .join()
            .expect("first call")
        });
        assert_eq!(model.spare_states(), 1, "the ended call's state is kept");
        assert!(
            first.iter().any(|&p| p > 0.5),
            "speech was scored as speech"
        );

        // The next call takes it (none left spare) and scores the same audio identically:
        // nothing of the first call carried over.
        let mut second = Vad::new(&model);
        assert_eq!(model.spare_states(), 0);
        assert_eq!(score(&mut second), first);

        // Three calls at once: one new state is made; when they end, three are spare, and
        // two later calls leave one.
        let (third, fourth) = (Vad::new(&model), Vad::new(&model));
        drop((second, third, fourth));
        assert_eq!(model.spare_states(), 3);
        let (a, b) = (Vad::new(&model), Vad::new(&model));
        assert_eq!(model.spare_states(), 1);
        drop((a, b));
        assert_eq!(model.spare_states(), 3);

        // A clone of the model shares the pool (calls get a clone each).
        let clone = model.clone();
        let c = Vad::new(&clone);
        assert_eq!(model.spare_states(), 2);
        drop(c);
        assert_eq!(model.spare_states(), 3);
    }

    #[test]
    fn speech_scores_high_silence_and_noise_low() {
        let model = VadModel::load().expect("load silero");

        // Speech (espeak-ng fixtures, 8 kHz): the clearly voiced frames score as speech
        // (measured: 183 of 184 frames above -30 dBFS score > 0.5).
        let mut speech = fixture("open_tomorrow_complete_8k.wav");
        speech.extend(fixture("open_tomorrow_cut_off_8k.wav"));
        let mut vad = Vad::new(&model);
        let (mut voiced, mut voiced_speech) = (0, 0);
        for frame in frames(&speech) {
            let p = vad.push_frame(frame);
            assert!((0.0..=1.0).contains(&p));
            if frame_dbfs(frame) > -30.0 {
                voiced += 1;
                if p > 0.5 {
                    voiced_speech += 1;
                }
            }
        }
        let frac = f64::from(voiced_speech) / f64::from(voiced);
        assert!(voiced > 100, "{voiced} voiced frames");
        assert!(frac > 0.8, "only {frac:.2} of voiced frames scored > 0.5");
        assert!(vad.model_runs() > 0);

        // Quiet speech, 20 dB down (about -41 dBFS over the utterance), passes the gate and is
        // still detected (measured: 178 of 184 voiced frames; 183 at full level).
        let mut vad = Vad::new(&model);
        let quiet: Vec<i16> = speech.iter().map(|&s| s / 10).collect();
        let (mut n, mut hit) = (0, 0);
        for (orig, frame) in frames(&speech).zip(frames(&quiet)) {
            let p = vad.push_frame(frame);
            if frame_dbfs(orig) > -30.0 {
                n += 1;
                if p > 0.5 {
                    hit += 1;
                }
            }
        }
        assert!(hit * 10 > n * 8, "quiet speech: {hit} of {n}");

        // Digital silence and line noise under the gate: 0.0 and the model never runs.
        let mut vad = Vad::new(&model);
        let quiet = white_noise(8000 * 3, 20.0); // about -64 dBFS
        for frame in frames(&vec![0i16; 8000 * 3]).chain(frames(&quiet)) {
            assert_eq!(vad.push_frame(frame), 0.0);
        }
        assert_eq!(vad.model_runs(), 0);

        // White noise at a moderate level (-30 dBFS) passes the gate but is mostly not speech
        // (measured: no frame of 250 above 0.5, mean 0.02, max 0.07).
        let mut vad = Vad::new(&model);
        let noise = white_noise(8000 * 5, 32768.0 * 10f64.powf(-30.0 / 20.0));
        let probs: Vec<f32> = frames(&noise).map(|f| vad.push_frame(f)).collect();
        let high = probs.iter().filter(|&&p| p > 0.5).count();
        assert!(vad.model_runs() > 100);
        assert!(
            high * 10 < probs.len(),
            "{high} of {} noise frames scored > 0.5",
            probs.len()
        );

        // Speech after the noise (and after a long gated silence) is still detected: the
        // state resets keep the model responsive (measured: 181 of 184).
        let mut after = 0;
        let mut after_speech = 0;
        for frame in frames(&vec![0i16; 8000 * 2]).chain(frames(&speech)) {
            let p = vad.push_frame(frame);
            if frame_dbfs(frame) > -30.0 {
                after += 1;
                if p > 0.5 {
                    after_speech += 1;
                }
            }
        }
        assert!(after_speech * 10 > after * 8, "{after_speech} of {after}");
    }

    #[test]
    fn buffers_frames_into_windows() {
        let model = VadModel::load().expect("load silero");
        let mut vad = Vad::new(&model);
        let tone = switchboard_media::audio::sine(440.0, SAMPLE_RATE, 160 * 16, 8000.0);
        for frame in frames(&tone) {
            vad.push_frame(frame);
        }
        // 16 frames of 160 samples are 10 windows of 256.
        assert_eq!(vad.model_runs(), 10);
        // Odd frame sizes are accepted too.
        vad.push_frame(&tone[..1000]);
        assert_eq!(vad.model_runs(), 13);
    }
}
