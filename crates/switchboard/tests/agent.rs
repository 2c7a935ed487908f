//! The voice agent end to end: a real SIP phone (baresip) that speaks recorded speech
//! (espeak-ng) and records what it hears, a real local STT (faster-whisper tiny.en behind the
//! OpenAI transcription API, `scripts/stt_server.py` in the test venv), the LLM as a scripted
//! fake speaking the real OpenAI SSE protocol over HTTP, espeak-ng TTS.
//!
//! Fixed loopback ports (see README): baresip blocks of 40 from 17200 (17200-17439 used) (SIP base and base + 1,
//! ctrl_tcp base + 5, RTP base + 10..29); the server on port 0 (RTP 40000-49999). The accepted
//! transfer's far end is sipp on SIP 18500-18509, media 18510-18549, control 18550-18559.

use serde_json::{json, Value};
use std::time::Duration;
use switchboard_testkit::fake_llm::{FakeLlm, Reply};
use switchboard_testkit::speech::{self, Part};
use switchboard_testkit::stt::SttServer;
use tokio::sync::OnceCell;

#[path = "live/server.rs"]
mod live_server;
use live_server::Server;

#[path = "live/baresip.rs"]
mod baresip;
use baresip::Phone;

#[path = "live/sipp.rs"]
mod sipp;
use sipp::Sipp;

/// One STT server for the whole file (loading the model takes seconds; the tests run on
/// runtimes of their own, so it must outlive each of them: it drains its pipes on threads).
static STT: OnceCell<SttServer> = OnceCell::const_new();

async fn stt() -> &'static SttServer {
    STT.get_or_init(SttServer::start).await
}

/// A server whose agents converse through the given LLM and the local STT, speaking with
/// espeak-ng's en-us voice (heard reliably by tiny.en).
async fn server(llm: &FakeLlm, stt: &SttServer) -> Server {
    server_at(llm, stt, tempfile::tempdir().unwrap(), None).await
}

/// [`server`] on a given data directory (a restart passes the previous one, with its
/// organization and key). Failed post-call analyses are retried every 3 s.
async fn server_at(
    llm: &FakeLlm,
    stt: &SttServer,
    dir: tempfile::TempDir,
    org_key: Option<(String, String)>,
) -> Server {
    let (llm_url, stt_url) = (llm.base_url.clone(), stt.base_url.clone());
    Server::start_at(dir, org_key, move |c| {
        c.agent.llm_url = Some(llm_url);
        c.agent.llm_api_key = Some("sk-test-never-shown".into());
        c.agent.llm_model = "fake-model".into();
        c.agent.stt_provider = Some("openai".into());
        c.agent.stt_url = Some(stt_url);
        c.agent.stt_model = Some("tiny.en".into());
        c.agent.analysis_retry_schedule = vec![Duration::from_secs(3); 5];
        c.telephony.tts_voice = "en-us".into();
    })
    .await
}

/// An agent, a trunk that points at the phone, and our number bound to both.
async fn setup(srv: &Server, phone_port: u16, agent: Value) -> String {
    let agent = srv.create("/v1/agents", agent).await;
    let trunk = srv
        .create(
            "/v1/sip-trunks",
            json!({"name": "phone", "host": "127.0.0.1", "port": phone_port, "transport": "udp"}),
        )
        .await;
    srv.create(
        "/v1/phone-numbers",
        json!({"phone_number": "+15550001000", "agent_id": agent, "trunk_id": trunk}),
    )
    .await;
    agent
}

fn mic(dir: &std::path::Path, parts: &[Part]) -> std::path::PathBuf {
    let p = dir.join("mic.wav");
    speech::write_wav_8k(&p, &speech::timeline(parts));
    p
}

async fn full_call(srv: &Server, id: &str) -> Value {
    let (s, c) = srv
        .get(&format!(
            "/v1/call/{id}?include=transcript,metrics,diagnostics"
        ))
        .await;
    assert_eq!(s, 200, "{c}");
    c
}

/// Bounded wait for a future the test cannot go on without.
async fn within<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {secs} s"))
}

const UTTERANCE: &str = "I would like to book a table for two people tomorrow evening.";
const REPLY: &str = "Certainly. I have booked a table for two people tomorrow evening at seven.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_converses_on_a_real_call() {
    let stt = stt().await;
    let llm = FakeLlm::start().await;
    llm.push_reply(Reply::Text(REPLY.into()));
    let srv = server(&llm, stt).await;
    setup(
        &srv,
        17200,
        json!({
            "name": "Booking",
            "system_prompt": "You are the booking assistant of {{restaurant}}.",
            "initial_message": "Hello, this is Ana from {{restaurant}}.",
            "settings": {"silence_timeout_seconds": 3, "max_reprompts": 1, "response_timeout_seconds": 6},
        }),
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let mic = mic(
        tmp.path(),
        &[
            Part::silence_ms(4000),
            Part::speech(UTTERANCE),
            Part::silence_ms(40_000),
        ],
    );
    let mut phone = Phone::start("+14155550123", 17200, &mic).await;
    let (s, call) = srv
        .post(
            "/v1/call",
            json!({"from": "+15550001000", "to": "+14155550123",
                   "context": {"restaurant": "Luigi's", "party": "Smith"}}),
        )
        .await;
    assert_eq!(s, 201, "{call}");
    let id = call["id"].as_str().unwrap().to_string();
    within(20, "answer", phone.wait_event("CALL_ESTABLISHED", 20)).await;

    // The caller's words reached the LLM, after the system message with the call's context.
    let reqs = within(40, "the LLM request", llm.wait_requests(1)).await;
    let msgs = reqs[0]["messages"].as_array().unwrap();
    assert_eq!(reqs[0]["model"], "fake-model");
    assert_eq!(reqs[0]["stream"], true);
    assert_eq!(msgs[0]["role"], "system");
    let system = msgs[0]["content"].as_str().unwrap();
    assert!(system.contains("booking assistant of Luigi's"), "{system}");
    assert!(
        system.contains(r#""party":"Smith""#),
        "context kept as JSON: {system}"
    );
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(msgs[1]["content"], "Hello, this is Ana from Luigi's.");
    assert_eq!(msgs[2]["role"], "user");
    let said = msgs[2]["content"].as_str().unwrap();
    let overlap = speech::word_overlap(said, UTTERANCE);
    assert!(overlap >= 0.6, "the LLM got {said:?} ({overlap})");

    // Nobody speaks after the reply: one re-prompt, then goodbye and hang-up.
    within(
        60,
        "the agent's hang-up",
        phone.wait_event("CALL_CLOSED", 60),
    )
    .await;
    let done = srv.wait_final(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["end_reason"], "inactivity", "{done}");

    let c = full_call(&srv, &id).await;
    let turns = c["transcript_formatted"]
        .as_array()
        .expect("transcript_formatted");
    let who: Vec<&str> = turns
        .iter()
        .map(|t| t["speaker"].as_str().unwrap())
        .collect();
    assert_eq!(
        who,
        ["agent", "user", "agent", "agent", "agent"],
        "{turns:?}"
    );
    assert_eq!(turns[0]["text"], "Hello, this is Ana from Luigi's.");
    assert_eq!(turns[2]["text"], REPLY);
    assert_eq!(turns[3]["text"], "Are you still there?");
    let mut last = 0;
    for t in turns {
        let (a, b) = (
            t["start_ms"].as_u64().unwrap(),
            t["end_ms"].as_u64().unwrap(),
        );
        assert!(a >= last && b > a, "turn times run forward: {turns:?}");
        assert_eq!(t["interrupted"], false);
        last = b;
    }
    // The caller spoke from about 4 s into the call (the phone's script), for about 3.5 s.
    let (ua, ub) = (
        turns[1]["start_ms"].as_u64().unwrap(),
        turns[1]["end_ms"].as_u64().unwrap(),
    );
    assert!(
        (3500..5000).contains(&ua) && ub - ua > 2000,
        "user turn {ua}-{ub}"
    );
    let text = c["transcript"].as_str().unwrap();
    assert!(
        text.starts_with("Agent: Hello, this is Ana from Luigi's.\nUser: "),
        "{text}"
    );
    assert!(text.contains(&format!("\nAgent: {REPLY}\n")), "{text}");

    // Latency of the one answered turn, with its parts.
    let lat = &c["latency_metrics"];
    let v2v = lat["voice_to_voice_ms"]["values"].as_array().unwrap();
    assert_eq!(v2v.len(), 1, "{lat}");
    let turn = &lat["turns"][0];
    for k in [
        "end_of_turn_ms",
        "stt_ms",
        "llm_first_token_ms",
        "tts_first_audio_ms",
        "overhead_ms",
    ] {
        assert!(turn[k].as_f64().is_some(), "{k} in {turn}");
    }
    let v = v2v[0].as_f64().unwrap();
    assert!(
        v > turn["end_of_turn_ms"].as_f64().unwrap() && v < 10_000.0,
        "{lat}"
    );
    assert!(c["turn_events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "reprompt"));
    assert_eq!(c["interruptions"], json!([]));

    // The phone heard the greeting and the reply.
    let heard = phone.heard();
    let heard_text = stt.transcribe(&heard).await;
    assert!(
        speech::word_overlap(&heard_text, "Hello, this is Ana from Luigi's.") >= 0.5,
        "{heard_text}"
    );
    assert!(
        speech::word_overlap(&heard_text, REPLY) >= 0.5,
        "the phone heard {heard_text:?}"
    );

    // The key never shows: not in the call.
    assert!(!c.to_string().contains("sk-test-never-shown"));
    // DELETE erases the transcript with the call.
    let (s, _) = srv.get(&format!("/v1/call/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(
        srv.delete_as(&format!("/v1/call/{id}"), &srv.key).await,
        200
    );
    let (s, _) = srv.get(&format!("/v1/call/{id}?include=transcript")).await;
    assert_eq!(s, 404);
}

const PITCH: &str = "Thank you for calling Luigi's restaurant. We are open every day from noon until eleven in the evening, and we serve fresh pasta, pizza from our wood oven, and wines from Italy and California.";
const QUESTION: &str = "Excuse me. Are you open on Sunday evening?";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barge_in_stops_the_agent_and_a_failing_llm_gets_the_fallback() {
    let stt = stt().await;
    let llm = FakeLlm::start().await;
    llm.push_reply(Reply::Status(500, "The server had an error".into()));
    let srv = server(&llm, stt).await;
    setup(
        &srv,
        17240,
        json!({
            "name": "Pitch",
            "initial_message": PITCH,
            "settings": {"silence_timeout_seconds": 3, "max_reprompts": 0},
        }),
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let mic = mic(
        tmp.path(),
        &[
            Part::silence_ms(3000),
            Part::speech(QUESTION),
            Part::silence_ms(40_000),
        ],
    );
    let mut phone = Phone::start("+14155550124", 17240, &mic).await;
    let id = srv.dispatch("+15550001000", "+14155550124").await;
    within(20, "answer", phone.wait_event("CALL_ESTABLISHED", 20)).await;
    let reqs = within(40, "the LLM request", llm.wait_requests(1)).await;
    let said = reqs[0]["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        speech::word_overlap(&said, QUESTION) >= 0.5,
        "the LLM got {said:?}"
    );
    within(
        60,
        "the agent's hang-up",
        phone.wait_event("CALL_CLOSED", 60),
    )
    .await;
    let done = srv.wait_final(&id).await;
    assert_eq!(done["end_reason"], "inactivity", "{done}");

    let c = full_call(&srv, &id).await;
    let turns = c["transcript_formatted"].as_array().unwrap();
    // The pitch was cut: it keeps only the words played, far fewer than written.
    assert_eq!(turns[0]["speaker"], "agent");
    assert_eq!(turns[0]["interrupted"], true, "{turns:?}");
    let played = turns[0]["text"].as_str().unwrap();
    assert!(
        PITCH.starts_with(played) && played.len() < PITCH.len() / 2,
        "{played:?}"
    );
    assert_eq!(turns[1]["speaker"], "user");
    // The LLM failed: the fallback was spoken, and the error is on the call.
    assert_eq!(
        turns[2]["text"],
        "Sorry, I'm having trouble right now. Could you say that again?"
    );
    let errors: Vec<&Value> = c["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "agent-error")
        .collect();
    assert_eq!(errors.len(), 1, "{}", c["events"]);
    assert_eq!(errors[0]["stage"], "llm");
    assert!(errors[0]["message"].as_str().unwrap().contains("500"));
    let ints = c["interruptions"].as_array().unwrap();
    assert_eq!(ints.len(), 1, "{ints:?}");
    assert_eq!(ints[0]["false_interruption"], false);
    let kept = ints[0]["agent_kept_talking_ms"].as_u64().unwrap();
    assert!(
        kept <= 200,
        "agent kept talking {kept} ms after the caller began"
    );

    // What the phone heard: the pitch until about 3 s, then nothing, then the fallback.
    let heard = phone.heard();
    let at = |s: f64| (s * 8000.0) as usize;
    let before = switchboard_media::audio::rms(&heard[at(1.0)..at(2.8)]);
    let onset = ints[0]["at_ms"].as_u64().unwrap() as f64 / 1000.0;
    let after = switchboard_media::audio::rms(&heard[at(onset + 0.4)..at(onset + 1.4)]);
    assert!(before > 500.0, "the pitch was heard (rms {before})");
    assert!(
        after < before / 20.0,
        "the agent stopped: rms {after} after vs {before} before"
    );
    let heard_text = stt.transcribe(&heard[at(onset + 0.4)..]).await;
    assert!(
        speech::word_overlap(
            &heard_text,
            "Sorry, I'm having trouble right now. Could you say that again?"
        ) >= 0.5,
        "the phone heard {heard_text:?}"
    );
}

/// Polls until `f` holds for the call's full record (bounded).
async fn wait_call(srv: &Server, id: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..600 {
        let (s, c) = srv.get(&format!("/v1/call/{id}?fields=full")).await;
        if s == 200 && f(&c) {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} never happened for call {id}");
}

const ANALYSIS: &str = r#"{"call_description": "The caller booked a table for two for tomorrow evening.",
  "user_sentiment": "positive", "call_success": true, "call_success_reason": "A table was booked.",
  "structured_data": {"party_size": 2},
  "custom_analysis": {"q1": "tomorrow evening", "wants_callback": false}}"#;

/// Issue 10: the analysis of a real call is queued with its final status, survives a failed
/// LLM request and a restart of the server in between, is checked against the agent's schema
/// (a bad answer is re-asked once), and lands on the call with `call.analyzed`. Notes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_call_analysis_survives_a_restart_and_notes_are_kept() {
    let stt = stt().await;
    let llm = FakeLlm::start().await;
    llm.push_reply(Reply::Text(REPLY.into()));
    // Every analysis request fails until the server has been restarted.
    llm.set_default_reply(Reply::Status(503, "overloaded".into()));
    let srv = server(&llm, stt).await;
    setup(
        &srv,
        17280,
        json!({
            "name": "Booking",
            "initial_message": "Hello, this is Ana from Luigi's.",
            // This agent's turns end on a fixed silence, without the end-of-turn model.
            "settings": {"silence_timeout_seconds": 3, "max_reprompts": 0,
                         "turn_detection": "silence", "end_of_turn_silence_seconds": 0.9},
            "success_criteria": "The caller booked a table.",
            "analysis_schema": {"type": "object", "properties": {"party_size": {"type": "integer"}},
                                "required": ["party_size"]},
            "analysis_questions": ["What day did the caller ask for?",
                {"name": "wants_callback", "question": "Does the caller want a callback?", "type": "boolean"}],
        }),
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let mic = mic(
        tmp.path(),
        &[
            Part::silence_ms(4000),
            Part::speech(UTTERANCE),
            Part::silence_ms(40_000),
        ],
    );
    let mut phone = Phone::start("+14155550125", 17280, &mic).await;
    let id = srv.dispatch("+15550001000", "+14155550125").await;
    within(20, "answer", phone.wait_event("CALL_ESTABLISHED", 20)).await;
    within(60, "the hang-up", phone.wait_event("CALL_CLOSED", 60)).await;
    let done = srv.wait_final(&id).await;
    assert_eq!(done["end_reason"], "inactivity", "{done}");
    // Screening ran beside the conversation (voicemail: continue) and kept its verdict.
    assert_eq!(done["answered_by"], "human", "{done}");
    assert_eq!(done["went_to_voicemail"], false, "{done}");
    // turn_detection "silence": the model was never asked, and the caller's turn ended 0.9 s
    // after their last voiced frame.
    let c = full_call(&srv, &id).await;
    let events = c["turn_events"].as_array().unwrap();
    assert!(
        !events.iter().any(|e| e["type"] == "turn_prediction"),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e["type"] == "user_turn_end"),
        "{events:?}"
    );
    let eot = c["latency_metrics"]["turns"][0]["end_of_turn_ms"]
        .as_f64()
        .unwrap();
    assert!((900.0..=960.0).contains(&eot), "end of turn {eot} ms");

    // The first analysis request fails (503); the job waits for its retry.
    let reqs = within(30, "the analysis request", llm.wait_requests(2)).await;
    let system = reqs[1]["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("party_size") && system.contains("wants_callback"),
        "{system}"
    );
    let transcript = reqs[1]["messages"][1]["content"].as_str().unwrap();
    assert!(
        transcript.contains("Agent: Hello, this is Ana from Luigi's."),
        "{transcript}"
    );
    let c = srv.get(&format!("/v1/call/{id}?fields=full")).await.1;
    assert_eq!(
        c["post_call_analysis"],
        Value::Null,
        "nothing invented: {c}"
    );

    // Notes: validated, kept, listed, in the full payload; another organization's call or an
    // unknown one is a 404.
    let (s, e) = srv
        .post(&format!("/v1/call/{id}/notes"), json!({"text": "  "}))
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(e["message"].as_str().unwrap().contains("text"), "{e}");
    let (s, e) = srv
        .post(&format!("/v1/call/{id}/notes"), json!({"txt": "x"}))
        .await;
    assert_eq!(s, 400, "{e}");
    let (s, note) = srv
        .post(
            &format!("/v1/call/{id}/notes"),
            json!({"text": "Called back on Monday."}),
        )
        .await;
    assert_eq!(s, 201, "{note}");
    assert_eq!(note["text"], "Called back on Monday.");
    let (s, _) = srv
        .post(
            "/v1/call/00000000-0000-4000-8000-000000000000/notes",
            json!({"text": "x"}),
        )
        .await;
    assert_eq!(s, 404);

    // Restart before the retry; the queue row is in the database, not in memory.
    let (org, key) = (srv.org.clone(), srv.key.clone());
    let dir = srv.join().await;
    let before = llm.requests().len();
    llm.push_reply(Reply::Text("The call went well.".into()));
    llm.push_reply(Reply::Text(format!("```json\n{ANALYSIS}\n```")));
    let srv = server_at(&llm, stt, dir, Some((org, key))).await;
    let c = wait_call(&srv, &id, "the analysis", |c| {
        !c["post_call_analysis"].is_null()
    })
    .await;
    let reqs = llm.requests();
    assert_eq!(reqs.len(), before + 2, "one answer refused, one re-ask");
    let reask = reqs[before + 1]["messages"].as_array().unwrap();
    let last = reask.last().unwrap()["content"].as_str().unwrap();
    assert!(
        last.contains("not usable") && last.contains("no JSON object"),
        "{last}"
    );

    let a = &c["post_call_analysis"];
    assert_eq!(a["status"], "completed", "{a}");
    assert_eq!(a["model"], "fake-model");
    assert_eq!(a["user_sentiment"], "positive");
    assert_eq!(
        c["call_description"],
        "The caller booked a table for two for tomorrow evening."
    );
    assert_eq!(c["call_success"], true);
    assert_eq!(c["structured_data_results"], json!({"party_size": 2}));
    assert_eq!(
        c["custom_analysis"],
        json!({"q1": "tomorrow evening", "wants_callback": false})
    );
    assert_eq!(c["notes"][0]["text"], "Called back on Monday.");
    let (s, notes) = srv.get(&format!("/v1/call/{id}/notes")).await;
    assert_eq!(s, 200);
    assert_eq!(notes["data"].as_array().unwrap().len(), 1);
    // AgentVoice shows the same call with the same analysis.
    let (s, av) = srv.get(&format!("/api/calls/{id}?fields=full")).await;
    assert_eq!(s, 200, "{av}");
    let av = if av["data"].is_object() {
        &av["data"]
    } else {
        &av
    };
    assert_eq!(av["call_success"], true, "{av}");
    assert_eq!(av["went_to_voicemail"], false);
    assert_eq!(av["structured_data_results"], json!({"party_size": 2}));
    // One call.analyzed event, carrying the analysed call.
    let (s, ev) = srv
        .get(&format!("/v1/events?type=call.analyzed&call_id={id}"))
        .await;
    assert_eq!(s, 200, "{ev}");
    let evs = ev["events"].as_array().unwrap();
    assert_eq!(evs.len(), 1, "{ev}");
    assert_eq!(evs[0]["data"]["call_success"], true);
}

/// Issue 10: an answering machine. The agent holds its greeting while screening, hears the
/// greeting out, and leaves its message only after the beep; then hangs up (`voicemail`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voicemail_message_is_left_after_the_beep() {
    let stt = stt().await;
    let llm = FakeLlm::start().await;
    // Any request (the screening's judgement of the greeting's words) says "machine".
    llm.set_default_reply(Reply::Text(
        r#"{"answered_by": "machine", "confidence": 0.95}"#.into(),
    ));
    let srv = server(&llm, stt).await;
    setup(
        &srv,
        17320,
        json!({
            "name": "Reminder",
            "initial_message": "Hello, this is Ana from Luigi's.",
            "voicemail": {"action": "leave_message",
                          "message": "Hello {{name}}, this is Luigi's. Please call us back."},
        }),
    )
    .await;
    // The machine: a greeting, a pause, a 1 kHz beep of 500 ms, then it records.
    let mut samples = speech::espeak_8k(
        "Hi, you have reached Sam. I can't take your call right now. Please leave a message after the tone.",
    );
    samples.extend(speech::silence(Duration::from_millis(600)));
    samples.extend((0..4000).map(|i| {
        (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * f64::from(i) / 8000.0).sin()) as i16
    }));
    let beep_end = samples.len() as f64 / 8000.0;
    samples.extend(speech::silence(Duration::from_secs(40)));
    let tmp = tempfile::tempdir().unwrap();
    let mic = tmp.path().join("mic.wav");
    speech::write_wav_8k(&mic, &samples);
    let mut phone = Phone::start("+14155550126", 17320, &mic).await;
    let (s, call) = srv
        .post(
            "/v1/call",
            json!({"from": "+15550001000", "to": "+14155550126", "context": {"name": "Sam"}}),
        )
        .await;
    assert_eq!(s, 201, "{call}");
    let id = call["id"].as_str().unwrap().to_string();
    within(20, "answer", phone.wait_event("CALL_ESTABLISHED", 20)).await;
    within(60, "the hang-up", phone.wait_event("CALL_CLOSED", 60)).await;
    let done = srv.wait_final(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["end_reason"], "voicemail", "{done}");
    assert_eq!(done["went_to_voicemail"], true, "{done}");
    assert_eq!(done["answered_by"], "machine_end_beep", "{done}");

    // What the phone heard: nothing during the greeting and the beep (never the agent's
    // greeting), then the message.
    let heard = phone.heard();
    let rms_at = |a: f64, b: f64| {
        let (a, b) = (
            (a * 8000.0) as usize,
            ((b * 8000.0) as usize).min(heard.len()),
        );
        switchboard_media::audio::rms(&heard[a..b])
    };
    assert!(
        rms_at(0.0, beep_end) < 50.0,
        "the agent spoke over the greeting ({})",
        rms_at(0.0, beep_end)
    );
    let first_voice = (0..heard.len() / 160)
        .find(|&f| switchboard_media::audio::rms(&heard[f * 160..(f + 1) * 160]) > 300.0)
        .map(|f| f as f64 * 0.02)
        .expect("the message was heard");
    assert!(
        first_voice >= beep_end && first_voice < beep_end + 4.0,
        "message starts at {first_voice:.2} s, the beep ended at {beep_end:.2} s"
    );
    let text = stt.transcribe(&heard).await;
    assert!(
        speech::word_overlap(&text, "Hello Sam, this is Luigi's. Please call us back.") >= 0.5,
        "the phone heard {text:?}"
    );
    let c = full_call(&srv, &id).await;
    let turns = c["transcript_formatted"].as_array().unwrap();
    assert_eq!(turns.len(), 1, "only the message: {turns:?}");
    assert_eq!(
        turns[0]["text"],
        "Hello Sam, this is Luigi's. Please call us back."
    );
    // No conversation, so no post-call analysis request: only screening judgements reached
    // the LLM.
    for r in llm.requests() {
        let sys = r["messages"][0]["content"].as_str().unwrap_or("");
        assert!(
            !sys.contains("finished phone calls"),
            "analysis requested for a voicemail"
        );
    }
}

/// A webhook tool's service: answers `{"status": "shipped", "eta": "Friday"}` after `delay`,
/// and keeps each request's headers and body.
async fn order_service(
    delay: Duration,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, Value)>>>,
) {
    use axum::routing::post;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = seen.clone();
    let app = axum::Router::new().route(
        "/orders",
        post(
            move |headers: axum::http::HeaderMap, body: axum::Json<Value>| async move {
                keep.lock().unwrap().push((headers, body.0));
                tokio::time::sleep(delay).await;
                axum::Json(json!({"status": "shipped", "eta": "Friday"}))
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/orders", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// Issue 10 on the wire: a slow webhook tool (signed, with the call id; the caller hears the
/// filler while it runs), `send_dtmf` (the digits reach the phone as RFC 4733 events) and
/// `transfer_call` (the transfer message, then a REFER to the chosen destination).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_act_on_the_wire() {
    let stt = stt().await;
    let llm = FakeLlm::start().await;
    llm.push_reply(Reply::tool_call("lookup_order", json!({"order": "42"})));
    llm.push_reply(Reply::tool_call("send_dtmf", json!({"digits": "42#"})));
    llm.push_reply(Reply::tool_call(
        "transfer_call",
        json!({"destination": "+15550009999"}),
    ));
    let (url, seen) = order_service(Duration::from_millis(2500)).await;
    let srv = server(&llm, stt).await;
    setup(
        &srv,
        17360,
        json!({
            "name": "Orders",
            "initial_message": "Hello, this is the order desk.",
            "tools": [
                {"type": "webhook", "name": "lookup_order", "description": "Look up an order by number",
                 "parameters": {"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]},
                 "url": url, "method": "POST", "timeout_ms": 8000},
                {"type": "send_dtmf"},
                {"type": "transfer_call", "destinations": [{"number": "+15550009999", "description": "Billing"}]}
            ],
        }),
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let mic = mic(
        tmp.path(),
        &[
            Part::silence_ms(3500),
            Part::speech("Where is my order number forty two?"),
            Part::silence_ms(40_000),
        ],
    );
    let mut phone = Phone::start("+14155550127", 17360, &mic).await;
    let id = srv.dispatch("+15550001000", "+14155550127").await;
    within(20, "answer", phone.wait_event("CALL_ESTABLISHED", 20)).await;
    let mut keys = String::new();
    for _ in 0..3 {
        let ev = phone.wait_event("CALL_DTMF_START", 60).await;
        keys.push_str(ev["param"].as_str().unwrap_or("?"));
    }
    assert_eq!(keys, "42#");
    // The REFER went to the chosen destination (through the call's trunk: the phone). The
    // phone (baresip) refuses REFER with 404, which the call records and then goes on — the
    // same path as `POST /v1/call/{id}/transfer`, whose accepted case is tested against sipp
    // in peers.rs.
    let c = wait_call(&srv, &id, "the REFER's answer", |c| {
        c["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["type"] == "transfer-failed"))
    })
    .await;
    let events = c["events"].as_array().unwrap();
    let asked = events
        .iter()
        .find(|e| e["type"] == "transfer-requested")
        .expect("a REFER was sent");
    assert_eq!(asked["to"], "sip:+15550009999@127.0.0.1:17360", "{asked}");
    let refused = events
        .iter()
        .find(|e| e["type"] == "transfer-failed")
        .unwrap();
    assert_eq!(
        refused["code"], 404,
        "the phone answered the REFER: {refused}"
    );
    let (s, _) = srv.post(&format!("/v1/call/{id}/hangup"), json!({})).await;
    assert_eq!(s, 202);
    within(30, "the hang-up", phone.wait_event("CALL_CLOSED", 30)).await;
    let done = srv.wait_final(&id).await;
    assert_eq!(done["status"], "completed", "{done}");

    // The webhook: signed (Standard Webhooks), with the call id and the LLM's arguments.
    let (headers, body) = seen.lock().unwrap()[0].clone();
    assert_eq!(body["arguments"], json!({"order": "42"}), "{body}");
    assert_eq!(body["call_id"], id.as_str());
    assert_eq!(headers["x-switchboard-call-id"], id.as_str());
    assert!(headers["webhook-signature"]
        .to_str()
        .unwrap()
        .starts_with("v1,"));
    // Its result went back to the LLM as the tool message.
    let reqs = llm.requests();
    let tool_msg = reqs[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .cloned()
        .expect("a tool message");
    assert!(
        tool_msg["content"].as_str().unwrap().contains("shipped"),
        "{tool_msg}"
    );

    let c = full_call(&srv, &id).await;
    let full = srv.get(&format!("/v1/call/{id}?fields=full")).await.1;
    let execs = full["action_executions"].as_array().unwrap();
    let tools: Vec<&str> = execs.iter().map(|e| e["tool"].as_str().unwrap()).collect();
    assert_eq!(
        tools,
        ["lookup_order", "send_dtmf", "transfer_call"],
        "{execs:?}"
    );
    let speakers: Vec<&str> = c["transcript_formatted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["speaker"].as_str().unwrap())
        .collect();
    assert!(
        speakers.contains(&"tool_call") && speakers.contains(&"tool_result"),
        "{speakers:?}"
    );

    // The phone heard the filler while the webhook ran, and the transfer message.
    let heard = phone.heard();
    let text = stt.transcribe(&heard).await;
    assert!(
        speech::word_overlap(&text, "One moment.") >= 0.5,
        "the phone heard {text:?}"
    );
    assert!(
        speech::word_overlap(&text, "Please hold while I transfer your call.") >= 0.5,
        "the phone heard {text:?}; the call says {}",
        c["transcript"]
    );
}

/// Issue 10: `voicemail: hangup`. The agent holds its greeting; a machine's greeting (no beep
/// needed) ends the call at once with end_reason `voicemail`, and the phone hears nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voicemail_hangup_ends_the_call_without_a_word() {
    let stt = stt().await;
    let llm = FakeLlm::start().await;
    llm.set_default_reply(Reply::Text(
        r#"{"answered_by": "machine", "confidence": 0.95}"#.into(),
    ));
    let srv = server(&llm, stt).await;
    setup(
        &srv,
        17400,
        json!({
            "name": "Reminder",
            "initial_message": "Hello, this is Ana from Luigi's.",
            "voicemail": {"action": "hangup"},
        }),
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let greeting = "Hi, you have reached the voicemail of Sam Jones. I am away from my desk \
        right now. Please leave your name, your number and a short message after the tone, \
        and I will call you back as soon as I can.";
    let mic = mic(
        tmp.path(),
        &[Part::speech(greeting), Part::silence_ms(30_000)],
    );
    let mut phone = Phone::start("+14155550128", 17400, &mic).await;
    let id = srv.dispatch("+15550001000", "+14155550128").await;
    within(20, "answer", phone.wait_event("CALL_ESTABLISHED", 20)).await;
    within(30, "the hang-up", phone.wait_event("CALL_CLOSED", 30)).await;
    let done = srv.wait_final(&id).await;
    assert_eq!(done["end_reason"], "voicemail", "{done}");
    assert_eq!(done["went_to_voicemail"], true, "{done}");
    assert_eq!(done["answered_by"], "machine_start", "{done}");
    // Hung up during the greeting (it runs well over 8 s), and the agent never spoke.
    assert!(done["duration"].as_i64().unwrap() < 9, "{done}");
    let heard = phone.heard();
    let loud = switchboard_media::audio::rms(&heard);
    assert!(loud < 50.0, "the phone heard the agent (rms {loud})");
    let c = full_call(&srv, &id).await;
    assert!(c["transcript_formatted"].is_null(), "{c}");
}

/// The destination the LLM picks in the accepted transfer (sipp checks the REFER for it).
const BILLING: &str = "+15550002222";
const ASK_BILLING: &str =
    "Hello, I have a question about my bill. Can you put me through to billing?";

/// Issue 10: `transfer_call` accepted, end to end over SIP. The called party is sipp
/// (`tests/agent/uas_transfer.xml`): it answers and speaks a recorded request (espeak-ng,
/// μ-law, `rtp_stream`) that the real STT transcribes; the scripted LLM, offered two
/// destinations, transfers to the second; sipp checks the REFER's Refer-To (RFC 3515 §2.1),
/// accepts it 202 and reports NOTIFY message/sipfrag "SIP/2.0 200 OK" (§2.4.5). The call ends
/// `transferred`, and the agent's recorded audio holds the transfer message before the REFER.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_tool_refers_the_caller_and_the_call_ends_transferred() {
    let stt = stt().await;
    let llm = FakeLlm::start().await;
    llm.push_reply(Reply::tool_call(
        "transfer_call",
        json!({"destination": BILLING}),
    ));
    let srv = server(&llm, stt).await;
    setup(
        &srv,
        18500,
        json!({
            "name": "Front desk",
            "initial_message": "Hello, this is the front desk.",
            "tools": [{"type": "transfer_call", "destinations": [
                {"number": "+15550001111", "description": "Sales: new orders and prices"},
                {"number": BILLING, "description": "Billing: invoices, payments and bills"}
            ]}],
        }),
    )
    .await;

    // The far end's voice: raw μ-law for sipp's rtp_stream, with a long silent tail so that
    // its loop never repeats the request within the call.
    let tmp = tempfile::tempdir().unwrap();
    let voice = speech::timeline(&[
        Part::silence_ms(3500),
        Part::speech(ASK_BILLING),
        Part::silence_ms(40_000),
    ]);
    let caller = tmp.path().join("caller.ulaw");
    std::fs::write(
        &caller,
        voice
            .iter()
            .map(|&s| switchboard_media::g711::linear_to_ulaw(s))
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let scenario = tmp.path().join("uas_transfer.xml");
    std::fs::write(
        &scenario,
        include_str!("agent/uas_transfer.xml")
            .replace("CALLER_FILE", &caller.display().to_string()),
    )
    .unwrap();
    let sipp = Sipp::spawn_ports(&scenario, 18500, 18510, 18550, &[]);
    let id = srv.dispatch("+15550001000", "+14155550129").await;

    // The request reached the LLM through the real STT, with both destinations offered.
    let reqs = within(40, "the LLM request", llm.wait_requests(1)).await;
    let said = reqs[0]["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        speech::word_overlap(&said, ASK_BILLING) >= 0.5,
        "the LLM got {said:?}"
    );
    let transfer = reqs[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == "transfer_call")
        .expect("transfer_call offered");
    assert_eq!(
        transfer["function"]["parameters"]["properties"]["destination"]["enum"],
        json!(["+15550001111", BILLING]),
        "{transfer}"
    );

    let c = wait_call(&srv, &id, "the transfer", |c| {
        !matches!(c["status"].as_str(), Some("dialing" | "in_progress"))
    })
    .await;
    assert_eq!(
        sipp.finish().await,
        0,
        "sipp did not get the REFER to {BILLING} (or the BYE after its NOTIFY)"
    );
    assert_eq!(c["status"], "transferred", "{c}");
    assert_eq!(c["end_reason"], "transferred", "{c}");
    let events = c["events"].as_array().unwrap();
    let refer = events
        .iter()
        .find(|e| e["type"] == "transfer-requested")
        .expect("a REFER was sent");
    assert_eq!(
        refer["to"],
        format!("sip:{BILLING}@127.0.0.1:18500"),
        "{refer}"
    );
    assert!(
        !events.iter().any(|e| e["type"] == "transfer-failed"),
        "{events:?}"
    );
    let execs = c["action_executions"].as_array().unwrap();
    assert_eq!(execs.len(), 1, "{execs:?}");
    assert_eq!(execs[0]["tool"], "transfer_call");
    assert_eq!(execs[0]["arguments"], json!({"destination": BILLING}));

    // The agent's channel of the recording (right), up to the REFER: the transfer message was
    // played before it, and nothing after it.
    let at = |v: &Value| {
        switchboard_domain::time::Timestamp::parse_param("at", v.as_str().unwrap())
            .unwrap()
            .micros()
    };
    let refer_ms = ((at(&refer["at"]) - at(&c["start_time"])) / 1000) as usize;
    let (s, stereo) = srv
        .bytes(&format!("/v1/call/recording/{id}.stereo.mp3"))
        .await;
    assert_eq!(s, 200);
    let (channels, rate, chans) =
        switchboard_media::audio::decode_mp3_bytes(stereo).expect("the stereo recording");
    assert_eq!((channels, rate), (2, 8000));
    let agent = &chans[1];
    // Slack for the MP3 codec's delay and the REFER's timestamp being taken after the send.
    let cut = ((refer_ms + 400) * 8).min(agent.len());
    let before = stt.transcribe(&agent[..cut]).await;
    assert!(
        speech::word_overlap(&before, "Please hold while I transfer your call.") >= 0.5,
        "the agent's audio before the REFER ({refer_ms} ms) says {before:?}"
    );
    let last_voice_ms = (0..agent.len() / 160)
        .rev()
        .find(|&f| switchboard_media::audio::rms(&agent[f * 160..(f + 1) * 160]) > 300.0)
        .map(|f| (f + 1) * 20)
        .expect("the agent was heard");
    assert!(
        last_voice_ms <= refer_ms + 400,
        "the agent still spoke at {last_voice_ms} ms, after the REFER at {refer_ms} ms"
    );
    let turns = full_call(&srv, &id).await["transcript_formatted"].clone();
    let last_agent = turns
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|t| t["speaker"] == "agent")
        .cloned()
        .unwrap();
    assert_eq!(
        last_agent["text"],
        "Please hold while I transfer your call."
    );
}
