//! Speech-to-text clients.
//!
//! - [`OpenAiStt`]: per utterance, over the OpenAI transcription API (`POST
//!   {base}/audio/transcriptions`), which OpenAI, Groq and the faster-whisper servers (speaches,
//!   faster-whisper-server) speak. The session buffers each utterance between the VAD's
//!   `SpeechStart` and `SpeechEnd` (plus a little audio from before the start) and uploads it as
//!   a WAV.
//! - [`DeepgramStt`]: one streaming WebSocket per session (`{base}/v1/listen`), μ-law audio up,
//!   interim and final results down.

use super::llm::{connect_error, error_message, http_client, join_url, redact, status_error};
use super::{ProviderError, Stt, SttEvent, SttInput, SttOptions, SttSession, Word};
use futures::stream::{FuturesOrdered, StreamExt};
use futures::SinkExt;
use serde_json::Value;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use switchboard_media::g711::G711;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// The rate of the audio a session receives.
pub const STT_RATE: u32 = 8000;
/// Audio kept from before `SpeechStart` and prepended to the utterance (the VAD fires a little
/// after the first phoneme).
pub const PRE_ROLL_MS: u64 = 300;
/// Longest utterance buffered for one transcription; later audio of the same utterance is
/// dropped (bounds memory on a line the VAD never hears end).
pub const MAX_UTTERANCE_SECS: u64 = 120;

const INPUT_CAPACITY: usize = 1024;
const EVENT_CAPACITY: usize = 256;

fn samples_to_ms(samples: u64) -> u64 {
    samples * 1000 / u64::from(STT_RATE)
}

fn secs_to_ms(v: &Value) -> u64 {
    (v.as_f64().unwrap_or(0.0).max(0.0) * 1000.0).round() as u64
}

/// A 16-bit mono PCM WAV of `samples` at `rate`.
pub fn wav_bytes(samples: &[i16], rate: u32) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut w = Vec::with_capacity(44 + samples.len() * 2);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * 2).to_le_bytes()); // byte rate
    w.extend_from_slice(&2u16.to_le_bytes()); // block align
    w.extend_from_slice(&16u16.to_le_bytes()); // bits
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        w.extend_from_slice(&s.to_le_bytes());
    }
    w
}

/// "en-US" → "en": the transcription APIs take ISO-639-1 codes.
fn iso639_1(language: &str) -> String {
    language
        .split(['-', '_'])
        .next()
        .unwrap_or(language)
        .trim()
        .to_ascii_lowercase()
}

// ---------------------------------------------------------------------------------------------
// OpenAI-compatible, per utterance.

/// Per-utterance transcription over the OpenAI API (OpenAI, Groq, speaches /
/// faster-whisper-server). `base_url` is the API root with its version
/// (`https://api.openai.com/v1`, `https://api.groq.com/openai/v1`, `http://localhost:8000/v1`).
#[derive(Clone)]
pub struct OpenAiStt {
    base_url: String,
    api_key: Option<String>,
    model: String,
    timeout: Duration,
    client: reqwest::Client,
}

impl fmt::Debug for OpenAiStt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiStt")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl OpenAiStt {
    /// `model` e.g. "whisper-1", "gpt-4o-transcribe", "whisper-large-v3-turbo" (Groq),
    /// "Systran/faster-whisper-small" (speaches). `timeout` bounds each transcription request.
    pub fn new(
        base_url: impl Into<String>,
        api_key: Option<String>,
        model: impl Into<String>,
        timeout: Duration,
    ) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            api_key: api_key.filter(|k| !k.is_empty()),
            model: model.into(),
            timeout,
            client: http_client(timeout),
        }
    }
}

/// Everything one transcription request needs (cheap to clone into each request future).
#[derive(Clone)]
struct Transcriber {
    url: String,
    api_key: Option<String>,
    model: String,
    timeout: Duration,
    client: reqwest::Client,
    language: Option<String>,
    prompt: Option<String>,
}

impl Transcriber {
    const PROVIDER: &'static str = "openai";

    async fn transcribe(self, samples: Vec<i16>, offset_ms: u64) -> SttEvent {
        if samples.is_empty() {
            return SttEvent::Final {
                text: String::new(),
                words: Vec::new(),
            };
        }
        match self.request(samples, offset_ms).await {
            Ok(ev) => ev,
            Err(e) => SttEvent::Error(e),
        }
    }

    async fn request(&self, samples: Vec<i16>, offset_ms: u64) -> Result<SttEvent, ProviderError> {
        let secrets: Vec<String> = self.api_key.iter().cloned().collect();
        let file = reqwest::multipart::Part::bytes(wav_bytes(&samples, STT_RATE))
            .file_name("utterance.wav")
            .mime_str("audio/wav")
            .map_err(|e| ProviderError::Local {
                provider: Self::PROVIDER,
                message: e.to_string(),
            })?;
        let mut form = reqwest::multipart::Form::new()
            .part("file", file)
            .text("model", self.model.clone())
            .text("response_format", "verbose_json")
            .text("timestamp_granularities[]", "word");
        if let Some(l) = self
            .language
            .as_deref()
            .map(iso639_1)
            .filter(|l| !l.is_empty())
        {
            form = form.text("language", l);
        }
        if let Some(p) = self.prompt.clone().filter(|p| !p.trim().is_empty()) {
            form = form.text("prompt", p);
        }
        let mut req = self
            .client
            .post(&self.url)
            .timeout(self.timeout)
            .multipart(form);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| connect_error(Self::PROVIDER, e, &secrets))?;
        if !resp.status().is_success() {
            return Err(status_error(Self::PROVIDER, resp, &secrets).await);
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| connect_error(Self::PROVIDER, e, &secrets))?;
        parse_transcription(&body, offset_ms).map_err(|message| ProviderError::Protocol {
            provider: Self::PROVIDER,
            message: redact(&message, &secrets),
        })
    }
}

/// Parses a `verbose_json` (or plain `json`) transcription; word times are shifted by
/// `offset_ms`, the utterance's start in the stream.
fn parse_transcription(body: &[u8], offset_ms: u64) -> Result<SttEvent, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "transcription is not JSON ({e}): {}",
            error_message(body).chars().take(100).collect::<String>()
        )
    })?;
    let text = v
        .get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| "transcription has no text".to_string())?
        .trim()
        .to_string();
    // `words[]` at the top (OpenAI, Groq, speaches); some servers only nest them in segments.
    let list: Vec<&Value> = match v.get("words").and_then(Value::as_array) {
        Some(ws) => ws.iter().collect(),
        None => v
            .get("segments")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.get("words").and_then(Value::as_array))
            .flatten()
            .collect(),
    };
    let words = list
        .into_iter()
        .filter_map(|w| {
            Some(Word {
                word: w.get("word")?.as_str()?.trim().to_string(),
                start_ms: offset_ms + secs_to_ms(&w["start"]),
                end_ms: offset_ms + secs_to_ms(&w["end"]),
            })
        })
        .collect();
    Ok(SttEvent::Final { text, words })
}

type Pending = Pin<Box<dyn Future<Output = SttEvent> + Send>>;

/// The per-utterance session state: pre-roll ring, current utterance, stream clock.
struct UtteranceBuffer {
    pre_roll: VecDeque<i16>,
    pre_roll_len: usize,
    /// Samples received since the session opened.
    clock: u64,
    /// (start sample, samples) of the utterance being buffered.
    current: Option<(u64, Vec<i16>)>,
}

impl UtteranceBuffer {
    fn new() -> Self {
        let pre_roll_len = (PRE_ROLL_MS * u64::from(STT_RATE) / 1000) as usize;
        Self {
            pre_roll: VecDeque::with_capacity(pre_roll_len + 320),
            pre_roll_len,
            clock: 0,
            current: None,
        }
    }

    fn audio(&mut self, samples: &[i16]) {
        if let Some((_, buf)) = &mut self.current {
            let max = (MAX_UTTERANCE_SECS * u64::from(STT_RATE)) as usize;
            let room = max.saturating_sub(buf.len());
            buf.extend_from_slice(&samples[..samples.len().min(room)]);
        }
        self.pre_roll.extend(samples.iter().copied());
        let excess = self.pre_roll.len().saturating_sub(self.pre_roll_len);
        self.pre_roll.drain(..excess);
        self.clock += samples.len() as u64;
    }

    fn start(&mut self) {
        if self.current.is_none() {
            let start = self.clock - self.pre_roll.len() as u64;
            self.current = Some((start, self.pre_roll.iter().copied().collect()));
        }
    }

    /// Ends the utterance: (start in ms, samples), or `None` if none was started.
    fn end(&mut self) -> Option<(u64, Vec<i16>)> {
        self.current
            .take()
            .map(|(start, buf)| (samples_to_ms(start), buf))
    }
}

impl Stt for OpenAiStt {
    fn open(&self, opts: SttOptions) -> SttSession {
        let (input_tx, mut input_rx) = mpsc::channel::<SttInput>(INPUT_CAPACITY);
        let (events_tx, events_rx) = mpsc::channel::<SttEvent>(EVENT_CAPACITY);
        let transcriber = Transcriber {
            url: join_url(&self.base_url, "audio/transcriptions"),
            api_key: self.api_key.clone(),
            model: self.model.clone(),
            timeout: self.timeout,
            client: self.client.clone(),
            language: opts.language,
            prompt: opts.prompt,
        };
        tokio::spawn(async move {
            let mut buffer = UtteranceBuffer::new();
            // Requests run concurrently with audio intake; results come out in utterance order.
            // They are polled by this task, so closing the session cancels them.
            let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
            let mut input_open = true;
            loop {
                if !input_open && pending.is_empty() {
                    break;
                }
                tokio::select! {
                    msg = input_rx.recv(), if input_open => match msg {
                        Some(SttInput::Audio(samples)) => buffer.audio(&samples),
                        Some(SttInput::SpeechStart) => buffer.start(),
                        Some(SttInput::SpeechEnd) => {
                            if let Some((offset_ms, samples)) = buffer.end() {
                                pending.push_back(Box::pin(
                                    transcriber.clone().transcribe(samples, offset_ms),
                                ));
                            }
                        }
                        None => input_open = false,
                    },
                    Some(event) = pending.next(), if !pending.is_empty() => {
                        if events_tx.send(event).await.is_err() {
                            break;
                        }
                    }
                    _ = events_tx.closed() => break,
                }
            }
        });
        SttSession {
            input: input_tx,
            events: events_rx,
        }
    }

    fn name(&self) -> &'static str {
        "openai"
    }
}

// ---------------------------------------------------------------------------------------------
// Deepgram, streaming.

/// Streaming recognition over Deepgram's live WebSocket API. `base_url` defaults to
/// `wss://api.deepgram.com` (`https://`/`http://` are mapped to `wss://`/`ws://`).
#[derive(Clone)]
pub struct DeepgramStt {
    base_url: String,
    api_key: String,
    model: String,
    keepalive: Duration,
    connect_timeout: Duration,
}

impl fmt::Debug for DeepgramStt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeepgramStt")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl DeepgramStt {
    /// The default endpoint.
    pub const DEFAULT_BASE_URL: &'static str = "wss://api.deepgram.com";
    const PROVIDER: &'static str = "deepgram";

    /// `base_url` `None` = [`Self::DEFAULT_BASE_URL`]; `model` e.g. "nova-2", "nova-3".
    pub fn new(
        base_url: Option<String>,
        api_key: impl Into<String>,
        model: impl Into<String>,
    ) -> Self {
        let base = base_url
            .filter(|b| !b.trim().is_empty())
            .unwrap_or_else(|| Self::DEFAULT_BASE_URL.to_string());
        let base = base.trim_end_matches('/');
        let base = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            base.to_string()
        };
        Self {
            base_url: base,
            api_key: api_key.into(),
            model: model.into(),
            keepalive: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// How long the socket may go without audio before a `KeepAlive` is sent (default 5 s;
    /// Deepgram closes an idle stream after about 10 s).
    pub fn with_keepalive(mut self, every: Duration) -> Self {
        self.keepalive = every;
        self
    }

    /// Bound on opening the WebSocket (default 10 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The `/v1/listen` URL for these options.
    pub fn listen_url(&self, opts: &SttOptions) -> String {
        let mut params: Vec<(&str, String)> = vec![
            ("encoding", "mulaw".into()),
            ("sample_rate", STT_RATE.to_string()),
            ("channels", "1".into()),
            ("interim_results", "true".into()),
            ("punctuate", "true".into()),
            ("model", self.model.clone()),
        ];
        if let Some(l) = opts.language.as_deref().filter(|l| !l.trim().is_empty()) {
            params.push(("language", l.trim().to_string()));
        }
        if let Some(p) = &opts.prompt {
            // Nova-3 takes key terms; earlier models take keywords.
            let key = if self.model.starts_with("nova-3") {
                "keyterm"
            } else {
                "keywords"
            };
            for term in p
                .split([',', '\n', ';'])
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .take(50)
            {
                params.push((key, term.to_string()));
            }
        }
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        format!("{}/v1/listen?{}", self.base_url, query.join("&"))
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Parses one Deepgram message into an event (Results only; other types are ignored).
fn parse_deepgram(text: &str) -> Option<SttEvent> {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Some(SttEvent::Error(ProviderError::Protocol {
                provider: DeepgramStt::PROVIDER,
                message: format!("malformed message: {e}"),
            }))
        }
    };
    match v.get("type").and_then(Value::as_str) {
        Some("Results") => {}
        Some("Error") => {
            return Some(SttEvent::Error(ProviderError::Protocol {
                provider: DeepgramStt::PROVIDER,
                message: error_message(text.as_bytes()),
            }))
        }
        _ => return None,
    }
    let alt = v.pointer("/channel/alternatives/0")?;
    let transcript = alt
        .get("transcript")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string();
    let is_final = v.get("is_final").and_then(Value::as_bool).unwrap_or(false);
    let from_finalize = v
        .get("from_finalize")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !is_final {
        return (!transcript.is_empty()).then_some(SttEvent::Interim { text: transcript });
    }
    // An empty final is noise, except the answer to our Finalize: the conversation is waiting
    // for it to end the turn.
    if transcript.is_empty() && !from_finalize {
        return None;
    }
    let words = alt
        .get("words")
        .and_then(Value::as_array)
        .map(|ws| {
            ws.iter()
                .filter_map(|w| {
                    let word = w
                        .get("punctuated_word")
                        .or_else(|| w.get("word"))
                        .and_then(Value::as_str)?;
                    Some(Word {
                        word: word.to_string(),
                        start_ms: secs_to_ms(&w["start"]),
                        end_ms: secs_to_ms(&w["end"]),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some(SttEvent::Final {
        text: transcript,
        words,
    })
}

fn ws_error(e: tokio_tungstenite::tungstenite::Error, secrets: &[String]) -> ProviderError {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Http(resp) => {
            let status = resp.status();
            let mut message = resp
                .headers()
                .get("dg-error")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .unwrap_or_default();
            if message.is_empty() {
                message = resp
                    .body()
                    .as_deref()
                    .map(error_message)
                    .unwrap_or_default();
            }
            if message.is_empty() {
                message = status.canonical_reason().unwrap_or("error").to_string();
            }
            ProviderError::Status {
                provider: DeepgramStt::PROVIDER,
                status: status.as_u16(),
                message: redact(&message, secrets),
            }
        }
        other => ProviderError::Connect {
            provider: DeepgramStt::PROVIDER,
            message: redact(&other.to_string(), secrets),
        },
    }
}

impl Stt for DeepgramStt {
    fn open(&self, opts: SttOptions) -> SttSession {
        let (input_tx, input_rx) = mpsc::channel::<SttInput>(INPUT_CAPACITY);
        let (events_tx, events_rx) = mpsc::channel::<SttEvent>(EVENT_CAPACITY);
        let url = self.listen_url(&opts);
        let key = self.api_key.clone();
        let keepalive = self.keepalive;
        let connect_timeout = self.connect_timeout;
        tokio::spawn(async move {
            if let Err(e) =
                deepgram_session(url, key, keepalive, connect_timeout, input_rx, &events_tx).await
            {
                let _ = events_tx.send(SttEvent::Error(e)).await;
            }
        });
        SttSession {
            input: input_tx,
            events: events_rx,
        }
    }

    fn name(&self) -> &'static str {
        "deepgram"
    }
}

/// Runs one Deepgram stream until the input closes (then `CloseStream` and drain the last
/// results), the events receiver is dropped, or the socket fails (returned as the error).
async fn deepgram_session(
    url: String,
    key: String,
    keepalive: Duration,
    connect_timeout: Duration,
    mut input: mpsc::Receiver<SttInput>,
    events: &mpsc::Sender<SttEvent>,
) -> Result<(), ProviderError> {
    let secrets = vec![key.clone()];
    let local = |message: String| ProviderError::Local {
        provider: DeepgramStt::PROVIDER,
        message,
    };
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| local(format!("bad Deepgram URL: {e}")))?;
    let mut auth = HeaderValue::from_str(&format!("Token {key}"))
        .map_err(|_| local("the API key is not a valid header value".into()))?;
    auth.set_sensitive(true);
    request.headers_mut().insert("Authorization", auth);
    let (ws, _) = tokio::time::timeout(connect_timeout, tokio_tungstenite::connect_async(request))
        .await
        .map_err(|_| ProviderError::Connect {
            provider: DeepgramStt::PROVIDER,
            message: format!("no answer within {} ms", connect_timeout.as_millis()),
        })?
        .map_err(|e| ws_error(e, &secrets))?;
    let (mut sink, mut stream) = ws.split();
    let mut input_open = true;
    let mut last_sent = tokio::time::Instant::now();
    // Once the input closes: how long to wait for the final results after CloseStream.
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    let send_err = |e| ws_error(e, &secrets);
    loop {
        let keepalive_at = last_sent + keepalive;
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            msg = input.recv(), if input_open => match msg {
                Some(SttInput::Audio(samples)) => {
                    if !samples.is_empty() {
                        sink.send(Message::Binary(G711::Pcmu.encode(&samples).into()))
                            .await
                            .map_err(send_err)?;
                        last_sent = tokio::time::Instant::now();
                    }
                }
                Some(SttInput::SpeechStart) => {}
                Some(SttInput::SpeechEnd) => {
                    sink.send(Message::text(r#"{"type":"Finalize"}"#))
                        .await
                        .map_err(send_err)?;
                    last_sent = tokio::time::Instant::now();
                }
                None => {
                    input_open = false;
                    drain_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(5));
                    // The socket may already be gone; the drain below notices.
                    let _ = sink.send(Message::text(r#"{"type":"CloseStream"}"#)).await;
                }
            },
            _ = tokio::time::sleep_until(keepalive_at), if input_open => {
                sink.send(Message::text(r#"{"type":"KeepAlive"}"#))
                    .await
                    .map_err(send_err)?;
                last_sent = tokio::time::Instant::now();
            }
            _ = tokio::time::sleep_until(drain_deadline.unwrap_or(far)), if drain_deadline.is_some() => {
                return Ok(());
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    if let Some(ev) = parse_deepgram(text.as_str()) {
                        if events.send(ev).await.is_err() {
                            let _ = sink.send(Message::text(r#"{"type":"CloseStream"}"#)).await;
                            return Ok(());
                        }
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    if input_open {
                        let why = frame
                            .map(|f| format!("{} {}", u16::from(f.code), f.reason))
                            .unwrap_or_else(|| "no reason".into());
                        return Err(ProviderError::Connect {
                            provider: DeepgramStt::PROVIDER,
                            message: format!("stream closed by the server: {}", redact(why.trim(), &secrets)),
                        });
                    }
                    return Ok(());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    if input_open {
                        return Err(ws_error(e, &secrets));
                    }
                    return Ok(());
                }
                None => {
                    if input_open {
                        return Err(ProviderError::Connect {
                            provider: DeepgramStt::PROVIDER,
                            message: "stream ended unexpectedly".into(),
                        });
                    }
                    return Ok(());
                }
            },
            _ = events.closed() => {
                let _ = sink.send(Message::text(r#"{"type":"CloseStream"}"#)).await;
                let _ = sink.close().await;
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_roll_and_offsets() {
        let mut b = UtteranceBuffer::new();
        for _ in 0..50 {
            b.audio(&[1; 160]);
        }
        b.start();
        b.audio(&[2; 160]);
        let (ms, samples) = b.end().unwrap();
        assert_eq!(ms, 1000 - PRE_ROLL_MS);
        assert_eq!(samples.len(), 2400 + 160);
        assert!(samples[..2400].iter().all(|&s| s == 1));
        assert!(b.end().is_none());
        // A start right at the beginning has no pre-roll.
        let mut b = UtteranceBuffer::new();
        b.start();
        b.audio(&[3; 160]);
        assert_eq!(b.end().unwrap(), (0, vec![3; 160]));
    }

    #[test]
    fn transcription_json() {
        let ev = parse_transcription(
            br#"{"text":" Hi there. ","words":[{"word":" Hi","start":0.1,"end":0.25}]}"#,
            700,
        )
        .unwrap();
        assert_eq!(
            ev,
            SttEvent::Final {
                text: "Hi there.".into(),
                words: vec![Word {
                    word: "Hi".into(),
                    start_ms: 800,
                    end_ms: 950
                }]
            }
        );
        let ev = parse_transcription(br#"{"text":""}"#, 0).unwrap();
        assert_eq!(
            ev,
            SttEvent::Final {
                text: String::new(),
                words: vec![]
            }
        );
        assert!(parse_transcription(b"not json", 0).is_err());
    }

    #[test]
    fn deepgram_url() {
        let dg = DeepgramStt::new(Some("https://dg.example/".into()), "k", "nova-2");
        let url = dg.listen_url(&SttOptions {
            language: Some("en-US".into()),
            prompt: Some("Switchboard, Acme Corp".into()),
        });
        assert_eq!(
            url,
            "wss://dg.example/v1/listen?encoding=mulaw&sample_rate=8000&channels=1&interim_results=true&punctuate=true&model=nova-2&language=en-US&keywords=Switchboard&keywords=Acme%20Corp"
        );
    }
}
