//! Recordings: serving with HTTP Range, and deletion with the call.

use crate::common::*;
use reqwest::Method;
use serde_json::json;
use switchboard_domain::RecordingMeta;
use switchboard_store::CallUpdate;
use switchboard_testkit::{both, expect_error, status_json, Db, TestApp};

fn audio() -> Vec<u8> {
    (0..100u8).map(|i| i.wrapping_mul(37)).collect()
}

async fn get_range(app: &TestApp, path: &str, range: &str) -> reqwest::Response {
    app.request(Method::GET, path)
        .header("range", range)
        .send()
        .await
        .expect("send")
}

async fn recording_is_served_with_ranges(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let (_, from) = agent_with_number(&app, "+14155550100").await;
    let call = dispatch(&app, &json!({"to": "+14155550199", "from": from})).await;
    let id = call["id"].as_str().expect("id").to_string();
    let path = format!("/v1/call/recording/{id}.mp3");

    // No recording yet: exactly Flyflow's 404.
    let (s, v) = status_json(app.get(&path).await).await;
    assert_eq!(
        (s.as_u16(), v),
        (
            404,
            json!({"error": "Not Found", "message": "Recording not found"})
        )
    );
    let (s, v) = status_json(
        app.get(&format!("/v1/call/recording/{}.mp3", uuid::Uuid::new_v4()))
            .await,
    )
    .await;
    assert_eq!(
        (s.as_u16(), v),
        (
            404,
            json!({"error": "Not Found", "message": "Recording not found"})
        )
    );
    assert!(
        expect_error(app.get(&format!("/v1/call/recording/{id}.wav")).await, 400)
            .await
            .contains(".mp3")
    );
    assert!(
        expect_error(app.get("/v1/call/recording/abc.mp3").await, 400)
            .await
            .contains("must be a UUID")
    );

    let data = audio();
    put_recording(&app, id.parse().expect("uuid"), &data).await;
    let r = app.get(&path).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "audio/mpeg");
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.headers()["content-length"], "100");
    assert_eq!(r.bytes().await.expect("body").as_ref(), &data[..]);

    for (range, start, end) in [
        ("bytes=0-9", 0usize, 9usize),
        ("bytes=90-", 90, 99),
        ("bytes=-5", 95, 99),
        ("bytes=50-500", 50, 99),
        ("bytes=99-99", 99, 99),
    ] {
        let r = get_range(&app, &path, range).await;
        assert_eq!(r.status(), 206, "{range}");
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes {start}-{end}/100").as_str(),
            "{range}"
        );
        assert_eq!(r.headers()["content-type"], "audio/mpeg");
        let body = r.bytes().await.expect("body");
        assert_eq!(body.len(), end - start + 1, "{range}");
        assert_eq!(body.as_ref(), &data[start..=end], "{range}");
    }
    for range in [
        "bytes=100-",
        "bytes=200-300",
        "bytes=9-0",
        "bytes=-0",
        "items=0-9",
        "bytes=a-b",
    ] {
        let r = get_range(&app, &path, range).await;
        assert_eq!(
            r.headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok()),
            Some("bytes */100"),
            "{range}"
        );
        let m = expect_error(r, 416).await;
        assert!(m.contains("100 bytes"), "{range}: {m}");
    }

    // The call resource links to it.
    let (_, v) = status_json(app.get(&format!("/v1/call/{id}")).await).await;
    assert_eq!(v["recording_url"], json!(format!("{}{path}", app.base)));
    // No stereo file was written.
    let (s, v) = status_json(
        app.get(&format!("/v1/call/recording/{id}.stereo.mp3"))
            .await,
    )
    .await;
    assert_eq!(
        (s.as_u16(), v["message"].clone()),
        (404, json!("Recording not found"))
    );

    // The metadata points at a file that is gone: still a clean 404.
    std::fs::remove_file(app.data_dir.join("recordings").join(format!("{id}.mp3")))
        .expect("remove");
    let (s, v) = status_json(app.get(&path).await).await;
    assert_eq!(
        (s.as_u16(), v),
        (
            404,
            json!({"error": "Not Found", "message": "Recording not found"})
        )
    );
}
both!(recording_is_served_with_ranges);

async fn delete_call_removes_it_and_its_recordings(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let (_, from) = agent_with_number(&app, "+14155550100").await;
    let r = app
        .request(Method::POST, "/v1/call")
        .header("idempotency-key", "k1")
        .json(&json!({"to": "+14155550199", "from": from}))
        .send()
        .await
        .expect("send");
    let (_, call) = status_json(r).await;
    let keep = dispatch(&app, &json!({"to": "+14155550198", "from": from})).await;
    let id = call["id"].as_str().expect("id").to_string();
    let cid = id.parse().expect("uuid");
    let data = audio();
    app.recordings
        .put(&format!("{id}.mp3"), data.clone().into())
        .await
        .expect("put");
    app.recordings
        .put(&format!("{id}.stereo.mp3"), data.clone().into())
        .await
        .expect("put");
    let meta = RecordingMeta {
        key: format!("{id}.mp3"),
        stereo_key: Some(format!("{id}.stereo.mp3")),
        duration_ms: Some(1),
        size_bytes: Some(100),
        sha256: None,
        incomplete_reason: None,
    };
    app.store
        .update_call(
            cid,
            CallUpdate {
                recording: Some(meta),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    let dir = app.data_dir.join("recordings");
    assert!(
        dir.join(format!("{id}.mp3")).is_file() && dir.join(format!("{id}.stereo.mp3")).is_file()
    );
    assert_eq!(
        app.get(&format!("/v1/call/recording/{id}.stereo.mp3"))
            .await
            .status(),
        200
    );
    assert_eq!(app.store.queued_count().await.expect("queued"), 2);

    let (s, v) = status_json(app.delete(&format!("/v1/call/{id}")).await).await;
    assert_eq!((s.as_u16(), v), (200, json!({"id": id, "deleted": true})));
    assert_eq!(
        expect_error(app.get(&format!("/v1/call/{id}")).await, 404).await,
        "Call not found"
    );
    assert_eq!(
        expect_error(app.delete(&format!("/v1/call/{id}")).await, 404).await,
        "Call not found"
    );
    assert_eq!(
        expect_error(app.get(&format!("/v1/call/recording/{id}.mp3")).await, 404).await,
        "Recording not found"
    );
    assert!(
        !dir.join(format!("{id}.mp3")).exists(),
        "mono recording left behind"
    );
    assert!(
        !dir.join(format!("{id}.stereo.mp3")).exists(),
        "stereo recording left behind"
    );
    assert_eq!(
        app.store.queued_count().await.expect("queued"),
        1,
        "its dispatch entry went with it"
    );
    let (_, list) = status_json(app.get("/v1/calls").await).await;
    assert_eq!(ids(&list), [keep["id"].as_str().expect("id")]);

    // Its Idempotency-Key went too: the same request now makes a new call.
    let r = app
        .request(Method::POST, "/v1/call")
        .header("idempotency-key", "k1")
        .json(&json!({"to": "+14155550199", "from": from}))
        .send()
        .await
        .expect("send");
    let (s, again) = status_json(r).await;
    assert_eq!(s, 201, "{again}");
    assert_ne!(again["id"], json!(id));

    // A call without a recording deletes fine; bad ids are 400.
    let (s, _) = status_json(
        app.delete(&format!("/v1/call/{}", keep["id"].as_str().expect("id")))
            .await,
    )
    .await;
    assert_eq!(s, 200);
    assert!(expect_error(app.delete("/v1/call/12345").await, 400)
        .await
        .contains("must be a UUID"));
}
both!(delete_call_removes_it_and_its_recordings);
