//! `/calls` (the AgentVoice filters and sorting in the URL, keyset paging, live rows) and
//! `/calls/{id}` (timeline, recording with the transcript following it, latency, analysis,
//! actions).

use crate::auth::{form, Me};
use crate::html::{csrf_field, duration, esc, json_pre, layout, otime, time, Notice};
use crate::Dash;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::Value;
use switchboard_api::auth::Org;
use switchboard_api::error::{ApiError, ApiResult};
use switchboard_api::extract::QueryMap;
use switchboard_api::listing::{parse_filter, parse_order};
use switchboard_domain::*;
use switchboard_store::{decode_cursor, CallPage};

const PAGE_SIZE: u32 = 50;

/// The listing query from the URL, as the AgentVoice dialect reads it (`phone_number`,
/// `status`, `call_type`, `agent_id`, `campaign_id`, `from`, `to`, `order_by`, `order`) plus a
/// keyset `cursor`. A bare date in `to` means the end of that day.
fn list_query(q: &QueryMap) -> ApiResult<CallListQuery> {
    let mut q = q.clone();
    if let Some(to) = q.get("to").map(str::to_string) {
        if to.len() == 10 {
            q.0.insert("to".into(), format!("{to}T23:59:59.999999"));
        }
    }
    let filter = parse_filter(&q, &["phone_number"])?;
    let (order_by, order) = parse_order(&q, OrderBy::CreatedAt)?;
    let after = match q.get("cursor") {
        Some(c) => {
            let pos = decode_cursor(c)?;
            if pos.order_by != order_by || pos.order != order {
                return Err(ApiError::bad_request(
                    "this page link was made for another sort order; start from the first page",
                ));
            }
            Some(pos)
        }
        None => None,
    };
    Ok(CallListQuery {
        filter,
        order_by,
        order,
        limit: PAGE_SIZE,
        page: Page::After(after),
        with_details: false,
        with_total: false,
    })
}

/// The query string without `cursor` (what the filters say), for links and the live rows.
fn filters_qs(q: &QueryMap) -> String {
    let mut keys: Vec<_> =
        q.0.iter()
            .filter(|(k, v)| *k != "cursor" && !v.is_empty())
            .collect();
    keys.sort();
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(keys)
        .finish()
}

fn rows_html(page: &CallPage) -> String {
    let mut o = String::new();
    for c in &page.calls {
        o.push_str(&format!(
            r#"<tr><td><a href="/calls/{id}">{created}</a></td><td><span class="status s-{status}">{status_label}</span></td><td>{ctype}</td><td>{number}</td><td>{agent}</td><td class="num">{dur}</td><td>{reason}</td></tr>"#,
            id = c.id,
            created = time(c.created_at),
            status = c.status.as_str(),
            status_label = c.status.as_str().replace('_', " "),
            ctype = c.call_type.as_str(),
            number = esc(c.client_number.as_str()),
            agent = esc(c.agent_name.as_deref().unwrap_or("—")),
            dur = duration(c.duration_seconds),
            reason = esc(c.end_reason.as_deref().unwrap_or("")),
        ));
    }
    if page.calls.is_empty() {
        o.push_str(r#"<tr><td colspan="7">No calls match these filters.</td></tr>"#);
    }
    o
}

fn select(
    id: &str,
    label: &str,
    current: Option<&str>,
    options: impl IntoIterator<Item = (String, String)>,
) -> String {
    let mut o = format!(
        r#"<div class="field"><label for="{id}">{label}</label><select id="{id}" name="{id}"><option value="">Any</option>"#
    );
    for (v, text) in options {
        let sel = if current == Some(v.as_str()) {
            " selected"
        } else {
            ""
        };
        o.push_str(&format!(
            r#"<option value="{}"{sel}>{}</option>"#,
            esc(&v),
            esc(&text)
        ));
    }
    o.push_str("</select></div>");
    o
}

fn input(id: &str, label: &str, kind: &str, current: Option<&str>) -> String {
    format!(
        r#"<div class="field"><label for="{id}">{label}</label><input id="{id}" name="{id}" type="{kind}" value="{}"></div>"#,
        esc(current.unwrap_or(""))
    )
}

pub async fn calls_page(State(state): State<Dash>, me: Me, q: QueryMap) -> ApiResult<Response> {
    let store = &state.api.store;
    let agents = store.list::<Agent>(me.org(), None, 200).await?.items;
    let campaigns = store.list::<Campaign>(me.org(), None, 200).await?.items;
    let (page, notice, status) = match list_query(&q) {
        Ok(query) => (
            store.list_calls(me.org(), &query).await?,
            None,
            StatusCode::OK,
        ),
        Err(e) if e.status == StatusCode::BAD_REQUEST => (
            CallPage {
                calls: vec![],
                next_cursor: None,
                total: None,
                has_more: false,
            },
            Some(Notice::error(&e.message)),
            StatusCode::BAD_REQUEST,
        ),
        Err(e) => return Err(e),
    };
    let qs = filters_qs(&q);
    let g = |k: &str| q.get(k);
    let filters = [
        select(
            "status",
            "Status",
            g("status"),
            CallStatus::ALL
                .iter()
                .map(|s| (s.as_str().into(), s.as_str().replace('_', " "))),
        ),
        select(
            "call_type",
            "Call type",
            g("call_type"),
            CallType::ALL
                .iter()
                .map(|s| (s.as_str().into(), s.as_str().into())),
        ),
        select(
            "agent_id",
            "Agent",
            g("agent_id"),
            agents.iter().map(|a| (a.id.to_string(), a.name.clone())),
        ),
        select(
            "campaign_id",
            "Campaign",
            g("campaign_id"),
            campaigns.iter().map(|c| (c.id.to_string(), c.name.clone())),
        ),
        input("phone_number", "Phone number", "tel", g("phone_number")),
        input("from", "From date", "date", g("from")),
        input("to", "To date", "date", g("to")),
        select(
            "order_by",
            "Sort by",
            g("order_by"),
            OrderBy::ALL
                .iter()
                .map(|s| (s.as_str().into(), s.as_str().replace('_', " "))),
        ),
        select(
            "order",
            "Order",
            g("order"),
            [
                ("desc".to_string(), "newest first".to_string()),
                ("asc".to_string(), "oldest first".to_string()),
            ],
        ),
    ]
    .concat();
    let first_page = q.get("cursor").is_none();
    let mut paging = String::new();
    if !first_page {
        paging.push_str(&format!(r#"<a href="/calls?{qs}">First page</a> "#));
    }
    if let Some(c) = &page.next_cursor {
        let sep = if qs.is_empty() { "" } else { "&" };
        let c: String = url::form_urlencoded::byte_serialize(c.as_bytes()).collect();
        paging.push_str(&format!(
            r#"<a href="/calls?{qs}{sep}cursor={c}" rel="next" id="next-page">Next page</a>"#
        ));
    }
    // Live rows: the first page refreshes itself (app.js polls /calls/rows with the same
    // filters); a later page stays put so the reader does not lose their place.
    let live = if first_page {
        format!(r#" data-live="/calls/rows?{}""#, esc(&qs))
    } else {
        String::new()
    };
    let body = format!(
        r#"{notice}<form method="get" action="/calls" class="filters" aria-label="Filter calls">{filters}<div class="actions"><button type="submit">Apply</button> <a href="/calls">Clear</a></div></form>
<div class="table-wrap"><table class="calls"><caption class="sr-only">Calls</caption>
<thead><tr><th scope="col">Created (UTC)</th><th scope="col">Status</th><th scope="col">Type</th><th scope="col">Number</th><th scope="col">Agent</th><th scope="col">Duration</th><th scope="col">End reason</th></tr></thead>
<tbody id="rows"{live}>{rows}</tbody></table></div>
<nav class="paging" aria-label="Pages">{paging}</nav>"#,
        notice = notice.map(|n| n.html()).unwrap_or_default(),
        rows = rows_html(&page),
    );
    Ok((status, layout(&me, "/calls", "Calls", &body)).into_response())
}

/// The first page's rows as an HTML fragment (for the live refresh).
pub async fn calls_rows(State(state): State<Dash>, me: Me, q: QueryMap) -> ApiResult<Response> {
    let query = list_query(&q)?;
    let page = state.api.store.list_calls(me.org(), &query).await?;
    Ok(Html(rows_html(&page)).into_response())
}

fn call_id(s: &str) -> ApiResult<CallId> {
    switchboard_api::v1::parse_call_id(s)
}

fn not_found_page(me: &Me) -> Response {
    (
        StatusCode::NOT_FOUND,
        layout(
            me,
            "/calls",
            "Call not found",
            r#"<p>There is no such call in your organization. <a href="/calls">Back to calls</a></p>"#,
        ),
    )
        .into_response()
}

fn ms_label(ms: u64) -> String {
    format!("{}:{:02}", ms / 60_000, (ms / 1000) % 60)
}

fn transcript_html(turns: &[Value]) -> String {
    let mut o = String::from(r#"<ol class="transcript" id="transcript">"#);
    for t in turns {
        let speaker = t["speaker"].as_str().unwrap_or("?");
        let start = t["start_ms"].as_u64().unwrap_or(0);
        let end = t["end_ms"].as_u64().unwrap_or(start);
        let mut marks = String::new();
        if t["interrupted"].as_bool() == Some(true) {
            marks.push_str(r#" <span class="mark">interrupted</span>"#);
        }
        let text = match t.get("tool") {
            Some(tool) if !tool.is_null() => {
                marks.push_str(r#" <span class="mark tool">tool</span>"#);
                let name = tool["name"].as_str().unwrap_or("tool");
                format!("{name} {}", t["text"].as_str().unwrap_or(""))
            }
            _ => t["text"].as_str().unwrap_or("").to_string(),
        };
        o.push_str(&format!(
            r#"<li><button type="button" class="turn who-{cls}" data-start="{s:.3}" data-end="{e:.3}"><span class="who">{speaker}</span> <span class="at">{at}</span>{marks}<span class="text">{text}</span></button></li>"#,
            cls = esc(speaker),
            s = start as f64 / 1000.0,
            e = end as f64 / 1000.0,
            speaker = esc(speaker),
            at = ms_label(start),
            text = esc(&text),
        ));
    }
    o.push_str("</ol>");
    o
}

/// Voice-to-voice latency per agent reply as horizontal bars (SVG; the numbers are in the text
/// too, for screen readers and for reading exact values).
fn latency_html(metrics: &Value) -> String {
    let turns: Vec<(usize, f64)> = metrics["turns"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    Some((
                        t["turn"].as_u64()? as usize,
                        t["voice_to_voice_ms"].as_f64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    if turns.is_empty() {
        return String::new();
    }
    let max = turns.iter().map(|t| t.1).fold(1.0, f64::max);
    let h = 22 * turns.len() + 4;
    let mut bars = String::new();
    let mut desc = Vec::new();
    for (i, (turn, ms)) in turns.iter().enumerate() {
        let w = (ms / max * 300.0).max(1.0);
        let y = 22 * i + 2;
        bars.push_str(&format!(
            r#"<text x="0" y="{ty}" class="lbl">turn {turn}</text><rect x="70" y="{y}" width="{w:.0}" height="16" class="bar"/><text x="{tx:.0}" y="{ty}" class="lbl">{ms:.0} ms</text>"#,
            ty = y + 13,
            tx = 76.0 + w,
        ));
        desc.push(format!("turn {turn}: {ms:.0} ms"));
    }
    format!(
        r#"<section aria-labelledby="lat-h"><h2 id="lat-h">Latency per turn (voice to voice)</h2><svg class="chart" viewBox="0 0 460 {h}" width="460" height="{h}" role="img" aria-label="{}">{bars}</svg></section>"#,
        esc(&desc.join(", "))
    )
}

pub async fn call_page(
    State(state): State<Dash>,
    me: Me,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let Ok(id) = call_id(&id) else {
        return Ok(not_found_page(&me));
    };
    let call = match state.api.store.get_call(me.org(), id, true).await {
        Ok(c) => c,
        Err(switchboard_store::StoreError::NotFound) => return Ok(not_found_page(&me)),
        Err(e) => return Err(e.into()),
    };
    let d = call.details.clone().unwrap_or_default();
    let live = !call.status.is_final();
    let status_label = call.status.as_str().replace('_', " ");
    // Timeline: created → answered → ended, with the call's own events between.
    let mut tl = format!(
        r#"<li><span class="at">{}</span> created ({})</li>"#,
        time(call.created_at),
        call.call_type
    );
    if let Some(t) = call.started_at {
        tl.push_str(&format!(
            r#"<li><span class="at">{}</span> answered</li>"#,
            time(t)
        ));
    }
    if let Some(Value::Array(events)) = &d.events {
        for e in events {
            let kind = e["type"]
                .as_str()
                .or(e["event"].as_str())
                .unwrap_or("event");
            // Event times are RFC 3339 strings; shown like the others (to the second, UTC).
            let at = e["at"].as_str().or(e["time"].as_str()).unwrap_or("");
            let at = at.get(..19).unwrap_or(at).replace('T', " ");
            let what = match kind {
                "answering-machine-detection" => format!(
                    "answered by {} ({:.0} % sure, decided {:.1} s after answer)",
                    e["answered_by"]
                        .as_str()
                        .unwrap_or("unknown")
                        .replace('_', " "),
                    e["confidence"].as_f64().unwrap_or(0.0) * 100.0,
                    e["decision_ms"].as_f64().unwrap_or(0.0) / 1000.0
                ),
                _ => format!("{kind} {}", compact(e)),
            };
            tl.push_str(&format!(
                r#"<li class="event"><span class="at">{}</span> {}</li>"#,
                esc(&at),
                esc(&what)
            ));
        }
    }
    if let Some(t) = call.ended_at {
        tl.push_str(&format!(
            r#"<li><span class="at">{}</span> ended: <strong>{status_label}</strong>{}{}</li>"#,
            time(t),
            call.sip_code
                .map(|c| format!(", SIP {c}"))
                .unwrap_or_default(),
            call.end_reason
                .as_deref()
                .map(|r| format!(", {}", esc(r)))
                .unwrap_or_default(),
        ));
    } else {
        tl.push_str(&format!(r#"<li>now: <strong>{status_label}</strong></li>"#));
    }
    let recording = match &call.recording {
        Some(r) => {
            let (lanes, stereo) = if r.stereo_key.is_some() {
                (
                    format!(
                        r#"<figure class="lanes"><canvas id="lanes" width="600" height="120" data-src="/calls/{id}/recording.stereo.mp3" aria-hidden="true"></canvas>
<figcaption>Waveforms: caller (top), agent (bottom); click to seek.</figcaption></figure>"#
                    ),
                    format!(
                        r#" · <a href="/calls/{id}/recording.stereo.mp3" download>Download stereo (caller left, agent right)</a>"#
                    ),
                )
            } else {
                (String::new(), String::new())
            };
            format!(
                r#"<audio id="player" controls preload="metadata" src="/calls/{id}/recording.mp3" aria-label="Call recording"></audio>
{lanes}<p class="downloads"><a href="/calls/{id}/recording.mp3" download>Download MP3</a>{stereo}</p>"#
            )
        }
        None => "<p>No recording.</p>".to_string(),
    };
    let transcript = match &d.transcript_formatted {
        Some(Value::Array(turns)) if !turns.is_empty() => transcript_html(turns),
        _ => match &d.transcript {
            Some(t) => format!("<pre>{}</pre>", esc(t)),
            None => "<p>No transcript.</p>".to_string(),
        },
    };
    let mut extra = String::new();
    for (title, v) in [
        ("Analysis", &d.post_call_analysis),
        ("Custom analysis", &d.custom_analysis),
        ("Actions", &d.action_executions),
        ("Action summary", &d.action_summary),
        ("Tool usage", &d.tool_usage),
        ("Metadata", &call.metadata),
        ("Context", &call.context),
    ] {
        if let Some(v) = v {
            extra.push_str(&format!(
                r#"<section><h2>{title}</h2>{}</section>"#,
                json_pre(v)
            ));
        }
    }
    let mut actions = String::new();
    if me.can_change() {
        if live {
            actions.push_str(&format!(
                r#"<form method="post" action="/calls/{id}/hangup">{}<button type="submit" id="hangup">Hang up</button></form>"#,
                csrf_field(&me)
            ));
            if call.status == CallStatus::InProgress {
                actions.push_str(&format!(
                    r#"<form method="post" action="/calls/{id}/transfer" class="transfer">{}<label for="transfer-to">Transfer to</label><input id="transfer-to" name="to" type="text" placeholder="+14155550100 or sip:desk@example.com" required><button type="submit">Transfer</button></form>"#,
                    csrf_field(&me)
                ));
            }
        }
        actions.push_str(&format!(
            r#"<form method="post" action="/calls/{id}/delete" data-confirm="Delete this call, its transcript and its recording?">{}<button type="submit" class="danger" id="delete">Delete call</button></form>"#,
            csrf_field(&me)
        ));
    }
    let body = format!(
        r#"<div class="actions-bar">{actions}</div>
<dl class="summary"{follow}>
<dt>Status</dt><dd><span class="status s-{status}">{status_label}</span></dd>
<dt>Number</dt><dd>{number}</dd>
<dt>Our number</dt><dd>{ours}</dd>
<dt>Agent</dt><dd>{agent}</dd>
<dt>Campaign</dt><dd>{campaign}</dd>
<dt>Duration</dt><dd>{dur}</dd>
<dt>SIP code</dt><dd>{sip}</dd>
<dt>End reason</dt><dd>{reason}</dd>
</dl>
<section aria-labelledby="tl-h"><h2 id="tl-h">Timeline</h2><ol class="timeline">{tl}</ol></section>
<div class="listen">
<section aria-labelledby="rec-h"><h2 id="rec-h">Recording</h2>{recording}</section>
<section aria-labelledby="tr-h"><h2 id="tr-h">Transcript</h2>{transcript}</section>
</div>
{latency}{extra}"#,
        status = call.status.as_str(),
        // A live call's page follows it (app.js reloads when the status changes: the
        // answer brings the transfer form, the end the recording).
        follow = if live {
            format!(r#" data-live-status="{}""#, call.status.as_str())
        } else {
            String::new()
        },
        number = esc(call.client_number.as_str()),
        ours = esc(call
            .agent_phone_number
            .as_ref()
            .map(|p| p.as_str())
            .unwrap_or("—")),
        agent = esc(call.agent_name.as_deref().unwrap_or("—")),
        campaign = esc(call.campaign_name.as_deref().unwrap_or("—")),
        dur = duration(call.duration_seconds),
        sip = call
            .sip_code
            .map(|c| c.to_string())
            .unwrap_or_else(|| "—".into()),
        reason = esc(call.end_reason.as_deref().unwrap_or("—")),
        latency = d
            .latency_metrics
            .as_ref()
            .map(latency_html)
            .unwrap_or_default(),
    );
    let _ = otime;
    Ok(layout(
        &me,
        "/calls",
        &format!("Call {}", call.client_number.as_str()),
        &body,
    )
    .into_response())
}

/// An event object on one line, without the fields already shown.
fn compact(e: &Value) -> String {
    match e {
        Value::Object(m) => m
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "type" | "event" | "at" | "time"))
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

async fn serve_recording(
    state: Dash,
    me: Me,
    id: String,
    suffix: &str,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = call_id(&id)?;
    let mut r = switchboard_api::recording::get_recording(
        State(state.api.clone()),
        Org(me.org()),
        Path(format!("{id}{suffix}")),
        headers,
    )
    .await?;
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        "private, max-age=300".parse().expect("ascii"),
    );
    Ok(r)
}

pub async fn recording(
    State(state): State<Dash>,
    me: Me,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    serve_recording(state, me, id, ".mp3", headers).await
}

pub async fn recording_stereo(
    State(state): State<Dash>,
    me: Me,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    serve_recording(state, me, id, ".stereo.mp3", headers).await
}

pub async fn hangup(
    State(state): State<Dash>,
    me: Me,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    me.check_csrf(&headers, &form(&body))?;
    me.require_change()?;
    let cid = call_id(&id)?;
    switchboard_api::v1::hangup(
        State(state.api.clone()),
        Org(me.org()),
        Path(cid.to_string()),
        headers,
    )
    .await?;
    Ok(Redirect::to(&format!("/calls/{cid}")).into_response())
}

pub async fn transfer(
    State(state): State<Dash>,
    me: Me,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let f = form(&body);
    me.check_csrf(&headers, &f)?;
    me.require_change()?;
    let cid = call_id(&id)?;
    switchboard_api::v1::transfer_call(&state.api, me.org(), cid, f.get("to").cloned()).await?;
    Ok(Redirect::to(&format!("/calls/{cid}")).into_response())
}

pub async fn delete(
    State(state): State<Dash>,
    me: Me,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    me.check_csrf(&headers, &form(&body))?;
    me.require_change()?;
    let cid = call_id(&id)?;
    switchboard_api::v1::delete_call(
        State(state.api.clone()),
        Org(me.org()),
        Path(cid.to_string()),
    )
    .await?;
    Ok(Redirect::to("/calls").into_response())
}
