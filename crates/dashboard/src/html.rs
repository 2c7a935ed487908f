//! HTML helpers: escaping, the page layout, formatting of times and durations.

use crate::auth::Me;
use axum::response::Html;
use serde_json::Value;
use switchboard_domain::Timestamp;

/// Escapes text for HTML content and double-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A message at the top of a form or page (errors are announced to screen readers).
pub struct Notice {
    kind: &'static str,
    text: String,
}

impl Notice {
    pub fn error(t: &str) -> Notice {
        Notice {
            kind: "error",
            text: t.to_string(),
        }
    }
    pub fn info(t: &str) -> Notice {
        Notice {
            kind: "info",
            text: t.to_string(),
        }
    }
    pub fn html(&self) -> String {
        let role = if self.kind == "error" {
            "alert"
        } else {
            "status"
        };
        format!(
            r#"<p class="notice {}" role="{role}">{}</p>"#,
            self.kind,
            esc(&self.text)
        )
    }
}

const NAV: &[(&str, &str)] = &[
    ("/overview", "Overview"),
    ("/calls", "Calls"),
    ("/agents", "Agents"),
    ("/numbers", "Numbers"),
    ("/trunks", "Trunks"),
    ("/contacts", "Contacts"),
    ("/campaigns", "Campaigns"),
    ("/users", "Users"),
    ("/keys", "API keys"),
];

/// The page around `body`: navigation (the current page marked), who is signed in and the
/// sign-out button, and the CSRF token for scripts in a meta tag.
pub fn layout(me: &Me, active: &str, title: &str, body: &str) -> Html<String> {
    let mut nav = String::new();
    for (href, label) in NAV {
        if *href == "/keys" && me.role != crate::Role::Owner {
            continue;
        }
        let current = if *href == active {
            r#" aria-current="page""#
        } else {
            ""
        };
        nav.push_str(&format!(
            r#"<li><a href="{href}"{current}>{label}</a></li>"#
        ));
    }
    Html(format!(
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{csrf}">
<title>{title} · Switchboard</title><link rel="stylesheet" href="/assets/app.css"><script src="/assets/app.js" defer></script></head>
<body><a class="skip" href="#main">Skip to content</a>
<header class="top"><span class="brand">Switchboard</span>
<nav aria-label="Main"><ul>{nav}</ul></nav>
<form method="post" action="/logout" class="who"><input type="hidden" name="csrf" value="{csrf}">
<span>{email} <span class="role">({role})</span></span> <button type="submit" id="sign-out">Sign out</button></form>
</header>
<main id="main"><h1>{title}</h1>
{body}
</main></body></html>"##,
        csrf = esc(&me.csrf),
        title = esc(title),
        email = esc(&me.user.email),
        role = me.role.as_str(),
    ))
}

pub fn csrf_field(me: &Me) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}">"#,
        esc(&me.csrf)
    )
}

/// `2026-11-30 18:02:11` (UTC).
pub fn time(t: Timestamp) -> String {
    t.to_datetime().format("%Y-%m-%d %H:%M:%S").to_string()
}

pub fn otime(t: Option<Timestamp>) -> String {
    t.map(time).unwrap_or_else(|| "—".into())
}

/// `1:05` for 65 s.
pub fn duration(secs: Option<i64>) -> String {
    match secs {
        Some(s) => format!("{}:{:02}", s / 60, s % 60),
        None => "—".into(),
    }
}

/// A JSON value as readable, escaped, preformatted text.
pub fn json_pre(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    };
    format!(r#"<pre class="json">{}</pre>"#, esc(&text))
}
