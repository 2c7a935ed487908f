//! The conversation's provider settings (`--llm-*`, `--stt-*`, `--tts-*`) and the providers
//! built from them. Keys are never shown: not in `--help` (env values hidden), not in Debug,
//! not in logs.

use anyhow::bail;
use clap::Args;
use std::sync::Arc;
use std::time::Duration;
use switchboard_agent::driver::Providers;
use switchboard_agent::providers::{llm, stt, tts, Llm, Stt, Tts};

#[derive(Clone, Args)]
pub struct AgentConfig {
    /// Base URL of an OpenAI-compatible chat completions API (OpenAI, Groq, vLLM, llama.cpp,
    /// Ollama's /v1, OpenRouter, Azure). Setting it or --llm-api-key turns the LLM on.
    #[arg(long, env = "SWITCHBOARD_LLM_URL")]
    pub llm_url: Option<String>,
    /// API key of the LLM.
    #[arg(long, env = "SWITCHBOARD_LLM_API_KEY", hide_env_values = true)]
    pub llm_api_key: Option<String>,
    /// Default model (an agent's llm_model overrides it).
    #[arg(long, env = "SWITCHBOARD_LLM_MODEL", default_value = "gpt-4o-mini")]
    pub llm_model: String,
    /// Speech recognition: openai (POST {url}/audio/transcriptions per utterance; OpenAI,
    /// Groq, faster-whisper servers) or deepgram (streaming WebSocket). Setting it, --stt-url
    /// or --stt-api-key turns recognition on.
    #[arg(long, env = "SWITCHBOARD_STT_PROVIDER", value_parser = ["openai", "deepgram"])]
    pub stt_provider: Option<String>,
    /// Base URL of the STT service (default: the provider's).
    #[arg(long, env = "SWITCHBOARD_STT_URL")]
    pub stt_url: Option<String>,
    /// API key of the STT service.
    #[arg(long, env = "SWITCHBOARD_STT_API_KEY", hide_env_values = true)]
    pub stt_api_key: Option<String>,
    /// STT model (default: whisper-1 for openai, nova-2 for deepgram).
    #[arg(long, env = "SWITCHBOARD_STT_MODEL")]
    pub stt_model: Option<String>,
    /// Speech synthesis: espeak (local espeak-ng), openai (POST {url}/audio/speech, streamed
    /// PCM) or elevenlabs (streamed ulaw_8000).
    #[arg(long, env = "SWITCHBOARD_TTS_PROVIDER", default_value = "espeak", value_parser = ["espeak", "openai", "elevenlabs"])]
    pub tts_provider: String,
    /// Base URL of the TTS service (default: the provider's).
    #[arg(long, env = "SWITCHBOARD_TTS_URL")]
    pub tts_url: Option<String>,
    /// API key of the TTS service.
    #[arg(long, env = "SWITCHBOARD_TTS_API_KEY", hide_env_values = true)]
    pub tts_api_key: Option<String>,
    /// TTS model (default: tts-1 for openai, eleven_flash_v2_5 for elevenlabs).
    #[arg(long, env = "SWITCHBOARD_TTS_MODEL")]
    pub tts_model: Option<String>,
    /// Delays before each retry of a post-call analysis whose LLM request failed
    /// (comma-separated, units ms/s/m/h/d); after the last one the failure is recorded.
    // `std::vec::Vec` spelled out: clap would take a plain `Vec` for a repeated flag.
    #[arg(long, env = "SWITCHBOARD_ANALYSIS_RETRY_SCHEDULE", default_value = "10s,1m,5m,30m,2h", value_parser = switchboard_webhooks::parse_schedule)]
    pub analysis_retry_schedule: std::vec::Vec<Duration>,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = |k: &Option<String>| k.as_ref().map(|_| "<set>");
        f.debug_struct("AgentConfig")
            .field("llm_url", &self.llm_url)
            .field("llm_api_key", &key(&self.llm_api_key))
            .field("llm_model", &self.llm_model)
            .field("stt_provider", &self.stt_provider)
            .field("stt_url", &self.stt_url)
            .field("stt_api_key", &key(&self.stt_api_key))
            .field("stt_model", &self.stt_model)
            .field("tts_provider", &self.tts_provider)
            .field("tts_url", &self.tts_url)
            .field("tts_api_key", &key(&self.tts_api_key))
            .field("tts_model", &self.tts_model)
            .field("analysis_retry_schedule", &self.analysis_retry_schedule)
            .finish()
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            llm_url: None,
            llm_api_key: None,
            llm_model: "gpt-4o-mini".into(),
            stt_provider: None,
            stt_url: None,
            stt_api_key: None,
            stt_model: None,
            tts_provider: "espeak".into(),
            tts_url: None,
            tts_api_key: None,
            tts_model: None,
            analysis_retry_schedule: switchboard_webhooks::parse_schedule("10s,1m,5m,30m,2h")
                .unwrap_or_default(),
        }
    }
}

const OPENAI: &str = "https://api.openai.com/v1";

/// A base URL must be http(s) and is echoed in errors without its query (which may hold keys).
fn check_url(setting: &str, url: &str) -> anyhow::Result<String> {
    let u = url.trim();
    if !(u.starts_with("http://")
        || u.starts_with("https://")
        || u.starts_with("ws://")
        || u.starts_with("wss://"))
    {
        let shown: String = u.split('?').next().unwrap_or("").chars().take(80).collect();
        bail!("{setting} must be an http:// or https:// URL, got {shown:?}");
    }
    Ok(u.trim_end_matches('/').to_string())
}

fn nonempty(k: &Option<String>) -> Option<String> {
    k.clone().filter(|k| !k.trim().is_empty())
}

impl AgentConfig {
    /// Builds the providers, checking every setting before anything else starts. Returns
    /// them with a one-line description for the start-up log (no keys).
    /// The providers; webhook tool URLs are checked before each request unless
    /// `allow_private` (`--webhook-allow-private`).
    pub fn providers(
        &self,
        tts_voice: &str,
        allow_private: bool,
    ) -> anyhow::Result<(Providers, String)> {
        let timeout = Duration::from_secs(10);
        let mut said = Vec::new();
        let llm: Option<Arc<dyn Llm>> =
            if self.llm_url.is_some() || nonempty(&self.llm_api_key).is_some() {
                let url = check_url("--llm-url", self.llm_url.as_deref().unwrap_or(OPENAI))?;
                said.push(format!("LLM {} at {url}", self.llm_model));
                Some(Arc::new(llm::OpenAiLlm::new(
                    url,
                    nonempty(&self.llm_api_key),
                    timeout,
                )))
            } else {
                said.push("no LLM (set --llm-url or --llm-api-key): calls greet and listen".into());
                None
            };
        let stt_on = self.stt_provider.is_some()
            || self.stt_url.is_some()
            || nonempty(&self.stt_api_key).is_some();
        let stt: Option<Arc<dyn Stt>> = if !stt_on {
            said.push("no STT (set --stt-provider): nothing the caller says is transcribed".into());
            None
        } else {
            match self.stt_provider.as_deref().unwrap_or("openai") {
                "deepgram" => {
                    let Some(key) = nonempty(&self.stt_api_key) else {
                        bail!("--stt-provider deepgram needs --stt-api-key");
                    };
                    let url = self
                        .stt_url
                        .as_deref()
                        .map(|u| check_url("--stt-url", u))
                        .transpose()?;
                    let model = self.stt_model.clone().unwrap_or_else(|| "nova-2".into());
                    said.push(format!("STT deepgram {model}"));
                    Some(Arc::new(stt::DeepgramStt::new(url, key, model)))
                }
                _ => {
                    let url = check_url("--stt-url", self.stt_url.as_deref().unwrap_or(OPENAI))?;
                    let model = self.stt_model.clone().unwrap_or_else(|| "whisper-1".into());
                    said.push(format!("STT openai {model} at {url}"));
                    Some(Arc::new(stt::OpenAiStt::new(
                        url,
                        nonempty(&self.stt_api_key),
                        model,
                        timeout,
                    )))
                }
            }
        };
        let local: Arc<dyn Tts> = Arc::new(tts::EspeakTts::new(tts_voice));
        let tts: Arc<dyn Tts> = match self.tts_provider.as_str() {
            "openai" => {
                let url = check_url("--tts-url", self.tts_url.as_deref().unwrap_or(OPENAI))?;
                let model = self.tts_model.clone().unwrap_or_else(|| "tts-1".into());
                // `--tts-voice` defaults to an espeak voice; OpenAI's default voice is alloy.
                let voice = if tts_voice == "en" {
                    "alloy"
                } else {
                    tts_voice
                };
                said.push(format!("TTS openai {model} at {url}"));
                Arc::new(tts::OpenAiTts::new(
                    url,
                    nonempty(&self.tts_api_key),
                    model,
                    voice,
                ))
            }
            "elevenlabs" => {
                let Some(key) = nonempty(&self.tts_api_key) else {
                    bail!("--tts-provider elevenlabs needs --tts-api-key");
                };
                let url = self
                    .tts_url
                    .as_deref()
                    .map(|u| check_url("--tts-url", u))
                    .transpose()?;
                let model = self
                    .tts_model
                    .clone()
                    .unwrap_or_else(|| "eleven_flash_v2_5".into());
                // ElevenLabs' stock voice "Rachel" unless a voice id is given.
                let voice = if tts_voice == "en" {
                    "21m00Tcm4TlvDq8ikWAM"
                } else {
                    tts_voice
                };
                said.push(format!("TTS elevenlabs {model}"));
                Arc::new(tts::ElevenLabsTts::new(url, key, model, voice))
            }
            _ => {
                said.push(format!("TTS espeak-ng voice {tts_voice}"));
                local.clone()
            }
        };
        let vad = match switchboard_agent::vad::VadModel::load() {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %e, "Silero VAD did not load; using an energy detector");
                None
            }
        };
        let turn = match switchboard_agent::turn::TurnModel::load() {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %e, "end-of-turn model did not load; using a fixed pause");
                None
            }
        };
        said.push(format!(
            "VAD {}, end of turn {}",
            if vad.is_some() { "silero" } else { "energy" },
            if turn.is_some() {
                "smart-turn-v3"
            } else {
                "fixed pause"
            }
        ));
        Ok((
            Providers {
                llm,
                llm_model: self.llm_model.clone(),
                stt,
                tts,
                local_tts: local,
                vad,
                turn,
                tool_url_guard: Some(Arc::new(move |url: String| {
                    Box::pin(async move {
                        switchboard_webhooks::ssrf::check_url_field("url", &url, allow_private)
                            .await
                            .map(|_| ())
                    })
                })),
                tool_client: Some(switchboard_agent::driver::tool_client()),
            },
            said.join("; "),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Webhook tool URLs are checked again before each request: private and metadata addresses
    /// are refused unless `--webhook-allow-private`.
    #[tokio::test]
    async fn tool_urls_are_guarded_at_call_time() {
        let strict = AgentConfig::default().providers("en", false).unwrap().0;
        let guard = strict.tool_url_guard.expect("a guard");
        let e = guard("http://169.254.169.254/latest".into())
            .await
            .unwrap_err();
        assert!(e.contains("url"), "{e}");
        assert!(guard("http://127.0.0.1:9/x".into()).await.is_err());
        assert!(guard("https://93.184.216.34/x".into()).await.is_ok());
        let open = AgentConfig::default().providers("en", true).unwrap().0;
        assert!(
            (open.tool_url_guard.unwrap())("http://127.0.0.1:9/x".into())
                .await
                .is_ok()
        );
    }

    #[test]
    fn settings_are_checked_and_keys_never_shown() {
        let cfg = AgentConfig {
            llm_api_key: Some("sk-secret-1".into()),
            stt_provider: Some("deepgram".into()),
            stt_api_key: Some("dg-secret-2".into()),
            ..AgentConfig::default()
        };
        let (p, said) = cfg.providers("en", false).unwrap();
        assert!(p.llm.is_some() && p.stt.is_some());
        assert!(
            said.contains("LLM gpt-4o-mini at https://api.openai.com/v1"),
            "{said}"
        );
        let shown = format!("{cfg:?} {said} {p:?}");
        assert!(!shown.contains("secret"), "{shown}");

        let none = AgentConfig::default().providers("en", false).unwrap();
        assert!(none.0.llm.is_none() && none.0.stt.is_none());
        assert!(none.1.contains("no LLM"), "{}", none.1);

        let bad = AgentConfig {
            llm_url: Some("ftp://x?key=sk-secret-3".into()),
            ..AgentConfig::default()
        };
        let e = bad.providers("en", false).unwrap_err().to_string();
        assert_eq!(
            e,
            "--llm-url must be an http:// or https:// URL, got \"ftp://x\""
        );
        let dg = AgentConfig {
            stt_provider: Some("deepgram".into()),
            ..AgentConfig::default()
        };
        assert_eq!(
            dg.providers("en", false).unwrap_err().to_string(),
            "--stt-provider deepgram needs --stt-api-key"
        );
    }
}
