//! Rendering of the canonical call into the JSON each API documents. Pure functions of the
//! domain value, so every dialect reads back the same call identically.

use crate::listing::Shape;
use serde_json::{json, Map, Value};
use switchboard_domain::{Call, CallDetails, Fields, IncludeGroup};

/// Absolute URL of the call's recording, if it has one.
pub fn recording_url(call: &Call, base: &str) -> Option<String> {
    call.recording_path().map(|p| format!("{base}{p}"))
}

/// The heavy fields a shape asks for: `fields=full` adds the full set, each include group
/// adds its own; a field asked for twice appears once.
pub fn heavy_fields(details: Option<&CallDetails>, shape: &Shape, out: &mut Map<String, Value>) {
    let empty = CallDetails::default();
    let d = details.unwrap_or(&empty);
    let val = |v: &Option<Value>| v.clone().unwrap_or(Value::Null);
    let s = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
    let mut put = |k: &str, v: Value| {
        out.insert(k.to_string(), v);
    };
    if shape.fields == Fields::Full {
        put("transcript", s(&d.transcript));
        put("transcript_formatted", val(&d.transcript_formatted));
        put("post_call_analysis", val(&d.post_call_analysis));
        put("call_description", s(&d.call_description));
        put("custom_analysis", val(&d.custom_analysis));
        put("structured_data_results", val(&d.structured_data_results));
        put("notes", val(&d.notes));
        put("action_executions", val(&d.action_executions));
        put("action_summary", val(&d.action_summary));
        put("quality_metrics", val(&d.quality_metrics));
        put("enhanced_context", val(&d.enhanced_context));
    }
    for g in &shape.include {
        match g {
            IncludeGroup::Transcript => {
                put("transcript", s(&d.transcript));
                put("transcript_formatted", val(&d.transcript_formatted));
            }
            IncludeGroup::Metrics => {
                put("quality_metrics", val(&d.quality_metrics));
                put("latency_metrics", val(&d.latency_metrics));
                put("audio_metrics", val(&d.audio_metrics));
            }
            IncludeGroup::Diagnostics => {
                put("turn_events", val(&d.turn_events));
                put("interruptions", val(&d.interruptions));
                put("tool_usage", val(&d.tool_usage));
            }
            IncludeGroup::Actions => {
                put("action_executions", val(&d.action_executions));
                put("action_summary", val(&d.action_summary));
            }
        }
    }
}

fn opt<T: serde::Serialize>(v: &Option<T>) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The `/v1` call object: a superset of the Flyflow call (000: id, agent_id, client_number,
/// context, status, created_at) and the call resource (002: id, agent_id, status, type,
/// contact, phone_id, created_date, recording_url, start_time, end_time, duration,
/// end_reason), plus what Switchboard adds (numbers, metadata, SIP code, recording facts).
pub fn call_v1(call: &Call, base: &str, shape: &Shape) -> Value {
    let contact = match &call.contact {
        Some(c) => json!({
            "id": c.id,
            "created_date": c.created_date,
            "identifier": c.identifier,
            "contact_type": c.contact_type,
            "first_name": c.first_name,
            "last_name": c.last_name,
            "email": c.email,
        }),
        None => Value::Null,
    };
    let mut m = match json!({
        "id": call.id,
        "agent_id": call.agent_id,
        "status": call.status,
        "type": call.call_type,
        "contact": contact,
        "phone_id": call.phone_number_id,
        "created_date": call.created_at,
        "created_at": call.created_at,
        "recording_url": recording_url(call, base),
        "start_time": opt(&call.started_at),
        "end_time": opt(&call.ended_at),
        "duration": call.duration_seconds,
        "end_reason": call.end_reason,
        "client_number": call.client_number,
        "from_number": call.from_number(),
        "to_number": match call.call_type {
            switchboard_domain::CallType::Outbound => Some(&call.client_number),
            switchboard_domain::CallType::Inbound => call.agent_phone_number.as_ref(),
        },
        "context": call.context,
        "metadata": call.metadata,
        "user_speaks_first": call.user_speaks_first,
        "campaign_id": call.campaign_id,
        "sip_code": call.sip_code,
        "answered_by": call.answered_by,
        "went_to_voicemail": call.went_to_voicemail,
        "call_success": call.call_success,
        "recording": call.recording.as_ref().map(|r| json!({
            "url": recording_url(call, base),
            "stereo_url": r.stereo_key.as_ref().map(|_| format!("{base}/v1/call/recording/{}.stereo.mp3", call.id)),
            "duration_ms": r.duration_ms,
            "size_bytes": r.size_bytes,
            "sha256": r.sha256,
            // The recordings disk filled up, or the server stopped mid-call: the file plays
            // up to `duration_ms`, and this says why it stops there.
            "incomplete": r.incomplete_reason.is_some(),
            "incomplete_reason": r.incomplete_reason,
        })),
        "events": call.details.as_ref().and_then(|d| d.events.clone()),
    }) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    heavy_fields(call.details.as_ref(), shape, &mut m);
    Value::Object(m)
}

/// AgentVoice's light call object (004, "Light Payload"): exactly the documented fields.
pub fn call_agentvoice(call: &Call, base: &str, shape: &Shape) -> Value {
    let c = call.contact.as_ref();
    let mut m = match json!({
        "id": call.id,
        "agent_id": call.agent_id,
        "agent_name": call.agent_name,
        "contact_id": c.map(|c| c.id),
        "contact_first_name": c.and_then(|c| c.first_name.clone()),
        "contact_last_name": c.and_then(|c| c.last_name.clone()),
        "contact_email": c.and_then(|c| c.email.clone()),
        "phone_number": call.client_number,
        "phone_number_called_from": call.from_number(),
        "call_type": call.call_type,
        "status": call.status,
        "call_success": call.call_success,
        "went_to_voicemail": call.went_to_voicemail,
        "call_duration": call.duration_seconds,
        "started_at": opt(&call.started_at),
        "ended_at": opt(&call.ended_at),
        "ended_reason": call.end_reason,
        "recording_url": recording_url(call, base),
        "campaign_id": call.campaign_id,
        "campaign_name": call.campaign_name,
        "created_at": call.created_at,
    }) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    heavy_fields(call.details.as_ref(), shape, &mut m);
    Value::Object(m)
}
