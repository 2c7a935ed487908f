//! Overview, the resource lists (agents editable), users and API keys.

use crate::auth::{form, generate_password, hash_password, Me, Role};
use crate::html::{csrf_field, esc, json_pre, layout, otime, time, Notice};
use crate::Dash;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::BTreeMap;
use switchboard_api::error::{ApiError, ApiResult};
use switchboard_domain::*;

const DAYS: i64 = 14;
const DAY_US: i64 = 86_400_000_000;

/// Colours per status (also written as text in the legend; colour is never the only cue).
const STATUS_ORDER: &[&str] = &[
    "completed",
    "transferred",
    "in_progress",
    "dialing",
    "no_answer",
    "failed",
];

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn day_label(day: i64) -> String {
    Timestamp(day * DAY_US)
        .to_datetime()
        .format("%m-%d")
        .to_string()
}

pub async fn overview(State(state): State<Dash>, me: Me) -> ApiResult<Response> {
    let store = &state.api.store;
    let today = Timestamp::now().micros() / DAY_US;
    let first = today - DAYS + 1;
    let since = Timestamp(first * DAY_US);
    let buckets = store.calls_per_day(me.org(), since).await?;
    let live = store.live_call_count(me.org()).await?;
    let lat = store.recent_latencies(me.org(), since, 2000).await?;
    // Per day: status → count.
    let mut per_day: BTreeMap<i64, BTreeMap<String, i64>> = BTreeMap::new();
    let (mut total, mut answered, mut dur_sum, mut dur_n) = (0i64, 0i64, 0i64, 0i64);
    for b in &buckets {
        *per_day
            .entry(b.day)
            .or_default()
            .entry(b.status.clone())
            .or_default() += b.calls;
        total += b.calls;
        if matches!(
            b.status.as_str(),
            "completed" | "transferred" | "in_progress"
        ) {
            answered += b.calls;
            dur_sum += b.duration_seconds;
            dur_n += b.calls;
        }
    }
    let mut lat_day: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (t, m) in &lat {
        if let Some(turns) = m["turns"].as_array() {
            for v in turns.iter().filter_map(|t| t["voice_to_voice_ms"].as_f64()) {
                lat_day.entry(t.micros() / DAY_US).or_default().push(v);
            }
        }
    }
    // Chart 1: stacked bars, calls per day by status.
    let w = 36;
    let chart_h = 160.0;
    let max_day = per_day
        .values()
        .map(|m| m.values().sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut bars = String::new();
    let mut desc = Vec::new();
    for (i, day) in (first..=today).enumerate() {
        let x = 30 + i as i64 * w;
        let mut y = chart_h;
        let counts = per_day.get(&day);
        let mut parts = Vec::new();
        for s in STATUS_ORDER {
            let n = counts.and_then(|m| m.get(*s)).copied().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let h = n as f64 / max_day * (chart_h - 10.0);
            y -= h;
            bars.push_str(&format!(
                r#"<rect x="{x}" y="{y:.1}" width="{bw}" height="{h:.1}" class="st-{s}"><title>{label}: {n} {s}</title></rect>"#,
                bw = w - 8,
                label = day_label(day),
            ));
            parts.push(format!("{n} {s}"));
        }
        bars.push_str(&format!(
            r#"<text x="{tx}" y="{ty}" class="lbl">{}</text>"#,
            day_label(day),
            tx = x,
            ty = chart_h + 14.0
        ));
        if !parts.is_empty() {
            desc.push(format!("{}: {}", day_label(day), parts.join(", ")));
        }
    }
    let legend: String = STATUS_ORDER
        .iter()
        .map(|s| {
            format!(
                r#"<li><svg width="12" height="12" aria-hidden="true"><rect width="12" height="12" class="st-{s}"/></svg> {}</li>"#,
                s.replace('_', " ")
            )
        })
        .collect();
    let svg_w = 30 + DAYS * w;
    let calls_chart = format!(
        r#"<svg class="chart" viewBox="0 0 {svg_w} {vh}" width="{svg_w}" role="img" aria-label="Calls per day by status. {d}">{bars}</svg><ul class="legend">{legend}</ul>"#,
        vh = chart_h + 20.0,
        d = esc(&if desc.is_empty() {
            "No calls in the last 14 days.".to_string()
        } else {
            desc.join("; ")
        })
    );
    // Chart 2: p50 voice-to-voice latency per day.
    let mut p50s: Vec<(i64, f64)> = Vec::new();
    for (day, mut v) in lat_day {
        if let Some(m) = median(&mut v) {
            p50s.push((day, m));
        }
    }
    let lat_max = p50s.iter().map(|p| p.1).fold(1.0, f64::max);
    let mut lbars = String::new();
    for (day, ms) in &p50s {
        let i = day - first;
        let x = 30 + i * w;
        let h = ms / lat_max * (chart_h - 10.0);
        lbars.push_str(&format!(
            r#"<rect x="{x}" y="{y:.1}" width="{bw}" height="{h:.1}" class="bar"><title>{l}: {ms:.0} ms</title></rect><text x="{x}" y="{ty:.1}" class="lbl">{ms:.0}</text>"#,
            y = chart_h - h,
            ty = (chart_h - h - 3.0).max(10.0),
            bw = w - 8,
            l = day_label(*day)
        ));
    }
    for (i, day) in (first..=today).enumerate() {
        lbars.push_str(&format!(
            r#"<text x="{}" y="{}" class="lbl">{}</text>"#,
            30 + i as i64 * w,
            chart_h + 14.0,
            day_label(day)
        ));
    }
    let lat_desc = if p50s.is_empty() {
        "No latency figures in the last 14 days.".to_string()
    } else {
        p50s.iter()
            .map(|(d, ms)| format!("{}: {ms:.0} ms", day_label(*d)))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let lat_chart = format!(
        r#"<svg class="chart" viewBox="0 0 {svg_w} {vh}" width="{svg_w}" role="img" aria-label="Voice-to-voice latency p50 per day. {d}">{lbars}</svg>"#,
        vh = chart_h + 20.0,
        d = esc(&lat_desc)
    );
    let rate = if total > 0 {
        format!("{:.0} %", answered as f64 * 100.0 / total as f64)
    } else {
        "—".into()
    };
    let avg = if dur_n > 0 {
        crate::html::duration(Some(dur_sum / dur_n))
    } else {
        "—".into()
    };
    let body = format!(
        r#"<ul class="tiles">
<li><span class="k">Live calls now</span><span class="v" id="live-now">{live}</span></li>
<li><span class="k">Calls, 14 days</span><span class="v">{total}</span></li>
<li><span class="k">Answer rate</span><span class="v">{rate}</span></li>
<li><span class="k">Average duration (answered)</span><span class="v">{avg}</span></li>
</ul>
<section aria-labelledby="cpd-h"><h2 id="cpd-h">Calls per day by status</h2>{calls_chart}</section>
<section aria-labelledby="lat-h"><h2 id="lat-h">Voice-to-voice latency, p50 per day (ms)</h2>{lat_chart}</section>"#
    );
    Ok(layout(&me, "/overview", "Overview", &body).into_response())
}

/// A plain table page for a resource list.
fn table(me: &Me, active: &str, title: &str, head: &[&str], rows: Vec<Vec<String>>) -> Response {
    let mut o = String::from(r#"<div class="table-wrap"><table><thead><tr>"#);
    for h in head {
        o.push_str(&format!(r#"<th scope="col">{h}</th>"#));
    }
    o.push_str("</tr></thead><tbody>");
    if rows.is_empty() {
        o.push_str(&format!(
            r#"<tr><td colspan="{}">None yet.</td></tr>"#,
            head.len()
        ));
    }
    for r in rows {
        o.push_str("<tr>");
        for c in r {
            o.push_str(&format!("<td>{c}</td>"));
        }
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table></div>");
    layout(me, active, title, &o).into_response()
}

fn opt(s: Option<&str>) -> String {
    esc(s.unwrap_or("—"))
}

pub async fn agents(State(state): State<Dash>, me: Me) -> ApiResult<Response> {
    let items = state
        .api
        .store
        .list::<Agent>(me.org(), None, 200)
        .await?
        .items;
    let rows = items
        .iter()
        .map(|a| {
            vec![
                format!(r#"<a href="/agents/{}">{}</a>"#, a.id, esc(&a.name)),
                opt(a.voice.as_deref()),
                opt(a.llm_model.as_deref()),
                opt(a.language.as_deref()),
                time(a.updated_at),
            ]
        })
        .collect();
    Ok(table(
        &me,
        "/agents",
        "Agents",
        &["Name", "Voice", "Model", "Language", "Updated (UTC)"],
        rows,
    ))
}

/// What was typed into the test-call form and why it was refused.
pub struct TestCallInput<'a> {
    pub to: &'a str,
    pub error: &'a str,
}

pub fn agent_form(
    me: &Me,
    a: &Agent,
    notice: Option<Notice>,
    test_call: Option<TestCallInput<'_>>,
) -> String {
    let ro = if me.can_change() { "" } else { " readonly" };
    let field = |id: &str, label: &str, v: Option<&str>| {
        format!(
            r#"<label for="{id}">{label}</label><input id="{id}" name="{id}" value="{}"{ro}>"#,
            esc(v.unwrap_or(""))
        )
    };
    let save = if me.can_change() {
        r#"<button type="submit">Save</button>"#
    } else {
        r#"<p>You can view this agent; an owner or admin can change it.</p>"#
    };
    // Trying the agent: the preview is for everyone (it changes nothing); the test call places
    // a real call, so owners and admins only.
    let call_form = if me.can_change() {
        let (error, invalid) = match &test_call {
            Some(t) => (
                format!(
                    r#"<p class="notice error" role="alert" id="test-to-error">{}</p>"#,
                    esc(t.error)
                ),
                r#" aria-invalid="true" aria-describedby="test-to-error" autofocus"#,
            ),
            None => (String::new(), ""),
        };
        format!(
            r#"<form method="post" action="/agents/{id}/call" class="card" id="test-call-form">{csrf}<h3>Place a test call</h3>
<p class="hint">Calls the number with this agent, from a number bound to it (else through the default trunk), as <code>POST /v1/call</code> does, then opens the call.</p>{error}
<label for="test-to">Number to call (E.164)</label><input id="test-to" name="to" type="tel" inputmode="tel" autocomplete="off" placeholder="+14155550123" required value="{to}"{invalid}>
<button type="submit" id="test-call">Call this number</button></form>"#,
            id = a.id,
            csrf = csrf_field(me),
            to = esc(test_call.as_ref().map(|t| t.to).unwrap_or("")),
        )
    } else {
        r#"<p class="hint">An owner or admin can place test calls.</p>"#.to_string()
    };
    format!(
        r#"{notice}<form method="post" action="/agents/{id}" class="card edit">{csrf}
{name}
<label for="system_prompt">Prompt</label><textarea id="system_prompt" name="system_prompt" rows="8"{ro}>{prompt}</textarea>
{greeting}{voice}{language}{model}
{save}</form>
<section aria-labelledby="try-h"><h2 id="try-h">Try this agent</h2>
<div class="card" id="preview-card"><h3>Voice preview</h3>
<p class="hint">Speaks the greeting above (unsaved edits included) in the voice and language above, or a short default sentence, with this server's text-to-speech; at most {max} characters.</p>
<p><a href="/agents/{id}/preview.wav" id="preview" class="button">Hear a voice preview</a></p>
<audio id="preview-player" controls preload="none" aria-label="Voice preview" hidden></audio>
<p id="preview-status" role="status" class="hint"></p></div>
{call_form}</section>
<section><h2>Settings</h2>{settings}</section>"#,
        notice = notice.map(|n| n.html()).unwrap_or_default(),
        id = a.id,
        csrf = csrf_field(me),
        name = field("name", "Name", Some(&a.name)),
        prompt = esc(a.system_prompt.as_deref().unwrap_or("")),
        greeting = field("initial_message", "Greeting", a.initial_message.as_deref()),
        voice = field("voice", "Voice", a.voice.as_deref()),
        language = field("language", "Language", a.language.as_deref()),
        model = field("llm_model", "LLM model", a.llm_model.as_deref()),
        max = crate::try_agent::MAX_PREVIEW_CHARS,
        settings = a
            .settings
            .as_ref()
            .map(json_pre)
            .unwrap_or_else(|| "<p>None.</p>".into()),
    )
}

pub fn agent_id(s: &str) -> Result<AgentId, ApiError> {
    AgentId::parse_param("agent id", s).map_err(|_| ApiError::not_found("Agent not found"))
}

pub async fn agent_page(
    State(state): State<Dash>,
    me: Me,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let a: Agent = state
        .api
        .store
        .get(me.org(), agent_id(&id)?)
        .await
        .map_err(|e| ApiError::from_store(e, "Agent"))?;
    let body = agent_form(&me, &a, None, None);
    Ok(layout(&me, "/agents", &format!("Agent {}", a.name), &body).into_response())
}

pub async fn agent_save(
    State(state): State<Dash>,
    me: Me,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let f = form(&body);
    me.check_csrf(&headers, &f)?;
    me.require_change()?;
    let id = agent_id(&id)?;
    let text = |k: &str| -> Option<Option<String>> {
        f.get(k).map(|v| {
            let v = v.trim();
            (!v.is_empty()).then(|| v.to_string())
        })
    };
    let name = match f.get("name") {
        Some(n) => Some(parse_name("name", n, 200).map_err(ApiError::from)?),
        None => None,
    };
    let patch = AgentPatch {
        name,
        system_prompt: text("system_prompt"),
        initial_message: text("initial_message"),
        voice: text("voice"),
        language: text("language"),
        llm_model: text("llm_model"),
        ..Default::default()
    };
    let a: Agent = state
        .api
        .store
        .update(me.org(), id, patch)
        .await
        .map_err(|e| ApiError::from_store(e, "Agent"))?;
    let body = agent_form(&me, &a, Some(Notice::info("Saved.")), None);
    Ok(layout(&me, "/agents", &format!("Agent {}", a.name), &body).into_response())
}

pub async fn numbers(State(state): State<Dash>, me: Me) -> ApiResult<Response> {
    let items = state
        .api
        .store
        .list::<OwnedNumber>(me.org(), None, 200)
        .await?
        .items;
    let rows = items
        .iter()
        .map(|n| {
            vec![
                esc(n.phone_number.as_str()),
                opt(n.label.as_deref()),
                n.agent_id
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "—".into()),
                n.trunk_id
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "—".into()),
            ]
        })
        .collect();
    Ok(table(
        &me,
        "/numbers",
        "Phone numbers",
        &["Number", "Label", "Agent", "Trunk"],
        rows,
    ))
}

pub async fn trunks(State(state): State<Dash>, me: Me) -> ApiResult<Response> {
    let items = state
        .api
        .store
        .list::<Trunk>(me.org(), None, 200)
        .await?
        .items;
    let rows = items
        .iter()
        .map(|t| {
            // Registration state from the engine (registering trunks only); the password is
            // never shown.
            let reg = match state
                .api
                .control
                .as_ref()
                .and_then(|c| c.trunk_registration(t.id))
            {
                Some(v) => {
                    let st = v["state"].as_str().unwrap_or("unknown").to_string();
                    match v["code"].as_i64() {
                        Some(c) => format!("{st} ({c} {})", v["reason"].as_str().unwrap_or("")),
                        None => st,
                    }
                }
                None if t.register => "unknown".into(),
                None => "does not register".into(),
            };
            vec![
                esc(&t.name),
                esc(&format!("{}:{}", t.host, t.port)),
                esc(&format!("{:?}", t.transport).to_lowercase()),
                esc(&reg),
                if t.is_default { "yes" } else { "" }.into(),
            ]
        })
        .collect();
    Ok(table(
        &me,
        "/trunks",
        "SIP trunks",
        &["Name", "Host", "Transport", "Registration", "Default"],
        rows,
    ))
}

pub async fn contacts(State(state): State<Dash>, me: Me) -> ApiResult<Response> {
    let items = state
        .api
        .store
        .list::<Contact>(me.org(), None, 200)
        .await?
        .items;
    let rows = items
        .iter()
        .map(|c| {
            vec![
                esc(c.identifier.as_str()),
                esc(&[c.first_name.as_deref(), c.last_name.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ")),
                opt(c.email.as_deref()),
                time(c.created_date),
            ]
        })
        .collect();
    Ok(table(
        &me,
        "/contacts",
        "Contacts",
        &["Number", "Name", "Email", "Created (UTC)"],
        rows,
    ))
}

pub async fn campaigns(State(state): State<Dash>, me: Me) -> ApiResult<Response> {
    let items = state
        .api
        .store
        .list::<Campaign>(me.org(), None, 200)
        .await?
        .items;
    let rows = items
        .iter()
        .map(|c| {
            vec![
                esc(&c.name),
                esc(&format!("{:?}", c.status).to_lowercase()),
                c.agent_id
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "—".into()),
                format!(r#"<a href="/calls?campaign_id={}">Calls</a>"#, c.id),
            ]
        })
        .collect();
    Ok(table(
        &me,
        "/campaigns",
        "Campaigns",
        &["Name", "Status", "Agent", ""],
        rows,
    ))
}

async fn users_view(state: &Dash, me: &Me, notice: Option<Notice>) -> ApiResult<Response> {
    let users = state.api.store.list_users(me.org()).await?;
    let mut rows = String::new();
    for u in &users {
        let remove = if me.role == Role::Owner && u.id != me.user.id {
            format!(
                r#"<form method="post" action="/users/{}/remove" data-confirm="Remove {}?">{}<button type="submit" class="danger">Remove <span class="sr-only">{}</span></button></form>"#,
                u.id,
                esc(&u.email),
                csrf_field(me),
                esc(&u.email)
            )
        } else {
            String::new()
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{remove}</td></tr>",
            esc(&u.email),
            esc(&u.role),
            time(u.created_at)
        ));
    }
    let invite = if me.role == Role::Owner {
        format!(
            r#"<form method="post" action="/users" class="card"><h2>Invite someone</h2>{}
<label for="invite-email">Email</label><input id="invite-email" name="email" type="email" required>
<label for="invite-role">Role</label><select id="invite-role" name="role"><option value="viewer">viewer (sees everything, changes nothing)</option><option value="admin">admin</option><option value="owner">owner</option></select>
<button type="submit">Create user</button></form>"#,
            csrf_field(me)
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"{}<div class="table-wrap"><table><thead><tr><th scope="col">Email</th><th scope="col">Role</th><th scope="col">Added (UTC)</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead><tbody>{rows}</tbody></table></div>{invite}"#,
        notice.map(|n| n.html()).unwrap_or_default()
    );
    Ok(layout(me, "/users", "Users", &body).into_response())
}

pub async fn users(State(state): State<Dash>, me: Me) -> ApiResult<Response> {
    users_view(&state, &me, None).await
}

pub async fn invite_user(
    State(state): State<Dash>,
    me: Me,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let f = form(&body);
    me.check_csrf(&headers, &f)?;
    me.require_owner()?;
    let email = f
        .get("email")
        .map(|e| e.trim().to_lowercase())
        .unwrap_or_default();
    if !valid_email(&email) {
        return Err(ApiError::bad_request(
            "email must look like name@example.com",
        ));
    }
    let role = f
        .get("role")
        .and_then(|r| Role::parse(r))
        .ok_or_else(|| ApiError::bad_request("role must be owner, admin or viewer"))?;
    let password = generate_password();
    let p = password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&p))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|_| ApiError::internal())?;
    state
        .api
        .store
        .create_user(me.org(), &email, &hash, role.as_str())
        .await?;
    users_view(
        &state,
        &me,
        Some(Notice::info(&format!(
            "Created {email} ({}). Their password, shown only now: {password}",
            role.as_str()
        ))),
    )
    .await
}

/// Enough of a check to catch typos; the address is only a sign-in name.
pub fn valid_email(e: &str) -> bool {
    match e.split_once('@') {
        Some((a, d)) => {
            !a.is_empty()
                && d.contains('.')
                && !d.starts_with('.')
                && !e.contains(char::is_whitespace)
                && e.len() <= 254
        }
        None => false,
    }
}

pub async fn remove_user(
    State(state): State<Dash>,
    me: Me,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    me.check_csrf(&headers, &form(&body))?;
    me.require_owner()?;
    let id = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::not_found("User not found"))?;
    if id == me.user.id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "you cannot remove yourself; ask another owner",
        ));
    }
    state
        .api
        .store
        .delete_user(me.org(), id)
        .await
        .map_err(|e| ApiError::from_store(e, "User"))?;
    Ok(Redirect::to("/users").into_response())
}

async fn keys_view(state: &Dash, me: &Me, notice: Option<Notice>) -> ApiResult<Response> {
    let keys = state.api.store.list_api_keys(me.org()).await?;
    let mut rows = String::new();
    for k in &keys {
        let name = k.name.as_deref().unwrap_or("(unnamed)");
        rows.push_str(&format!(
            r#"<tr><td>{}</td><td><code>{}…</code></td><td>{}</td><td>{}</td><td><form method="post" action="/keys/{}/revoke" data-confirm="Revoke this key? Clients using it stop working at once.">{}<button type="submit" class="danger">Revoke <span class="sr-only">{}</span></button></form></td></tr>"#,
            esc(name),
            esc(&k.prefix),
            time(k.created_at),
            otime(k.last_used_at),
            k.seq,
            csrf_field(me),
            esc(name)
        ));
    }
    let body = format!(
        r#"{}<div class="table-wrap"><table><thead><tr><th scope="col">Name</th><th scope="col">Key</th><th scope="col">Created (UTC)</th><th scope="col">Last used (UTC)</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead><tbody>{rows}</tbody></table></div>
<form method="post" action="/keys" class="card"><h2>New key</h2>{}<label for="key-name">Name</label><input id="key-name" name="name" required maxlength="100"><button type="submit">Create key</button></form>"#,
        notice.map(|n| n.html()).unwrap_or_default(),
        csrf_field(me)
    );
    Ok(layout(me, "/keys", "API keys", &body).into_response())
}

pub async fn keys(State(state): State<Dash>, me: Me) -> ApiResult<Response> {
    me.require_owner()?;
    keys_view(&state, &me, None).await
}

pub async fn create_key(
    State(state): State<Dash>,
    me: Me,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let f = form(&body);
    me.check_csrf(&headers, &f)?;
    me.require_owner()?;
    let name = parse_name("name", f.get("name").map(String::as_str).unwrap_or(""), 100)
        .map_err(ApiError::from)?;
    let key = state.api.store.create_api_key(me.org(), &name).await?;
    keys_view(
        &state,
        &me,
        Some(Notice::info(&format!(
            "Key {name} created. Copy it now, it is shown only once: {key}"
        ))),
    )
    .await
}

pub async fn revoke_key(
    State(state): State<Dash>,
    me: Me,
    Path(seq): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    me.check_csrf(&headers, &form(&body))?;
    me.require_owner()?;
    let seq: i64 = seq
        .parse()
        .map_err(|_| ApiError::not_found("Key not found"))?;
    state
        .api
        .store
        .revoke_api_key(me.org(), seq)
        .await
        .map_err(|e| ApiError::from_store(e, "Key"))?;
    // The API's key cache would otherwise accept the key for up to its TTL.
    state.api.keys.clear();
    Ok(Redirect::to("/keys").into_response())
}
