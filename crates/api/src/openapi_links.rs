//! OpenAPI links (3.1 §4.8.20): how an id one operation returns feeds the next one, so that
//! clients and stateful testers (schemathesis) chain create → read → update → delete on real
//! ids instead of random ones. Links name operations by `operationId` (the handler's name,
//! or the explicit `operation_id` of the dialect handlers).

use serde_json::{json, Value};

/// A link: from `from`'s `status` response to operation `to`, with its parameters
/// (`path.id`, `query.agent_id`, ...) and optionally a request body, both as runtime
/// expressions.
struct Link {
    from: &'static str,
    status: &'static str,
    to: &'static str,
    params: &'static [(&'static str, &'static str)],
    body: Option<fn() -> Value>,
}

const ID: &[(&str, &str)] = &[("path.id", "$response.body#/id")];

const fn by_id(from: &'static str, status: &'static str, to: &'static str) -> Link {
    Link {
        from,
        status,
        to,
        params: ID,
        body: None,
    }
}

fn links() -> Vec<Link> {
    let mut v = Vec::new();
    // The five resources: create → get, update, delete.
    for (create, ops) in [
        (
            "create_agent",
            ["get_agent", "update_agent", "delete_agent"],
        ),
        (
            "create_number",
            ["get_number", "update_number", "delete_number"],
        ),
        (
            "create_trunk",
            ["get_trunk", "update_trunk", "delete_trunk"],
        ),
        (
            "create_contact",
            ["get_contact", "update_contact", "delete_contact"],
        ),
        (
            "create_campaign",
            ["get_campaign", "update_campaign", "delete_campaign"],
        ),
    ] {
        for to in ops {
            v.push(by_id(create, "201", to));
        }
    }
    // An agent, however it was made, is readable through Flyflow's ?id= and can place calls.
    for (from, status) in [
        ("create_agent", "201"),
        ("flyflow_upsert_agent", "201"),
        ("flyflow_upsert_agent", "200"),
    ] {
        v.push(by_id(from, status, "agent_secret"));
        if from != "create_agent" {
            v.push(by_id(from, status, "get_agent"));
            v.push(by_id(from, status, "update_agent"));
        }
        // Flyflow's ?id= operations only from Flyflow's own create: a tester that saw the agent
        // deleted through /v1/agents/{id} cannot tell that /v1/agent?id= names the same one
        // (schemathesis matches deletions by path), and would take the 404 for a lost agent.
        for to in ["flyflow_get_agent", "flyflow_delete_agent"] {
            if from == "create_agent" {
                continue;
            }
            v.push(Link {
                from,
                status,
                to,
                params: &[("query.id", "$response.body#/id")],
                body: None,
            });
        }
        v.push(Link {
            from,
            status,
            to: "list_calls",
            params: &[("query.agent_id", "$response.body#/id")],
            body: None,
        });
        v.push(Link {
            from,
            status,
            to: "create_call",
            params: &[],
            // Every field named: a generated value beside the link's (a random campaign or
            // caller-ID number) would make the call a 404 and the link useless.
            body: Some(|| {
                json!({
                    "to": "+14155550100",
                    "agent_id": "$response.body#/id",
                    "from": "",
                    "campaign_id": null,
                    "context": {"plan": "gold"},
                    "metadata": null,
                    "user_speaks_first": false,
                    "ring_timeout": 30
                })
            }),
        });
    }
    // A call: every operation on it, in each dialect.
    for to in [
        "get_call",
        "delete_call",
        "hangup",
        "transfer",
        "add_note",
        "list_notes",
        "agentvoice_get_call",
        "omnidim_get_call_log",
    ] {
        v.push(by_id("create_call", "201", to));
    }

    v.push(Link {
        from: "create_call",
        status: "201",
        to: "list_events",
        params: &[("query.call_id", "$response.body#/id")],
        body: None,
    });

    // Webhook endpoints.
    for to in [
        "get_endpoint",
        "update_endpoint",
        "delete_endpoint",
        "rotate_secret",
        "list_deliveries",
    ] {
        v.push(by_id("create_endpoint", "201", to));
    }
    // OmniDimension: agents by integer id; a dispatch's call log by its id.
    v.push(by_id("omnidim_create_agent", "201", "omnidim_get_agent"));
    v.push(Link {
        from: "omnidim_create_agent",
        status: "201",
        to: "omnidim_list_call_logs",
        params: &[("query.agentid", "$response.body#/id")],
        body: None,
    });
    v.push(Link {
        from: "omnidim_create_agent",
        status: "201",
        to: "omnidim_dispatch_call",
        params: &[],
        body: Some(|| json!({"agent_id": "$response.body#/id", "to_number": "+14155550100"})),
    });
    // The operations that take a call's id in the query or the body are linked from here, not
    // from POST /v1/call: a tester cannot tell they name the call a DELETE /v1/call/{id}
    // removed (see above).
    v.push(Link {
        from: "omnidim_dispatch_call",
        status: "200",
        to: "get_call_by_query",
        params: &[("query.id", "$response.body#/call_log_id")],
        body: None,
    });
    v.push(Link {
        from: "omnidim_dispatch_call",
        status: "200",
        to: "set_context",
        params: &[],
        body: Some(|| json!({"id": "$response.body#/call_log_id", "context": {"plan": "gold"}})),
    });
    for to in ["omnidim_get_call_log", "get_call", "agentvoice_get_call"] {
        v.push(Link {
            from: "omnidim_dispatch_call",
            status: "200",
            to,
            params: &[("path.id", "$response.body#/call_log_id")],
            body: None,
        });
    }
    v
}

/// Adds the links to the document's responses (on its JSON: utoipa 5.5 serializes its own
/// `Link` with snake_case keys, which no tool reads). A link whose operations are missing is a
/// programming error, caught by the unit test below.
pub(crate) fn add_links(doc: &mut Value) {
    for l in links() {
        let Some(resp) = response_mut(doc, l.from, l.status) else {
            debug_assert!(false, "no {} response on operation {}", l.from, l.status);
            continue;
        };
        let mut link = serde_json::Map::new();
        link.insert("operationId".into(), json!(l.to));
        if !l.params.is_empty() {
            let params: serde_json::Map<String, Value> = l
                .params
                .iter()
                .map(|(k, e)| (k.to_string(), json!(e)))
                .collect();
            link.insert("parameters".into(), Value::Object(params));
        }
        if let Some(body) = l.body {
            link.insert("requestBody".into(), body());
        }
        if let Some(m) = resp.as_object_mut() {
            let links = m.entry("links").or_insert_with(|| json!({}));
            links[l.to] = Value::Object(link);
        }
    }
}

fn response_mut<'a>(doc: &'a mut Value, op_id: &str, status: &str) -> Option<&'a mut Value> {
    for item in doc.get_mut("paths")?.as_object_mut()?.values_mut() {
        for op in item.as_object_mut()?.values_mut() {
            if op.get("operationId").and_then(Value::as_str) == Some(op_id) {
                return op.get_mut("responses")?.get_mut(status);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    /// Every link starts at a documented response and ends at an operation that exists, with
    /// parameters that operation has; operation ids are unique.
    #[test]
    fn links_point_at_real_operations() {
        let doc = crate::openapi::document_json();
        let mut ops = std::collections::HashMap::new();
        let mut seen = HashSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap_or_else(|| {
                    panic!("{method} {path} has no operationId");
                });
                assert!(seen.insert(id.to_string()), "operationId {id} twice");
                ops.insert(id.to_string(), op.clone());
            }
        }
        let mut n = 0;
        for l in super::links() {
            let from = &ops[l.from];
            let link = &from["responses"][l.status]["links"][l.to];
            assert!(
                link.is_object(),
                "{} {} → {} missing",
                l.from,
                l.status,
                l.to
            );
            let to = ops
                .get(l.to)
                .unwrap_or_else(|| panic!("no operation {}", l.to));
            for (k, _) in l.params {
                let (place, name) = k.split_once('.').unwrap();
                let has = to["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["in"] == place && p["name"] == name));
                assert!(has, "{} has no {place} parameter {name}", l.to);
            }
            if l.body.is_some() {
                assert!(to["requestBody"].is_object(), "{} takes no body", l.to);
            }
            n += 1;
        }
        assert!(n > 40, "{n} links");
    }
}
