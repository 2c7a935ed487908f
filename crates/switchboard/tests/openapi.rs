//! `/openapi.json` and `/docs` on the real server (port 0, SQLite in a temporary directory).

use serde_json::Value;
use switchboard::config::ServeConfig;
use switchboard::Application;

struct Server {
    base: String,
    dir: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    async fn start() -> Server {
        let dir = std::env::temp_dir().join(format!("sb-openapi-{}", uuid::Uuid::new_v4()));
        let app = Application::build(&ServeConfig::for_tests(dir.clone(), None))
            .await
            .expect("app builds");
        let base = format!("http://{}", app.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        Server {
            base,
            dir,
            stop: Some(tx),
            task: Some(task),
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn openapi_document_and_reference_page() {
    let server = Server::start().await;
    let client = reqwest::Client::new();

    // No authentication needed.
    let r = client
        .get(format!("{}/openapi.json", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let doc: Value = r.json().await.expect("valid JSON");
    assert!(
        doc["openapi"]
            .as_str()
            .expect("openapi is a string")
            .starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/v1/calls",
        "/v1/call",
        "/v1/call/{id}",
        "/v1/call/recording/{file}",
        "/v1/agents",
        "/v1/agent",
        "/v1/call/{id}/hangup",
    ] {
        assert!(doc["paths"].get(path).is_some(), "missing path {path}");
    }
    // Events and webhooks (issue 11), each operation with the status codes it answers.
    for (path, method, codes) in [
        ("/v1/events", "get", &["200", "400", "401"][..]),
        ("/v1/events/{id}", "get", &["200", "400", "404"]),
        ("/v1/webhook-endpoints", "get", &["200", "400"]),
        ("/v1/webhook-endpoints", "post", &["201", "400", "415"]),
        ("/v1/webhook-endpoints/{id}", "get", &["200", "404"]),
        (
            "/v1/webhook-endpoints/{id}",
            "patch",
            &["200", "400", "404"],
        ),
        ("/v1/webhook-endpoints/{id}", "delete", &["200", "404"]),
        (
            "/v1/webhook-endpoints/{id}/rotate-secret",
            "post",
            &["200", "404"],
        ),
        (
            "/v1/webhook-endpoints/{id}/deliveries",
            "get",
            &["200", "400", "404"],
        ),
        (
            "/v1/webhook-endpoints/{id}/deliveries/{event_id}/retry",
            "post",
            &["202", "400", "404"],
        ),
        ("/v1/agents/{id}/webhook-secret", "get", &["200", "404"]),
        // Call control reaches calls on other replicas: 503 when that replica is away.
        ("/v1/call/{id}", "delete", &["200", "404", "503"]),
        ("/v1/call/{id}/hangup", "post", &["202", "409", "503"]),
        ("/v1/call/{id}/transfer", "post", &["202", "409", "503"]),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "missing operation {method} {path}");
        for code in codes {
            assert!(
                op["responses"].get(*code).is_some(),
                "{method} {path} does not document {code}"
            );
        }
    }
    // Issue 13: every JSON route the binary serves, the vendor dialects included, each with
    // the errors it can answer: 503 (database unreachable) on every operation that uses the
    // database, 415 and 413 on every one that reads a JSON body, 401 and 429 behind
    // authentication; the OmniDimension routes in their own error shape.
    for (path, method) in [
        ("/api/calls", "get"),
        ("/api/calls/{id}", "get"),
        ("/api/v1/calls/dispatch", "post"),
        ("/api/v1/calls/logs", "get"),
        ("/api/v1/calls/logs/{id}", "get"),
        ("/api/v1/agents", "get"),
        ("/api/v1/agents/create", "post"),
        ("/api/v1/agents/{id}", "get"),
        ("/api/v1/phone_number/list", "get"),
        ("/healthz", "get"),
        ("/v1/call/{id}/notes", "post"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "missing operation {method} {path}"
        );
    }
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            operations += 1;
            let summary = op["summary"].as_str().unwrap_or("");
            assert!(
                summary.chars().next().is_some_and(char::is_uppercase),
                "{method} {path}: summary {summary:?}"
            );
            let responses = &op["responses"];
            if !matches!(path.as_str(), "/openapi.json" | "/docs") {
                assert!(responses.get("503").is_some(), "{method} {path} lacks 503");
            }
            if op.get("requestBody").is_some() {
                for code in ["400", "413", "415"] {
                    assert!(
                        responses.get(code).is_some(),
                        "{method} {path} lacks {code}"
                    );
                }
            }
            if !matches!(path.as_str(), "/openapi.json" | "/docs" | "/healthz") {
                for code in ["401", "429"] {
                    assert!(
                        responses.get(code).is_some(),
                        "{method} {path} lacks {code}"
                    );
                }
            }
            let err = responses["401"]["$ref"].as_str().unwrap_or("");
            if path.starts_with("/api/v1/") {
                assert!(err.ends_with("OmniUnauthorized"), "{method} {path}: {err}");
            }
        }
    }
    assert!(operations >= 61, "{operations} operations");
    assert_eq!(
        doc["paths"]["/v1/agents"]["post"]["summary"],
        "Create an agent"
    );
    assert_eq!(
        doc["paths"]["/v1/sip-trunks/{id}"]["get"]["summary"],
        "Get a SIP trunk"
    );
    // The dashboard's HTML pages are said to be left out, and are.
    assert!(doc["info"]["description"]
        .as_str()
        .unwrap_or("")
        .contains("dashboard"));
    for page in ["/login", "/overview", "/calls", "/keys"] {
        assert!(doc["paths"].get(page).is_none(), "{page} is an HTML page");
    }
    // Links: a created agent's id feeds its reads, and a call can be placed with it.
    let links = &doc["paths"]["/v1/agents"]["post"]["responses"]["201"]["links"];
    assert_eq!(links["get_agent"]["operationId"], "get_agent");
    assert_eq!(
        links["get_agent"]["parameters"]["path.id"],
        "$response.body#/id"
    );
    assert_eq!(
        links["create_call"]["requestBody"]["agent_id"],
        "$response.body#/id"
    );
    // Create bodies state their required fields; unknown fields are refused.
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["AgentInputCreate"]["required"],
        serde_json::json!(["name"])
    );
    assert_eq!(schemas["AgentInput"]["additionalProperties"], false);
    let created = &schemas["WebhookEndpointCreated"]["properties"];
    assert!(created.get("secret").is_some(), "{created}");
    assert!(schemas["WebhookEndpoint"]["properties"]
        .get("secret")
        .is_none());
    let event = &schemas["Event"]["properties"];
    assert!(event.to_string().contains("call.ended"), "{event}");
    // Security schemes: bearer, and the x-api-key + x-organization-id pair.
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["name"], "x-api-key");
    assert_eq!(schemes["organization_id"]["name"], "x-organization-id");
    // The error envelope.
    let err = &doc["components"]["schemas"]["ErrorBody"];
    assert!(err["properties"].get("error").is_some() && err["properties"].get("message").is_some());
    // Query parameters carry their allowed values and ranges.
    let params = doc["paths"]["/v1/calls"]["get"]["parameters"]
        .as_array()
        .expect("list parameters");
    let limit = params
        .iter()
        .find(|p| p["name"] == "limit")
        .expect("limit parameter");
    assert_eq!(limit["schema"]["maximum"], 100);
    let status = params
        .iter()
        .find(|p| p["name"] == "status")
        .expect("status parameter");
    assert!(status.to_string().contains("no_answer"), "{status}");

    let r = client
        .get(format!("{}/docs", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(html.contains("/openapi.json"));
    assert!(
        !html.contains("<script src=") && !html.contains("<link "),
        "the page loads no external assets"
    );

    server.stop().await;
}
