//! Provider clients behind one trait each, so the conversation never knows which service it
//! talks to. Every client takes its base URL, so tests point it at a local fake that speaks the
//! real wire protocol, and production points it at OpenAI, Groq, Deepgram, ElevenLabs, a vLLM
//! or llama.cpp server, and so on.
//!
//! Cancellation is by drop: dropping a stream (or the receiver of a session) aborts the HTTP
//! request or closes the WebSocket, which is how barge-in cancels the LLM and TTS.

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;
use tokio::sync::mpsc;

pub mod llm;
pub mod stt;
pub mod tts;

/// A provider failed. The message never contains the API key.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum ProviderError {
    /// Could not connect, or the connection broke.
    #[error("{provider}: connection failed: {message}")]
    Connect {
        provider: &'static str,
        message: String,
    },
    /// The service answered with a non-success status.
    #[error("{provider}: HTTP {status}: {message}")]
    Status {
        provider: &'static str,
        status: u16,
        message: String,
    },
    /// The service answered something we could not understand.
    #[error("{provider}: bad response: {message}")]
    Protocol {
        provider: &'static str,
        message: String,
    },
    /// A local failure (espeak-ng missing, bad configuration).
    #[error("{provider}: {message}")]
    Local {
        provider: &'static str,
        message: String,
    },
}

// ---------------------------------------------------------------------------------------------
// LLM

/// One chat message in the OpenAI shape (`role`, `content`, `tool_calls`, `tool_call_id`).
/// Kept as JSON so tool-call messages round-trip exactly.
pub type ChatMessage = Value;

#[derive(Debug, Clone, Default)]
pub struct LlmRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    /// OpenAI tool definitions (`{"type":"function","function":{name,description,parameters}}`).
    pub tools: Vec<Value>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LlmUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LlmEvent {
    /// A piece of the assistant's text, as streamed.
    Token(String),
    /// A complete tool call (its argument fragments joined).
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
    /// The stream ended normally.
    Done {
        finish_reason: Option<String>,
        usage: Option<LlmUsage>,
    },
}

#[async_trait::async_trait]
pub trait Llm: Send + Sync {
    /// Starts a streamed completion. The stream yields tokens and tool calls as they arrive and
    /// ends with `Done`; dropping it cancels the request.
    async fn stream(
        &self,
        req: LlmRequest,
    ) -> Result<BoxStream<'static, Result<LlmEvent, ProviderError>>, ProviderError>;
}

// ---------------------------------------------------------------------------------------------
// STT

/// A recognised word with its times in ms from the start of the stream's audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    pub word: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// What goes into a recognition session: the caller's audio (8 kHz, 16-bit, 20 ms frames, all
/// of it, speech or not) and the VAD's speech marks.
#[derive(Debug, Clone, PartialEq)]
pub enum SttInput {
    Audio(Vec<i16>),
    /// The VAD heard speech start (per-utterance providers start buffering here, with a little
    /// audio from before it).
    SpeechStart,
    /// The caller's turn ended: per-utterance providers transcribe what they buffered,
    /// streaming ones are asked to finalise.
    SpeechEnd,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SttEvent {
    /// A provisional transcript of the speech so far (streaming providers).
    Interim { text: String },
    /// A final transcript of one segment; `words` when the provider gives times.
    Final { text: String, words: Vec<Word> },
    /// The provider failed; the session may go on (per-utterance) or be over (streaming).
    Error(ProviderError),
}

/// Options for one call's recognition.
#[derive(Debug, Clone, Default)]
pub struct SttOptions {
    pub language: Option<String>,
    /// Words to expect (names, products); passed as the transcription prompt or keywords.
    pub prompt: Option<String>,
}

/// A running recognition session: send input, read events. Dropping both ends closes it.
pub struct SttSession {
    pub input: mpsc::Sender<SttInput>,
    pub events: mpsc::Receiver<SttEvent>,
}

pub trait Stt: Send + Sync {
    /// Opens a session for one call (spawns its task on the current runtime).
    fn open(&self, opts: SttOptions) -> SttSession;
    /// The provider's name for metrics and errors ("openai", "deepgram").
    fn name(&self) -> &'static str;
}

// ---------------------------------------------------------------------------------------------
// TTS

#[derive(Debug, Clone, Default)]
pub struct TtsRequest {
    pub text: String,
    /// Voice name/id; `None` = the provider's default.
    pub voice: Option<String>,
    pub language: Option<String>,
}

#[async_trait::async_trait]
pub trait Tts: Send + Sync {
    /// Synthesises `text` as 8 kHz 16-bit mono PCM, streamed in chunks as the provider produces
    /// them (so playback starts at the first chunk); dropping the stream cancels the request.
    async fn synthesize(
        &self,
        req: TtsRequest,
    ) -> Result<BoxStream<'static, Result<Vec<i16>, ProviderError>>, ProviderError>;
    fn name(&self) -> &'static str;
}
