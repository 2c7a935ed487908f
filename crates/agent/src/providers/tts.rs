//! Text-to-speech clients. All yield 8 kHz 16-bit mono PCM, streamed in chunks as the service
//! produces them so playback can start at the first one.
//!
//! - [`EspeakTts`]: espeak-ng in a subprocess, offline (one chunk per request).
//! - [`OpenAiTts`]: `POST {base}/audio/speech` with `response_format: "pcm"` (raw 24 kHz
//!   16-bit LE), decimated to 8 kHz by a streaming low-pass FIR ([`Decimate3`]) whose state
//!   carries across network reads, so chunk boundaries are inaudible.
//! - [`ElevenLabsTts`]: `POST {base}/v1/text-to-speech/{voice}/stream?output_format=ulaw_8000`,
//!   raw μ-law at 8 kHz, decoded as it arrives.

use super::llm::{connect_error, http_client, join_url, status_error, timeout_error};
use super::{ProviderError, Tts, TtsRequest};
use bytes::Bytes;
use futures::stream::{self, BoxStream, Stream, StreamExt};
use serde_json::json;
use std::fmt;
use std::time::Duration;
use switchboard_media::g711::G711;

// ---------------------------------------------------------------------------------------------
// espeak-ng

/// Offline TTS with espeak-ng (must be installed).
#[derive(Debug, Clone)]
pub struct EspeakTts {
    default_voice: String,
}

impl EspeakTts {
    /// `default_voice` e.g. "en", "en-us", "de".
    pub fn new(default_voice: impl Into<String>) -> Self {
        Self {
            default_voice: default_voice.into(),
        }
    }

    /// The espeak-ng voice for a request: its voice, else one for its language, else the
    /// default.
    pub fn voice_for(&self, req: &TtsRequest) -> String {
        if let Some(v) = req
            .voice
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            return v.to_string();
        }
        let Some(lang) = req
            .language
            .as_deref()
            .map(|l| l.trim().to_ascii_lowercase().replace('_', "-"))
            .filter(|l| !l.is_empty())
        else {
            return self.default_voice.clone();
        };
        let primary = lang.split('-').next().unwrap_or(&lang).to_string();
        let default_primary = self
            .default_voice
            .split(['-', '_'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if primary == default_primary {
            return self.default_voice.clone();
        }
        // espeak-ng voices that carry a region; everything else goes by its language alone.
        const REGIONAL: &[&str] = &[
            "en-us",
            "en-gb",
            "pt-br",
            "es-419",
            "fr-be",
            "fr-ch",
            "en-029",
            "vi-vn-x-central",
        ];
        if REGIONAL.contains(&lang.as_str()) {
            return lang;
        }
        match primary.as_str() {
            "zh" => "cmn".to_string(),
            "nb" | "no" => "nb".to_string(),
            _ => primary,
        }
    }
}

#[async_trait::async_trait]
impl Tts for EspeakTts {
    async fn synthesize(
        &self,
        req: TtsRequest,
    ) -> Result<BoxStream<'static, Result<Vec<i16>, ProviderError>>, ProviderError> {
        if req.text.trim().is_empty() {
            return Ok(stream::empty().boxed());
        }
        let voice = self.voice_for(&req);
        let pcm = switchboard_media::tts::synthesize_async(&req.text, &voice)
            .await
            .map_err(|e| ProviderError::Local {
                provider: "espeak",
                message: e.to_string(),
            })?;
        Ok(stream::iter([Ok(pcm)]).boxed())
    }

    fn name(&self) -> &'static str {
        "espeak"
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming 24 kHz → 8 kHz.

/// Taps of the anti-alias low-pass (odd, so the delay is a whole number of input samples).
const DECIMATE_TAPS: usize = 95;

/// Streaming decimation by 3 (24 kHz → 8 kHz) through a windowed-sinc low-pass at 3.5 kHz. The
/// filter history carries across [`Decimate3::process`] calls, so feeding a signal in pieces of
/// any size gives exactly the output of feeding it whole.
#[derive(Debug, Clone)]
pub struct Decimate3 {
    taps: Vec<f32>,
    /// The last `taps - 1` inputs followed by unconsumed ones.
    buf: Vec<f32>,
    /// Index in `buf` of the input sample the next output is aligned to.
    next: usize,
}

impl Default for Decimate3 {
    fn default() -> Self {
        Self::new()
    }
}

impl Decimate3 {
    pub fn new() -> Self {
        let n = DECIMATE_TAPS;
        let cutoff = 3500.0 / 24000.0; // cycles per input sample
        let mid = (n - 1) as f64 / 2.0;
        let mut taps: Vec<f64> = (0..n)
            .map(|i| {
                let x = i as f64 - mid;
                let sinc = if x == 0.0 {
                    2.0 * cutoff
                } else {
                    (2.0 * std::f64::consts::PI * cutoff * x).sin() / (std::f64::consts::PI * x)
                };
                // Blackman window.
                let t = 2.0 * std::f64::consts::PI * i as f64 / (n - 1) as f64;
                sinc * (0.42 - 0.5 * t.cos() + 0.08 * (2.0 * t).cos())
            })
            .collect();
        let sum: f64 = taps.iter().sum();
        for t in &mut taps {
            *t /= sum; // unity gain at DC
        }
        Self {
            taps: taps.into_iter().map(|t| t as f32).collect(),
            buf: vec![0.0; n - 1],
            next: n - 1,
        }
    }

    /// The filter's delay in output (8 kHz) samples.
    pub fn delay(&self) -> usize {
        (self.taps.len() - 1) / 2 / 3
    }

    /// Filters `input` (24 kHz) and appends the 8 kHz samples it completes to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        let n = self.taps.len();
        self.buf.extend(input.iter().map(|&s| f32::from(s)));
        while self.next < self.buf.len() {
            let window = &self.buf[self.next + 1 - n..=self.next];
            let acc: f32 = window.iter().zip(&self.taps).map(|(x, t)| x * t).sum();
            out.push(acc.round().clamp(-32768.0, 32767.0) as i16);
            self.next += 3;
        }
        let consumed = self.next + 1 - n;
        self.buf.drain(..consumed);
        self.next -= consumed;
    }

    /// Ends the signal: pushes the filter's tail (half its length of zeros) through.
    pub fn flush(&mut self, out: &mut Vec<i16>) {
        let zeros = vec![0i16; (self.taps.len() - 1) / 2];
        self.process(&zeros, out);
    }
}

/// The response body as a stream of byte chunks that fails (and ends) if the service stays
/// silent for `idle` or the connection breaks.
fn body_chunks(
    response: reqwest::Response,
    provider: &'static str,
    idle: Duration,
    secrets: Vec<String>,
) -> impl Stream<Item = Result<Bytes, ProviderError>> + Send + 'static {
    let body = response.bytes_stream();
    stream::unfold(Some((body, secrets)), move |state| async move {
        let (mut body, secrets) = state?;
        match tokio::time::timeout(idle, body.next()).await {
            Err(_) => Some((Err(timeout_error(provider, idle)), None)),
            Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some((body, secrets)))),
            Ok(Some(Err(e))) => Some((Err(connect_error(provider, e, &secrets)), None)),
            Ok(None) => None,
        }
    })
}

/// Streams raw 24 kHz 16-bit LE PCM bytes as 8 kHz chunks (a sample split across two reads is
/// joined; the decimator's state carries across reads).
fn pcm24k_to_8k_chunks<S>(body: S) -> impl Stream<Item = Result<Vec<i16>, ProviderError>> + Send
where
    S: Stream<Item = Result<Bytes, ProviderError>> + Send + Unpin,
{
    struct State<S> {
        body: S,
        odd: Option<u8>,
        dec: Decimate3,
        over: bool,
    }
    let st = State {
        body,
        odd: None,
        dec: Decimate3::new(),
        over: false,
    };
    stream::unfold(st, |mut st| async move {
        while !st.over {
            match st.body.next().await {
                Some(Ok(bytes)) => {
                    let mut samples = Vec::with_capacity(bytes.len() / 2 + 1);
                    let mut rest: &[u8] = &bytes;
                    if let Some(lo) = st.odd.take() {
                        if let Some((&hi, tail)) = rest.split_first() {
                            samples.push(i16::from_le_bytes([lo, hi]));
                            rest = tail;
                        } else {
                            st.odd = Some(lo);
                        }
                    }
                    let pairs = rest.chunks_exact(2);
                    if let [b] = pairs.remainder() {
                        st.odd = Some(*b);
                    }
                    samples.extend(pairs.map(|p| i16::from_le_bytes([p[0], p[1]])));
                    let mut out = Vec::with_capacity(samples.len() / 3 + 1);
                    st.dec.process(&samples, &mut out);
                    if !out.is_empty() {
                        return Some((Ok(out), st));
                    }
                }
                Some(Err(e)) => {
                    st.over = true;
                    return Some((Err(e), st));
                }
                None => {
                    st.over = true;
                    let mut out = Vec::new();
                    st.dec.flush(&mut out);
                    if !out.is_empty() {
                        return Some((Ok(out), st));
                    }
                }
            }
        }
        None
    })
}

// ---------------------------------------------------------------------------------------------
// OpenAI

/// OpenAI's speech API (`tts-1`, `gpt-4o-mini-tts`), or any server speaking it with raw `pcm`
/// output (e.g. speaches, Kokoro-FastAPI). `base_url` like `https://api.openai.com/v1`.
#[derive(Clone)]
pub struct OpenAiTts {
    base_url: String,
    api_key: Option<String>,
    model: String,
    default_voice: String,
    timeout: Duration,
    client: reqwest::Client,
}

impl fmt::Debug for OpenAiTts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiTts")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("default_voice", &self.default_voice)
            .finish_non_exhaustive()
    }
}

impl OpenAiTts {
    const PROVIDER: &'static str = "openai";

    /// `model` e.g. "gpt-4o-mini-tts" or "tts-1"; `default_voice` e.g. "alloy".
    pub fn new(
        base_url: impl Into<String>,
        api_key: Option<String>,
        model: impl Into<String>,
        default_voice: impl Into<String>,
    ) -> Self {
        let timeout = Duration::from_secs(15);
        Self {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            api_key: api_key.filter(|k| !k.is_empty()),
            model: model.into(),
            default_voice: default_voice.into(),
            timeout,
            client: http_client(timeout),
        }
    }

    /// Bound on connecting, on receiving the response headers and on any silence in the audio
    /// stream (default 15 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.client = http_client(timeout);
        self
    }
}

#[async_trait::async_trait]
impl Tts for OpenAiTts {
    async fn synthesize(
        &self,
        req: TtsRequest,
    ) -> Result<BoxStream<'static, Result<Vec<i16>, ProviderError>>, ProviderError> {
        if req.text.trim().is_empty() {
            return Ok(stream::empty().boxed());
        }
        let secrets: Vec<String> = self.api_key.iter().cloned().collect();
        let voice = req
            .voice
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| self.default_voice.clone());
        let body = json!({
            "model": self.model,
            "input": req.text,
            "voice": voice,
            "response_format": "pcm",
        });
        let mut request = self
            .client
            .post(join_url(&self.base_url, "audio/speech"))
            .json(&body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = send(request, Self::PROVIDER, self.timeout, &secrets).await?;
        let body = body_chunks(response, Self::PROVIDER, self.timeout, secrets).boxed();
        Ok(pcm24k_to_8k_chunks(body).boxed())
    }

    fn name(&self) -> &'static str {
        "openai"
    }
}

/// Sends with a bound on the time to the response headers; non-2xx → `Status`.
async fn send(
    request: reqwest::RequestBuilder,
    provider: &'static str,
    timeout: Duration,
    secrets: &[String],
) -> Result<reqwest::Response, ProviderError> {
    let response = match tokio::time::timeout(timeout, request.send()).await {
        Err(_) => return Err(timeout_error(provider, timeout)),
        Ok(Err(e)) => return Err(connect_error(provider, e, secrets)),
        Ok(Ok(r)) => r,
    };
    if !response.status().is_success() {
        return Err(status_error(provider, response, secrets).await);
    }
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// ElevenLabs

/// ElevenLabs streaming TTS with μ-law 8 kHz output (no resampling needed).
#[derive(Clone)]
pub struct ElevenLabsTts {
    base_url: String,
    api_key: String,
    model: String,
    default_voice: String,
    timeout: Duration,
    client: reqwest::Client,
}

impl fmt::Debug for ElevenLabsTts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ElevenLabsTts")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("model", &self.model)
            .field("default_voice", &self.default_voice)
            .finish_non_exhaustive()
    }
}

impl ElevenLabsTts {
    /// The default endpoint.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.elevenlabs.io";
    const PROVIDER: &'static str = "elevenlabs";

    /// `base_url` `None` = [`Self::DEFAULT_BASE_URL`]; `model` e.g. "eleven_flash_v2_5";
    /// `default_voice` a voice id.
    pub fn new(
        base_url: Option<String>,
        api_key: impl Into<String>,
        model: impl Into<String>,
        default_voice: impl Into<String>,
    ) -> Self {
        let timeout = Duration::from_secs(15);
        Self {
            base_url: base_url
                .filter(|b| !b.trim().is_empty())
                .unwrap_or_else(|| Self::DEFAULT_BASE_URL.to_string())
                .trim_end_matches('/')
                .to_string(),
            api_key: api_key.into(),
            model: model.into(),
            default_voice: default_voice.into(),
            timeout,
            client: http_client(timeout),
        }
    }

    /// Bound on connecting, on receiving the response headers and on any silence in the audio
    /// stream (default 15 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.client = http_client(timeout);
        self
    }

    fn stream_url(&self, voice: &str) -> Result<reqwest::Url, ProviderError> {
        let bad = |m: String| ProviderError::Local {
            provider: Self::PROVIDER,
            message: m,
        };
        let mut url = reqwest::Url::parse(&self.base_url)
            .map_err(|e| bad(format!("bad base URL {}: {e}", self.base_url)))?;
        url.path_segments_mut()
            .map_err(|_| bad(format!("bad base URL {}", self.base_url)))?
            .pop_if_empty()
            .extend(["v1", "text-to-speech", voice, "stream"]);
        url.query_pairs_mut()
            .append_pair("output_format", "ulaw_8000");
        Ok(url)
    }
}

#[async_trait::async_trait]
impl Tts for ElevenLabsTts {
    async fn synthesize(
        &self,
        req: TtsRequest,
    ) -> Result<BoxStream<'static, Result<Vec<i16>, ProviderError>>, ProviderError> {
        if req.text.trim().is_empty() {
            return Ok(stream::empty().boxed());
        }
        let secrets = vec![self.api_key.clone()];
        let voice = req
            .voice
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| self.default_voice.clone());
        let mut body = json!({"text": req.text, "model_id": self.model});
        if let Some(l) = req.language.filter(|l| !l.trim().is_empty()) {
            // ElevenLabs takes ISO 639-1 ("en", not "en-US").
            let code = l
                .split(['-', '_'])
                .next()
                .unwrap_or(&l)
                .trim()
                .to_ascii_lowercase();
            body["language_code"] = json!(code);
        }
        let mut key = reqwest::header::HeaderValue::from_str(&self.api_key).map_err(|_| {
            ProviderError::Local {
                provider: Self::PROVIDER,
                message: "the API key is not a valid header value".into(),
            }
        })?;
        key.set_sensitive(true);
        let request = self
            .client
            .post(self.stream_url(&voice)?)
            .header("xi-api-key", key)
            .json(&body);
        let response = send(request, Self::PROVIDER, self.timeout, &secrets).await?;
        let chunks = body_chunks(response, Self::PROVIDER, self.timeout, secrets)
            .map(|r| r.map(|bytes| G711::Pcmu.decode(&bytes)));
        Ok(chunks
            .filter(|r| futures::future::ready(!matches!(r, Ok(c) if c.is_empty())))
            .boxed())
    }

    fn name(&self) -> &'static str {
        "elevenlabs"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_media::audio::{sine, tone_ratio};

    #[test]
    fn decimation_is_split_invariant_and_keeps_the_tone() {
        let input = sine(1000.0, 24000, 24000, 10000.0);
        let mut whole = Vec::new();
        let mut d = Decimate3::new();
        d.process(&input, &mut whole);
        d.flush(&mut whole);
        assert_eq!(whole.len(), 8000 + d.delay() + 1);
        for step in [1, 2, 7, 160, 481] {
            let mut d = Decimate3::new();
            let mut pieces = Vec::new();
            for c in input.chunks(step) {
                d.process(c, &mut pieces);
            }
            d.flush(&mut pieces);
            assert_eq!(pieces, whole, "step {step}");
        }
        let steady = &whole[100..7900];
        assert!(tone_ratio(steady, 8000, 1000.0) > 0.99);
        // Gain ~1 in the pass band (a 10000-peak sine has an RMS of 7071).
        let rms = switchboard_media::audio::rms(steady);
        assert!((6950.0..7200.0).contains(&rms), "rms {rms}");
        // 5 kHz (would alias to 3 kHz) is stopped.
        let high = sine(5000.0, 24000, 24000, 10000.0);
        let mut out = Vec::new();
        Decimate3::new().process(&high, &mut out);
        let peak = out[100..].iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(peak < 100, "alias peak {peak}");
    }

    #[test]
    fn espeak_voice_choice() {
        let t = EspeakTts::new("en-us");
        let req = |voice: Option<&str>, lang: Option<&str>| TtsRequest {
            text: "x".into(),
            voice: voice.map(Into::into),
            language: lang.map(Into::into),
        };
        assert_eq!(t.voice_for(&req(None, None)), "en-us");
        assert_eq!(t.voice_for(&req(None, Some("en"))), "en-us");
        assert_eq!(t.voice_for(&req(None, Some("en-GB"))), "en-us");
        assert_eq!(t.voice_for(&req(None, Some("es"))), "es");
        assert_eq!(t.voice_for(&req(None, Some("es-ES"))), "es");
        assert_eq!(t.voice_for(&req(None, Some("pt_BR"))), "pt-br");
        assert_eq!(t.voice_for(&req(Some("de"), Some("es"))), "de");
    }

    #[test]
    fn elevenlabs_url() {
        let t = ElevenLabsTts::new(Some("http://h:1/base/".into()), "k", "m", "v");
        assert_eq!(
            t.stream_url("a b").unwrap().as_str(),
            "http://h:1/base/v1/text-to-speech/a%20b/stream?output_format=ulaw_8000"
        );
    }
}
