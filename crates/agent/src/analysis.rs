//! Post-call analysis (issue 10): one LLM request over the finished transcript answers
//! everything the agent asks of its calls — a summary (`call_description`), the caller's
//! sentiment, `call_success` against the agent's `success_criteria`, `structured_data_results`
//! against its `analysis_schema`, and its `analysis_questions` (`custom_analysis`).
//!
//! The expected answer is one JSON object whose JSON Schema is built from the agent's settings
//! ([`AnalysisSpec::answer_schema`]); the model is shown that schema, its answer is checked
//! against it, and an answer that does not match is re-asked once with the errors. A second bad
//! answer is a failure that is recorded, never a result that is invented. Transport failures are
//! [`AnalysisError::Provider`], which the caller retries later.

use crate::providers::{Llm, LlmEvent, LlmRequest, ProviderError};
use futures::StreamExt;
use serde_json::{json, Map, Value};
use switchboard_domain::analysis::{parse_analysis_questions, AnalysisQuestion};
use switchboard_domain::tools::{schema_errors, SchemaCheck};
use switchboard_domain::{Agent, Timestamp};

/// The sentiments `user_sentiment` takes.
pub const SENTIMENTS: [&str; 4] = ["positive", "neutral", "negative", "unknown"];

/// What the agent asks of its calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnalysisSpec {
    pub success_criteria: Option<String>,
    pub analysis_schema: Option<Value>,
    pub questions: Vec<AnalysisQuestion>,
}

impl AnalysisSpec {
    /// The agent's settings (checked when it was saved; questions that no longer parse are
    /// dropped rather than failing the analysis).
    pub fn from_agent(agent: Option<&Agent>) -> AnalysisSpec {
        let Some(a) = agent else {
            return AnalysisSpec::default();
        };
        AnalysisSpec {
            success_criteria: a.success_criteria.clone().filter(|s| !s.trim().is_empty()),
            analysis_schema: a.analysis_schema.clone().filter(Value::is_object),
            questions: a
                .analysis_questions
                .as_ref()
                .and_then(|q| parse_analysis_questions(q).ok())
                .unwrap_or_default(),
        }
    }

    /// The JSON Schema of the whole answer.
    pub fn answer_schema(&self) -> Value {
        let mut props = Map::new();
        let mut required = vec![json!("call_description"), json!("user_sentiment")];
        props.insert(
            "call_description".into(),
            json!({"type": "string", "minLength": 1, "description": "Two or three sentences: who called, what they wanted, how it ended."}),
        );
        props.insert(
            "user_sentiment".into(),
            json!({"enum": SENTIMENTS, "description": "The caller's overall sentiment."}),
        );
        if let Some(c) = &self.success_criteria {
            props.insert(
                "call_success".into(),
                json!({"type": ["boolean", "null"], "description": format!("Did the call meet this goal: {c}? null if the conversation does not tell.")}),
            );
            props.insert(
                "call_success_reason".into(),
                json!({"type": "string", "description": "One sentence: why."}),
            );
            required.push(json!("call_success"));
            required.push(json!("call_success_reason"));
        }
        if let Some(s) = &self.analysis_schema {
            props.insert("structured_data".into(), s.clone());
            required.push(json!("structured_data"));
        }
        if !self.questions.is_empty() {
            let mut q = Map::new();
            for question in &self.questions {
                let mut schema = question.answer_schema();
                schema["description"] = json!(question.question);
                q.insert(question.name.clone(), schema);
            }
            let names: Vec<Value> = self.questions.iter().map(|q| json!(q.name)).collect();
            props.insert(
                "custom_analysis".into(),
                json!({"type": "object", "properties": q, "required": names}),
            );
            required.push(json!("custom_analysis"));
        }
        json!({"type": "object", "properties": props, "required": required})
    }

    /// The chat messages that ask for the analysis of `transcript`.
    pub fn messages(&self, transcript: &str) -> Vec<Value> {
        let schema = serde_json::to_string_pretty(&self.answer_schema()).unwrap_or_default();
        let system = format!(
            "You analyse finished phone calls between an AI voice agent and a caller. Read the \
             transcript and answer with ONE JSON object, and nothing else, that matches this \
             JSON Schema:\n{schema}\n\nJudge only from the transcript. Where it does not tell, \
             answer null (or \"unknown\" for the sentiment); never invent facts."
        );
        vec![
            json!({"role": "system", "content": system}),
            json!({"role": "user", "content": format!("Transcript:\n{transcript}")}),
        ]
    }

    /// Parses and checks the model's answer (a JSON object, possibly fenced or with prose
    /// around it).
    pub fn parse(&self, text: &str) -> Result<Value, String> {
        let v =
            json_object_in(text).ok_or_else(|| "the answer contains no JSON object".to_string())?;
        schema_errors(&self.answer_schema(), &v).map_err(|e| match e {
            SchemaCheck::Unusable(e) => format!("the analysis schema is unusable: {e}"),
            SchemaCheck::Invalid(e) => format!("the answer does not match the schema: {e}"),
        })?;
        Ok(v)
    }
}

/// The first `{` to the last `}` of a text, if that parses as a JSON object. Models wrap
/// JSON in code fences or a sentence despite being asked not to.
pub fn json_object_in(text: &str) -> Option<Value> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    if end < start {
        return None;
    }
    serde_json::from_str::<Value>(&text[start..=end])
        .ok()
        .filter(Value::is_object)
}

/// A finished analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub call_description: String,
    pub call_success: Option<bool>,
    pub structured_data: Option<Value>,
    pub custom_analysis: Option<Value>,
    /// `post_call_analysis`: the whole answer, with the model and when.
    pub post_call_analysis: Value,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalysisError {
    /// The LLM could not be reached or failed: worth retrying later.
    #[error("{0}")]
    Provider(ProviderError),
    /// The LLM answered twice with something that does not match the schema: final.
    #[error("{0}")]
    Invalid(String),
}

/// Asks the LLM for the analysis of `transcript`; re-asks once if the answer does not match.
pub async fn analyze(
    llm: &dyn Llm,
    model: &str,
    spec: &AnalysisSpec,
    transcript: &str,
) -> Result<Analysis, AnalysisError> {
    let mut messages = spec.messages(transcript);
    let mut last_error = String::new();
    for round in 0..2 {
        let text = complete(llm, model, messages.clone(), 1500)
            .await
            .map_err(AnalysisError::Provider)?;
        match spec.parse(&text) {
            Ok(v) => return Ok(analysis_from(v, model, round + 1)),
            Err(e) => {
                last_error = e.clone();
                messages.push(json!({"role": "assistant", "content": text}));
                messages.push(json!({"role": "user", "content": format!(
                    "That answer is not usable: {e}. Answer again with only the JSON object."
                )}));
            }
        }
    }
    Err(AnalysisError::Invalid(last_error))
}

fn analysis_from(v: Value, model: &str, asked: u32) -> Analysis {
    let mut whole = v.clone();
    whole["model"] = json!(model);
    whole["analyzed_at"] = json!(Timestamp::now());
    whole["status"] = json!("completed");
    whole["requests"] = json!(asked);
    Analysis {
        call_description: v["call_description"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        call_success: v.get("call_success").and_then(Value::as_bool),
        structured_data: v.get("structured_data").cloned(),
        custom_analysis: v.get("custom_analysis").cloned(),
        post_call_analysis: whole,
    }
}

/// One non-interactive completion: the streamed tokens joined.
pub(crate) async fn complete(
    llm: &dyn Llm,
    model: &str,
    messages: Vec<Value>,
    max_tokens: u32,
) -> Result<String, ProviderError> {
    let req = LlmRequest {
        model: model.to_string(),
        messages,
        tools: Vec::new(),
        temperature: Some(0.0),
        max_tokens: Some(max_tokens),
    };
    let mut stream = llm.stream(req).await?;
    let mut text = String::new();
    while let Some(ev) = stream.next().await {
        match ev? {
            LlmEvent::Token(t) => text.push_str(&t),
            LlmEvent::ToolCall { .. } => {}
            LlmEvent::Done { .. } => return Ok(text),
        }
    }
    Err(ProviderError::Protocol {
        provider: "llm",
        message: "stream ended without a finish".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> AnalysisSpec {
        AnalysisSpec {
            success_criteria: Some("the caller booked an appointment".into()),
            analysis_schema: Some(json!({"type": "object", "properties": {
                "date": {"type": "string"}}, "required": ["date"]})),
            questions: parse_analysis_questions(&json!([
                "What did the caller want?",
                {"name": "callback", "question": "Wants a callback?", "type": "boolean"}
            ]))
            .unwrap(),
        }
    }

    #[test]
    fn a_matching_answer_is_taken_even_when_fenced() {
        let text =
            "```json\n{\"call_description\": \"Booked.\", \"user_sentiment\": \"positive\", \
            \"call_success\": true, \"call_success_reason\": \"Booked for Monday.\", \
            \"structured_data\": {\"date\": \"Monday\"}, \
            \"custom_analysis\": {\"q1\": \"a booking\", \"callback\": false}}\n```";
        let v = spec().parse(text).unwrap();
        let a = analysis_from(v, "m", 1);
        assert_eq!(a.call_success, Some(true));
        assert_eq!(a.structured_data, Some(json!({"date": "Monday"})));
        assert_eq!(a.custom_analysis.unwrap()["callback"], json!(false));
        assert_eq!(a.post_call_analysis["model"], "m");
    }

    #[test]
    fn answers_that_break_the_schema_are_refused_with_the_reason() {
        let s = spec();
        let e = s
            .parse(r#"{"call_description": "x", "user_sentiment": "happy"}"#)
            .unwrap_err();
        assert!(e.contains("does not match"), "{e}");
        let e = s.parse("I think it went well.").unwrap_err();
        assert!(e.contains("no JSON object"), "{e}");
        // structured data must follow the agent's schema
        let e = s
            .parse(
                r#"{"call_description": "x", "user_sentiment": "neutral", "call_success": null,
                "call_success_reason": "?", "structured_data": {}, "custom_analysis": {"q1": null, "callback": null}}"#,
            )
            .unwrap_err();
        assert!(e.contains("date"), "{e}");
    }

    #[test]
    fn a_plain_agent_asks_only_for_summary_and_sentiment() {
        let schema = AnalysisSpec::default().answer_schema();
        assert_eq!(
            schema["required"],
            json!(["call_description", "user_sentiment"])
        );
        assert!(schema["properties"].get("call_success").is_none());
    }
}
