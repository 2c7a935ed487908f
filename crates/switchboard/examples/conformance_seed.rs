//! Test seeding for `conformance/run.sh`: plays the part of the telephony engine on one call
//! of a running server's store (SQLite data dir), so the published clients have something
//! finished to read: it completes the call (start, end, duration, end reason), writes its
//! transcript and registers an MP3 as its recording through `Recordings::put` and
//! `Store::update_call`.
//!
//! `cargo run --example conformance_seed -- <data dir> <call id> <mp3 file>`

use switchboard_domain::{CallDetails, CallId, CallStatus, RecordingMeta, Timestamp};
use switchboard_store::{sqlite_url_for_dir, CallUpdate, Recordings, Store};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, call, mp3] = args.as_slice() else {
        anyhow::bail!("usage: conformance_seed <data dir> <call id> <mp3 file>");
    };
    let dir = std::path::Path::new(dir);
    let id: CallId =
        CallId::parse_param("call id", call).map_err(|e| anyhow::anyhow!(e.message))?;
    let store = Store::connect(&sqlite_url_for_dir(dir), 2).await?;
    let recordings = Recordings::local(&dir.join("recordings"))?;
    let data = std::fs::read(mp3)?;
    let key = format!("{id}.mp3");
    let size = data.len() as i64;
    recordings.put(&key, data.into()).await?;
    let end = Timestamp::now();
    let start = Timestamp(end.micros() - 42_000_000);
    store
        .update_call(
            id,
            CallUpdate {
                status: Some(CallStatus::Completed),
                started_at: Some(start),
                ended_at: Some(end),
                duration_seconds: Some(42),
                end_reason: Some("customer-ended-call".into()),
                sip_code: Some(200),
                recording: Some(RecordingMeta {
                    key,
                    stereo_key: None,
                    duration_ms: Some(2000),
                    size_bytes: Some(size),
                    sha256: None,
                    incomplete_reason: None,
                }),
                ..Default::default()
            },
        )
        .await?;
    let details = CallDetails {
        transcript: Some("Agent: Hello, this is Switchboard.\nUser: Hi there.".into()),
        transcript_formatted: Some(serde_json::json!([
            {"speaker": "agent", "text": "Hello, this is Switchboard."},
            {"speaker": "user", "text": "Hi there."}
        ])),
        ..Default::default()
    };
    store.set_call_details(id, &details).await?;
    store.close().await;
    println!(
        "{}",
        serde_json::json!({"call_id": id, "status": "completed"})
    );
    Ok(())
}
