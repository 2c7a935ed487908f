//! `{{name}}` placeholders in an agent's `system_prompt` and `initial_message`, filled from the
//! call's context object and metadata, and the system message that carries the call context.

use serde_json::Value;

/// Replaces `{{name}}` (spaces inside the braces allowed, dotted paths like `{{customer.name}}`
/// walk nested objects) with the value from `context` (when it is an object) or else
/// `metadata`. A placeholder with no value is left as written, so a missing field shows up in
/// the transcript instead of silently becoming an empty string.
pub fn fill(template: &str, context: Option<&Value>, metadata: Option<&Value>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = after[..end].trim();
        let value = [context, metadata]
            .into_iter()
            .flatten()
            .find_map(|v| lookup(v, name));
        match value {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn lookup(root: &Value, path: &str) -> Option<String> {
    if path.is_empty() {
        return None;
    }
    let mut v = root;
    for part in path.split('.') {
        v = v.as_object()?.get(part)?;
    }
    Some(match v {
        Value::String(s) => s.clone(),
        Value::Null => return None,
        other => other.to_string(),
    })
}

/// The system message: the agent's prompt (filled), then the call's context as the client sent
/// it (a string verbatim, JSON kept as JSON).
pub fn system_message(
    system_prompt: Option<&str>,
    context: Option<&Value>,
    metadata: Option<&Value>,
) -> String {
    let mut s = system_prompt
        .map(|p| fill(p, context, metadata))
        .unwrap_or_default();
    if let Some(ctx) = context.filter(|c| !c.is_null()) {
        if !s.is_empty() {
            s.push_str("\n\n");
        }
        s.push_str("Context for this call:\n");
        match ctx {
            Value::String(t) => s.push_str(t),
            other => s.push_str(&other.to_string()),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fills_from_context_then_metadata() {
        let ctx = json!({"name": "Ana", "order": {"id": 42}});
        let meta = json!({"name": "ignored", "crm": "7"});
        assert_eq!(
            fill(
                "Hi {{name}}, order {{ order.id }}, crm {{crm}}, {{missing}}",
                Some(&ctx),
                Some(&meta)
            ),
            "Hi Ana, order 42, crm 7, {{missing}}"
        );
        assert_eq!(fill("open {{name", Some(&ctx), None), "open {{name");
        // A string context has no fields: metadata fills.
        assert_eq!(
            fill("{{crm}}", Some(&json!("late order")), Some(&meta)),
            "7"
        );
    }

    #[test]
    fn system_message_keeps_json_as_json() {
        let ctx = json!({"order": 42});
        let s = system_message(Some("You help {{order}}."), Some(&ctx), None);
        assert_eq!(s, "You help 42.\n\nContext for this call:\n{\"order\":42}");
        assert_eq!(
            system_message(None, Some(&json!("Order 42 is late")), None),
            "Context for this call:\nOrder 42 is late"
        );
    }
}
