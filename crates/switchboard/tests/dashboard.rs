//! The dashboard (issue 12) in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven over the W3C WebDriver protocol with plain HTTP/JSON, against the
//! real server on a real SIP call (sipp answers, streams a tone, hangs up; the recording is
//! the engine's). axe-core (tests/dashboard/axe.min.js, MPL-2.0) runs inside every page.
//!
//! Screenshots of every page go to `$CARGO_TARGET_DIR/dashboard-screenshots/` (printed).
//!
//! Fixed loopback ports: sipp SIP 17900, RTP 17910, control 17920; chromedriver 17930; the
//! agent page's test calls (hang-up, transfer): sipp SIP 17940-17941, RTP 17950 and 17954,
//! control 17980-17981 (the range 17940-17989 is this file's). The server itself is on port 0.

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use switchboard_media::audio;
use switchboard_media::g711::G711;
use switchboard_testkit::{Db, TestApp};

#[path = "live/sipp.rs"]
mod live_sipp;
use live_sipp::Sipp;

const SIPP_PORT: u16 = 17900;
const DRIVER_PORT: u16 = 17930;
const AXE: &str = include_str!("dashboard/axe.min.js");
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver and one Chromium session, ended when dropped.
struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
    driver: std::process::Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    async fn start() -> Browser {
        let driver = std::process::Command::new("chromedriver")
            .arg(format!("--port={DRIVER_PORT}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is required: apt-get install chromium chromium-driver");
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let base = format!("http://127.0.0.1:{DRIVER_PORT}");
        // Wait (bounded) until the driver answers /status as ready.
        let t0 = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                if let Ok(v) = r.json::<Value>().await {
                    if v["value"]["ready"] == true {
                        break;
                    }
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--autoplay-policy=no-user-gesture-required",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"))
            .to_string();
        let shots =
            PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| {
                concat!(env!("CARGO_MANIFEST_DIR"), "/../../target").to_string()
            }))
            .join("dashboard-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        println!("screenshots: {}", shots.display());
        let b = Browser {
            http,
            base,
            session,
            driver,
            _profile: profile,
            shots,
        };
        b.cmd(
            "POST",
            "timeouts",
            json!({"script": 60000, "pageLoad": 30000, "implicit": 0}),
        )
        .await;
        b
    }

    async fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        let url = match path {
            "" => format!("{}/session/{}", self.base, self.session),
            p => format!("{}/session/{}/{p}", self.base, self.session),
        };
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        if v["value"].get("error").is_some() {
            panic!("WebDriver {method} {path}: {}", v["value"]);
        }
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.cmd("POST", "url", json!({ "url": url })).await;
    }

    async fn url(&self) -> String {
        self.cmd("GET", "url", json!({}))
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Waits (bounded) until the page's URL satisfies `ok`: a click that submits a form
    /// returns before the browser has followed the response.
    async fn wait_url(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            let u = self.url().await;
            let ready = self.js("return document.readyState").await == "complete";
            if ok(&u) && ready {
                return u;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "waiting for {what}, at {u}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .cmd(
                "POST",
                "element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element for {css}: {v}"))
            .to_string()
    }

    async fn count(&self, css: &str) -> usize {
        self.cmd(
            "POST",
            "elements",
            json!({"using": "css selector", "value": css}),
        )
        .await
        .as_array()
        .unwrap()
        .len()
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd("POST", &format!("element/{e}/click"), json!({}))
            .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd("POST", &format!("element/{e}/clear"), json!({}))
            .await;
        self.cmd(
            "POST",
            &format!("element/{e}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Chooses an option of a `<select>` as a user would (value set, `change` fired).
    async fn choose(&self, css: &str, value: &str) {
        let e = self.find(css).await;
        self.cmd(
            "POST",
            "execute/sync",
            json!({"script": "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('change', {bubbles: true})); return arguments[0].value;",
                   "args": [{ELEMENT: e}, value]}),
        )
        .await;
    }

    async fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    async fn js_async(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "execute/async",
            json!({"script": script, "args": []}),
        )
        .await
    }

    async fn text(&self) -> String {
        self.js("return document.body.innerText")
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Polls a script until it returns true (bounded).
    async fn wait_for(&self, what: &str, script: &str) {
        let t0 = Instant::now();
        while self.js(script).await != Value::Bool(true) {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, name: &str) {
        let png = self.cmd("GET", "screenshot", json!({})).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), bytes).unwrap();
    }

    /// Runs axe-core in the page: no serious or critical violations.
    async fn axe(&self, page: &str) {
        self.js(&format!("{AXE}\n;return true;")).await;
        let v = self
            .js_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {resultTypes: ['violations']}).then(r => done(
                   r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                     .map(v => ({id: v.id, impact: v.impact, help: v.help,
                                 nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))
                 )).catch(e => done([{id: 'axe-error', help: String(e)}]));",
            )
            .await;
        assert_eq!(
            v,
            json!([]),
            "axe-core on {page}: serious/critical violations"
        );
    }

    async fn cookie(&self, name: &str) -> String {
        self.cmd("GET", &format!("cookie/{name}"), json!({})).await["value"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn sign_in(&self, base: &str, email: &str, password: &str) {
        self.go(&format!("{base}/login")).await;
        self.type_into("#email", email).await;
        self.type_into("#password", password).await;
        self.click("form button[type=submit]").await;
        self.wait_url("signed in", |u| !u.contains("/login")).await;
    }
}

fn tone_file(dir: &Path, seconds: u32) -> PathBuf {
    let pcm = audio::sine(800.0, 8000, (8000 * seconds) as usize, 9000.0);
    let p = dir.join("tone.ulaw");
    std::fs::write(&p, G711::Pcmu.encode(&pcm)).unwrap();
    p
}

/// A real outbound call: sipp answers, streams 3 s of tone, hangs up. Returns its id.
async fn real_call(app: &TestApp) -> String {
    let (s, agent) = switchboard_testkit::status_json(
        app.post_json(
            "/v1/agents",
            &json!({"name": "Front desk", "initial_message": "Hello from the front desk."}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{agent}");
    let (s, trunk) = switchboard_testkit::status_json(
        app.post_json(
            "/v1/sip-trunks",
            &json!({"name": "sipp", "host": "127.0.0.1", "port": SIPP_PORT, "transport": "udp"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{trunk}");
    let (s, num) = switchboard_testkit::status_json(
        app.post_json(
            "/v1/phone-numbers",
            &json!({"phone_number": "+15550001111", "agent_id": agent["id"], "trunk_id": trunk["id"]}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{num}");
    let tmp = tempfile::tempdir().unwrap();
    let tone = tone_file(tmp.path(), 3);
    let scen = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/uas_play_bye.xml"),
    )
    .unwrap()
    .replace("TONE_FILE", &tone.display().to_string())
    .replace("HOLD_MS", "3500");
    let scen_path = tmp.path().join("uas_play_bye.xml");
    std::fs::write(&scen_path, scen).unwrap();
    let sipp = Sipp::spawn_ports(&scen_path, SIPP_PORT, 17910, 17920, &[]);
    let (s, call) = switchboard_testkit::status_json(
        app.post_json(
            "/v1/call",
            &json!({"from": "+15550001111", "to": "+14155550123", "metadata": {"ticket": "T-42"}}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{call}");
    let id = call["id"].as_str().unwrap().to_string();
    let t0 = Instant::now();
    loop {
        let (_, c) =
            switchboard_testkit::status_json(app.get(&format!("/v1/call/{id}")).await).await;
        if c["status"] == "completed" && c["recording_url"].is_string() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "call did not complete: {c}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sipp.finish().await, 0, "sipp scenario failed");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_browser() {
    let app = TestApp::spawn(Db::Sqlite).await;
    let base = app.base.clone();
    let id = real_call(&app).await;
    let org = app.org();
    let cid = switchboard_domain::CallId::parse_param("id", &id).unwrap();

    // The call's transcript and latency as the agent records them (this call's far end is a
    // tone, so there is nothing to transcribe): turns inside the recording's 3.5 s.
    let mut call = app.store.get_call(org, cid, true).await.unwrap();
    let mut d = call.details.take().unwrap_or_default();
    d.transcript_formatted = Some(json!([
        {"speaker": "agent", "text": "Hello from the front desk.", "start_ms": 0, "end_ms": 1400, "interrupted": false},
        {"speaker": "user", "text": "Hi, I would like to move my appointment.", "start_ms": 1500, "end_ms": 2600, "interrupted": false},
        {"speaker": "agent", "text": "Of course, which day suits you?", "start_ms": 2700, "end_ms": 3400, "interrupted": true}
    ]));
    d.latency_metrics = Some(json!({"turns": [
        {"turn": 1, "voice_to_voice_ms": 640.0}, {"turn": 2, "voice_to_voice_ms": 910.0}
    ]}));
    app.store.set_call_details(cid, &d).await.unwrap();

    // Another organization and its call; a viewer in ours.
    let (other_org, _) = app.new_org("Other Inc").await;
    let other_org = switchboard_domain::OrgId::parse_param("org", &other_org).unwrap();
    let other_call = app.seed_call(other_org, None, "+14155550999").await;
    let hash = switchboard_dashboard::hash_password("viewer-password-1").unwrap();
    app.store
        .create_user(org, "viewer@example.com", &hash, "viewer")
        .await
        .unwrap();

    let b = Browser::start().await;
    let (email, password) = app.owner_login.clone();

    // Sign in (a page asked for first comes back after sign-in).
    b.go(&format!("{base}/calls")).await;
    assert!(b.url().await.contains("/login?next="), "{}", b.url().await);
    b.screenshot("login").await;
    b.axe("/login").await;
    b.type_into("#email", &email).await;
    b.type_into("#password", "wrong password").await;
    b.click("form button[type=submit]").await;
    b.wait_for(
        "the sign-in error",
        "return document.body.innerText.includes('Wrong email or password')",
    )
    .await;
    b.type_into("#password", &password).await;
    b.click("form button[type=submit]").await;
    b.wait_url("/calls after sign-in", |u| u == format!("{base}/calls"))
        .await;

    // Filter calls: the filters land in the URL; a status that matches nothing, then ours.
    b.choose("#status", "failed").await;
    b.click(".filters button[type=submit]").await;
    b.wait_url("the failed filter", |u| u.contains("status=failed"))
        .await;
    assert_eq!(b.count(&format!("a[href='/calls/{id}']")).await, 0);
    assert!(b.text().await.contains("No calls match"));
    b.choose("#status", "completed").await;
    b.type_into("#phone_number", "+14155550123").await;
    b.click(".filters button[type=submit]").await;
    let u = b
        .wait_url("the completed filter", |u| {
            u.contains("status=completed") && u.contains("phone_number=%2B14155550123")
        })
        .await;
    assert_eq!(b.count(&format!("a[href='/calls/{id}']")).await, 1);
    // Reloading the URL keeps the filters (they live in it).
    b.go(&u).await;
    assert_eq!(
        b.js("return document.getElementById('status').value").await,
        "completed"
    );
    b.screenshot("calls").await;
    b.axe("/calls").await;

    // Live rows: a new call appears on the first page without a reload.
    b.go(&format!("{base}/calls")).await;
    let before = b.count("#rows tr").await;
    app.seed_call(org, None, "+14155550777").await;
    b.wait_for(
        "the new call in the live rows",
        "return document.getElementById('rows').innerText.includes('+14155550777')",
    )
    .await;
    assert_eq!(b.count("#rows tr").await, before + 1);

    // The call page: recording loads and reports its duration; a click on a turn seeks.
    b.click(&format!("a[href='/calls/{id}']")).await;
    b.wait_url("the call page", |u| u == format!("{base}/calls/{id}"))
        .await;
    b.wait_for(
        "the recording's duration",
        "const a = document.getElementById('player'); return a.readyState >= 1 && isFinite(a.duration) && a.duration > 2",
    )
    .await;
    // The stereo recording as two waveform lanes (decoded in the page).
    b.wait_for(
        "the two waveform lanes",
        "return document.getElementById('lanes').dataset.drawn === '2'",
    )
    .await;
    let dur = b
        .js("return document.getElementById('player').duration")
        .await;
    assert!(dur.as_f64().unwrap() > 2.5, "duration {dur}");
    let text = b.text().await;
    assert!(
        text.contains("SIP code") && text.contains("customer-ended-call"),
        "{text}"
    );
    assert!(text.contains("T-42"), "metadata shown");
    b.click(".turn[data-start='1.500']").await;
    b.wait_for(
        "the player to seek",
        "return Math.abs(document.getElementById('player').currentTime - 1.5) < 0.05",
    )
    .await;
    assert_eq!(
        b.js("return document.querySelector('.turn.current').dataset.start")
            .await,
        "1.500"
    );
    assert_eq!(b.count("#delete").await, 1, "owners see the delete button");
    b.screenshot("call").await;
    b.axe("/calls/{id}").await;

    // Another organization's call is not found (the page, and the status over HTTP).
    b.go(&format!("{base}/calls/{}", other_call.id)).await;
    assert!(b.text().await.contains("Call not found"));
    let cookie = b.cookie("sb_session").await;
    let r = app
        .client
        .get(format!("{base}/calls/{}", other_call.id))
        .header("cookie", format!("sb_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app
        .client
        .get(format!("{base}/calls/{}/recording.mp3", other_call.id))
        .header("cookie", format!("sb_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Every other page: screenshot and axe.
    for page in [
        "overview",
        "agents",
        "numbers",
        "trunks",
        "contacts",
        "campaigns",
        "users",
        "keys",
    ] {
        b.go(&format!("{base}/{page}")).await;
        assert_eq!(b.url().await, format!("{base}/{page}"));
        b.screenshot(page).await;
        b.axe(&format!("/{page}")).await;
    }
    b.go(&format!("{base}/agents")).await;
    b.click("table a").await;
    b.wait_url("the agent page", |u| u.contains("/agents/"))
        .await;
    b.screenshot("agent").await;
    b.axe("/agents/{id}").await;

    // The agent page: voice preview, test calls, and hang-up and transfer of live calls.
    try_agents_in_the_browser(&app, &b).await;

    // Sign out: the session ends (the old cookie no longer works).
    b.click("#sign-out").await;
    b.wait_url("/login after sign-out", |u| u == format!("{base}/login"))
        .await;
    let r = app
        .client
        .get(format!("{base}/calls/rows"))
        .header("cookie", format!("sb_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // A viewer sees the call but has no delete button, and the change itself is a 403.
    b.sign_in(&base, "viewer@example.com", "viewer-password-1")
        .await;
    b.go(&format!("{base}/calls/{id}")).await;
    assert_eq!(b.count("#delete").await, 0);
    let status = b
        .js_async(&format!(
            "const done = arguments[arguments.length - 1];
             const csrf = document.querySelector('meta[name=csrf-token]').content;
             fetch('/calls/{id}/delete', {{method: 'POST', headers: {{'x-csrf-token': csrf}}}})
               .then(r => r.json().then(j => done([r.status, j.error, j.message])));"
        ))
        .await;
    assert_eq!(status[0], 403, "{status}");
    assert!(status[2].as_str().unwrap().contains("viewers"), "{status}");
    b.screenshot("viewer-call").await;
    // The call is still there.
    app.store.get_call(org, cid, false).await.unwrap();
    b.cmd("DELETE", "", json!({})).await;
}

/// The call's JSON once `ok` holds (bounded).
async fn wait_call(app: &TestApp, id: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let (_, c) =
            switchboard_testkit::status_json(app.get(&format!("/v1/call/{id}")).await).await;
        if ok(&c) {
            return c;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "waiting for {what}: {c}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An agent with its own trunk (a sipp on `port`) and a number bound to both, so its calls
/// go to that sipp. Returns the agent's id.
async fn agent_on_sipp(app: &TestApp, name: &str, number: &str, port: u16) -> String {
    let create = |path: &'static str, body: Value| async move {
        let (s, v) = switchboard_testkit::status_json(app.post_json(path, &body).await).await;
        assert_eq!(s, 201, "{path}: {v}");
        v["id"].as_str().unwrap().to_string()
    };
    let agent = create(
        "/v1/agents",
        json!({"name": name, "initial_message": "Hello, this is a test call."}),
    )
    .await;
    let trunk = create(
        "/v1/sip-trunks",
        json!({"name": format!("sipp {port}"), "host": "127.0.0.1", "port": port, "transport": "udp"}),
    )
    .await;
    create(
        "/v1/phone-numbers",
        json!({"phone_number": number, "agent_id": agent, "trunk_id": trunk}),
    )
    .await;
    agent
}

/// Places a test call from the agent page (the form, as a user would: a click on the button,
/// or Enter in the field) and returns the new call's id from the page the browser lands on.
async fn test_call_from_the_page(
    b: &Browser,
    base: &str,
    agent: &str,
    to: &str,
    keyboard: bool,
) -> String {
    b.go(&format!("{base}/agents/{agent}")).await;
    if keyboard {
        b.type_into("#test-to", &format!("{to}\u{E007}")).await;
    } else {
        b.type_into("#test-to", to).await;
        b.click("#test-call").await;
    }
    let u = b
        .wait_url("the new call's page", |u| {
            u.starts_with(&format!("{base}/calls/")) && u.len() > base.len() + 20
        })
        .await;
    let id = u.rsplit('/').next().unwrap().to_string();
    let text = b.text().await;
    assert!(text.contains(to), "the call page shows the call: {text}");
    id
}

/// The agent page in the browser: the voice preview plays the form's unsaved greeting
/// (activated from the keyboard), a bad number is explained on the page, a test call reaches
/// a real SIP peer, and the call page's hang-up and transfer reach it too. Phone width.
///
/// sipp here: SIP 17940 (hang-up) and 17941 (transfer), RTP 17950 and 17954, control 17980
/// and 17981.
async fn try_agents_in_the_browser(app: &TestApp, b: &Browser) {
    let base = app.base.clone();
    let sales = agent_on_sipp(app, "Sales line", "+15550002222", 17940).await;
    let desk = agent_on_sipp(app, "Transfer desk", "+15550003333", 17941).await;

    // Voice preview of an unsaved greeting, with the keyboard (Enter on the focused link).
    b.go(&format!("{base}/agents/{sales}")).await;
    b.type_into(
        "#initial_message",
        "Testing the preview voice of the sales line.",
    )
    .await;
    let link = b.find("#preview").await;
    b.cmd(
        "POST",
        &format!("element/{link}/value"),
        json!({"text": "\u{E007}"}),
    )
    .await;
    b.wait_for(
        "the preview's duration",
        "const a = document.getElementById('preview-player'); return !a.hidden && a.readyState >= 1 && isFinite(a.duration) && a.duration > 0.5",
    )
    .await;
    let src = b
        .js("return document.getElementById('preview-player').src")
        .await;
    assert!(
        src.as_str().unwrap().contains("text=Testing+the+preview"),
        "the form's text, not the saved one: {src}"
    );
    b.wait_for(
        "the preview's status line",
        "return document.getElementById('preview-status').innerText.startsWith('Preview ready')",
    )
    .await;
    b.screenshot("agent-preview").await;
    b.axe("/agents/{id} with a preview").await;
    // Too long a greeting: the server's reason is shown, not a silent player.
    b.type_into("#initial_message", &"la ".repeat(110)).await;
    b.click("#preview").await;
    b.wait_for(
        "the preview's error",
        "return document.getElementById('preview-status').innerText.includes('at most 300 characters')",
    )
    .await;

    // A bad number: explained beside the field, nothing placed.
    b.type_into("#test-to", "12345").await;
    b.click("#test-call").await;
    b.wait_for(
        "the number's error",
        "return document.body.innerText.includes('is not an E.164 phone number')",
    )
    .await;
    assert_eq!(
        b.js("return document.getElementById('test-to').getAttribute('aria-invalid')")
            .await,
        "true"
    );
    assert_eq!(b.js("return document.activeElement.id").await, "test-to");
    b.screenshot("agent-test-call-error").await;
    b.axe("/agents/{id}/call (bad number)").await;

    // A test call to a real SIP peer, hung up from the call page: sipp sees our BYE.
    let scenarios = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests");
    let sipp = Sipp::spawn_ports(
        &scenarios.join("scenarios/uas_answer_wait_bye.xml"),
        17940,
        17950,
        17980,
        &[],
    );
    let id = test_call_from_the_page(b, &base, &sales, "+14155550201", false).await;
    assert!(b.text().await.contains("Sales line"));
    // The page follows the live call: once answered it offers the transfer form.
    b.wait_for(
        "the call page to follow the answer",
        "return document.getElementById('transfer-to') !== null",
    )
    .await;
    assert_eq!(
        wait_call(app, &id, "answered", |c| c["status"] == "in_progress").await["status"],
        "in_progress"
    );
    b.screenshot("call-live").await;
    b.axe("/calls/{id} (live)").await;
    b.click("#hangup").await;
    assert_eq!(sipp.finish().await, 0, "sipp did not get the BYE");
    let c = wait_call(app, &id, "the hung-up call to end", |c| {
        c["end_time"].is_string()
    })
    .await;
    b.go(&format!("{base}/calls/{id}")).await;
    let text = b.text().await;
    assert!(
        text.contains(&c["status"].as_str().unwrap().replace('_', " ")) && text.contains("ended"),
        "{text}"
    );
    assert_eq!(b.count("#hangup").await, 0, "an ended call has no hang-up");

    // Transfer: the REFER carries the number typed into the form (sipp checks Refer-To).
    let sipp = Sipp::spawn_ports(
        &scenarios.join("dashboard/uas_refer.xml"),
        17941,
        17954,
        17981,
        &[],
    );
    let id = test_call_from_the_page(b, &base, &desk, "+14155550202", true).await;
    b.wait_for(
        "the transfer form of the answered call",
        "return document.getElementById('transfer-to') !== null",
    )
    .await;
    b.type_into("#transfer-to", "+15550008888").await;
    b.click("form.transfer button[type=submit]").await;
    assert_eq!(
        sipp.finish().await,
        0,
        "sipp did not get the REFER to +15550008888 and the BYE"
    );
    let c = wait_call(app, &id, "the transfer", |c| c["end_time"].is_string()).await;
    assert_eq!(c["status"], "transferred", "{c}");
    b.go(&format!("{base}/calls/{id}")).await;
    assert!(b.text().await.contains("transferred"));

    // Phone width: the agent page fits (no sideways scrolling) and is screenshotted.
    b.cmd("POST", "window/rect", json!({"width": 390, "height": 844}))
        .await;
    b.go(&format!("{base}/agents/{sales}")).await;
    assert_eq!(
        b.js("return document.documentElement.scrollWidth <= window.innerWidth")
            .await,
        true,
        "the agent page scrolls sideways at phone width"
    );
    b.js("document.getElementById('try-h').scrollIntoView(); return true")
        .await;
    b.screenshot("agent-phone").await;
    b.cmd(
        "POST",
        "window/rect",
        json!({"width": 1280, "height": 1000}),
    )
    .await;
}

/// A client that shows redirects and cookies as they are.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    raw_client()
        .post(app.url("/login"))
        .form(&[("email", email), ("password", password), ("next", "/calls")])
        .send()
        .await
        .unwrap()
}

/// Signs in; the session cookie and the page's CSRF token.
async fn session(app: &TestApp, email: &str, password: &str) -> (String, String) {
    let r = login(app, email, password).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let cookie = set.split(';').next().unwrap().to_string();
    let html = raw_client()
        .get(app.url("/calls"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = html
        .split(r#"<meta name="csrf-token" content=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("csrf meta tag")
        .to_string();
    (cookie, csrf)
}

async fn access_over_http(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let c = raw_client();
    // Not signed in: pages go to /login and come back; other requests are 401.
    let r = c
        .get(app.url("/calls?status=completed"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()["location"],
        "/login?next=%2Fcalls%3Fstatus%3Dcompleted"
    );
    let r = c.get(app.url("/calls/rows")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (email, password) = app.owner_login.clone();
    assert_eq!(email, "owner@switchboard.local");

    // The cookie: HttpOnly, SameSite, not Secure on plain http.
    let r = login(&app, &email, &password).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/calls");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "{set}");

    // State changes need the session's CSRF token and our own origin.
    let org = app.org();
    let call = app.seed_call(org, None, "+14155550100").await;
    let (cookie, csrf) = session(&app, &email, &password).await;
    let del = format!("/calls/{}/delete", call.id);
    let r = c
        .post(app.url(&del))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("CSRF"), "{body}");
    let r = c
        .post(app.url(&del))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    app.store
        .get_call(org, call.id, false)
        .await
        .expect("still there");
    let r = c
        .post(app.url(&del))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        app.store.get_call(org, call.id, false).await.is_err(),
        "deleted"
    );

    // `user create` prints the documented JSON; the generated password signs in.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "user",
            "create",
            "Alice@Example.com",
            "--org",
            "default",
            "--role",
            "viewer",
        ])
        .args(app.test_db().cli_args())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["email"], "alice@example.com");
    assert_eq!(v["role"], "viewer");
    assert_eq!(v["organization_id"], app.org_id.as_str());
    let alice_pw = v["password"].as_str().unwrap().to_string();
    assert!(alice_pw.len() >= 16);
    // The same email again is refused; a short password on stdin too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "user",
            "create",
            "alice@example.com",
            "--org",
            &app.org_id,
            "--role",
            "admin",
        ])
        .args(app.test_db().cli_args())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let (alice, alice_csrf) = session(&app, "alice@example.com", &alice_pw).await;
    // A viewer changes nothing (403) and sees no API keys page.
    let call = app.seed_call(org, None, "+14155550101").await;
    let r = c
        .post(app.url(&format!("/calls/{}/delete", call.id)))
        .header("cookie", &alice)
        .form(&[("csrf", alice_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .get(app.url("/keys"))
        .header("cookie", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Owners create a named API key (shown once), which works, and revoke it.
    let r = c
        .post(app.url("/keys"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("name", "ci")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    let key = html
        .split("shown only once: ")
        .nth(1)
        .and_then(|s| s.get(..67))
        .expect("the new key on the page")
        .to_string();
    assert!(key.starts_with("sk_"), "{key}");
    let r = app.get_with_key("/v1/calls", &key).await;
    assert_eq!(r.status(), StatusCode::OK);
    let keys = app.store.list_api_keys(org).await.unwrap();
    let ci = keys
        .iter()
        .find(|k| k.name.as_deref() == Some("ci"))
        .unwrap();
    let r = c
        .post(app.url(&format!("/keys/{}/revoke", ci.seq)))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = app.get_with_key("/v1/calls", &key).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Owners invite (a generated password, shown once) and remove users; removal ends the
    // removed user's sessions.
    let r = c
        .post(app.url("/users"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", "bob@example.com"),
            ("role", "admin"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    let bob_pw = html
        .split("shown only now: ")
        .nth(1)
        .and_then(|s| s.get(..32))
        .expect("the generated password on the page")
        .to_string();
    let (bob, bob_csrf) = session(&app, "bob@example.com", &bob_pw).await;
    let bob_id = app
        .store
        .list_users(org)
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.email == "bob@example.com")
        .unwrap()
        .id;
    // An admin cannot manage users.
    let r = c
        .post(app.url("/users"))
        .header("cookie", &bob)
        .form(&[
            ("csrf", bob_csrf.as_str()),
            ("email", "eve@example.com"),
            ("role", "owner"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .post(app.url(&format!("/users/{bob_id}/remove")))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = c
        .get(app.url("/calls/rows"))
        .header("cookie", &bob)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Sign-in attempts are limited: after 5 failures even the right password waits (429).
    for _ in 0..5 {
        let r = login(&app, &email, "not the password").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = login(&app, &email, &password).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));

    // Sign-out ends the session.
    let r = c
        .post(app.url("/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = c
        .get(app.url("/calls/rows"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

switchboard_testkit::both!(access_over_http);

/// Behind HTTPS (`--public-url https://…`) the session cookie is `Secure`.
#[tokio::test]
async fn the_cookie_is_secure_behind_https() {
    let app = TestApp::spawn_with(Db::Sqlite, |c| {
        c.public_url = Some("https://switchboard.example".into());
        switchboard_testkit::hold_calls(c);
    })
    .await;
    let (email, password) = app.owner_login.clone();
    let r = login(&app, &email, &password).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.contains("; Secure"), "{set}");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
}

async fn get_as(app: &TestApp, cookie: &str, path: &str) -> reqwest::Response {
    raw_client()
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

/// A preview's WAV, decoded (hound): its samples, after checking it is 8 kHz mono.
async fn preview_samples(r: reqwest::Response) -> Vec<i16> {
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "audio/wav");
    let bytes = r.bytes().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("preview.wav");
    std::fs::write(&p, &bytes).unwrap();
    let (channels, rate, mut samples) = audio::read_wav(&p).unwrap();
    assert_eq!((channels, rate), (1, 8000));
    samples.remove(0)
}

/// The agent page's voice preview and test call over HTTP, on both databases: the preview is
/// real speech in the agent's voice (decoded, not silence), the form's values override the
/// saved ones, bad input is a clear 400; the test call goes through the dispatch rules of
/// `POST /v1/call`; viewers may listen but not call; expired sessions are purged.
async fn trying_an_agent_over_http(db: Db) {
    let app = TestApp::spawn_holding_calls(db).await;
    let org = app.org();
    let c = raw_client();
    let (s, agent) = switchboard_testkit::status_json(
        app.post_json(
            "/v1/agents",
            &json!({"name": "Preview desk", "initial_message": "Hello {{first_name}}, thank you for calling the preview desk."}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 201, "{agent}");
    let aid = agent["id"].as_str().unwrap().to_string();
    let (email, password) = app.owner_login.clone();
    let (cookie, csrf) = session(&app, &email, &password).await;

    // Dashboard responses carry the request id like the API's.
    let r = get_as(&app, &cookie, &format!("/agents/{aid}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().contains_key("x-request-id"));
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"id="preview""#) && html.contains(r#"id="test-call""#));

    // The saved greeting, spoken: about 3 s of speech at speech level.
    let saved =
        preview_samples(get_as(&app, &cookie, &format!("/agents/{aid}/preview.wav")).await).await;
    let secs = saved.len() as f64 / 8000.0;
    assert!((1.5..15.0).contains(&secs), "{secs} s");
    assert!(
        audio::dbfs(audio::rms(&saved)) > -35.0,
        "not silence: {} dBFS",
        audio::dbfs(audio::rms(&saved))
    );
    // Unsaved text from the form: shorter text, shorter audio; another voice, other audio.
    let short = preview_samples(
        get_as(
            &app,
            &cookie,
            &format!("/agents/{aid}/preview.wav?text=Hi&voice=&language="),
        )
        .await,
    )
    .await;
    assert!(
        short.len() * 2 < saved.len(),
        "{} vs {}",
        short.len(),
        saved.len()
    );
    assert!(audio::dbfs(audio::rms(&short)) > -35.0);
    let en = preview_samples(
        get_as(
            &app,
            &cookie,
            &format!("/agents/{aid}/preview.wav?text=Good+morning&voice=en"),
        )
        .await,
    )
    .await;
    let de = preview_samples(
        get_as(
            &app,
            &cookie,
            &format!("/agents/{aid}/preview.wav?text=Good+morning&voice=de"),
        )
        .await,
    )
    .await;
    assert_ne!(en, de, "the voice is the form's");
    // An empty greeting: a default sentence naming the agent.
    let default =
        preview_samples(get_as(&app, &cookie, &format!("/agents/{aid}/preview.wav?text=")).await)
            .await;
    assert!(default.len() > short.len());

    // Too long, a voice espeak-ng does not have, not signed in, not ours: clear errors.
    let long = "a".repeat(301);
    let r = get_as(
        &app,
        &cookie,
        &format!("/agents/{aid}/preview.wav?text={long}"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let e: Value = r.json().await.unwrap();
    assert!(e["message"].as_str().unwrap().contains("300"), "{e}");
    let r = get_as(
        &app,
        &cookie,
        &format!("/agents/{aid}/preview.wav?voice=xx-nope"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let e: Value = r.json().await.unwrap();
    assert!(e["message"].as_str().unwrap().contains("voice"), "{e}");
    let r = c
        .get(app.url(&format!("/agents/{aid}/preview.wav")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (other, _) = app.new_org("Other Inc").await;
    let other = switchboard_domain::OrgId::parse_param("org", &other).unwrap();
    let theirs = app.seed_agent(other, "Theirs").await;
    let r = get_as(&app, &cookie, &format!("/agents/{}/preview.wav", theirs.id)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // A test call: a bad number is shown on the page (400), kept for correction.
    let call_path = format!("/agents/{aid}/call");
    let r = c
        .post(app.url(&call_path))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("to", "12345")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("is not an E.164 phone number") && html.contains(r#"aria-invalid="true""#),
        "{html}"
    );
    assert!(html.contains(r#"value="12345""#));
    // Without the CSRF token: refused, nothing dispatched.
    let r = c
        .post(app.url(&call_path))
        .header("cookie", &cookie)
        .form(&[("to", "+14155550188")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.store.queued_count().await.unwrap(), 0);
    // A good number: the call is created and queued as POST /v1/call does, and we go to it.
    let r = c
        .post(app.url(&call_path))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("to", "+1 415 555 0188")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let id = loc
        .strip_prefix("/calls/")
        .expect("to the call's page")
        .to_string();
    let (s, call) =
        switchboard_testkit::status_json(app.get(&format!("/v1/call/{id}")).await).await;
    assert_eq!(s, 200, "{call}");
    assert_eq!(call["status"], "dialing");
    assert_eq!(call["agent_id"], aid.as_str());
    assert_eq!(call["to_number"], "+14155550188", "{call}");
    assert_eq!(app.store.queued_count().await.unwrap(), 1);
    let page = get_as(&app, &cookie, &loc).await.text().await.unwrap();
    assert!(page.contains("+14155550188") && page.contains("Preview desk"));

    // A viewer may listen (it changes nothing) but not call.
    let hash = switchboard_dashboard::hash_password("viewer-password-1").unwrap();
    app.store
        .create_user(org, "viewer@example.com", &hash, "viewer")
        .await
        .unwrap();
    let (viewer, viewer_csrf) = session(&app, "viewer@example.com", "viewer-password-1").await;
    preview_samples(get_as(&app, &viewer, &format!("/agents/{aid}/preview.wav?text=Hi")).await)
        .await;
    let r = c
        .post(app.url(&call_path))
        .header("cookie", &viewer)
        .form(&[("csrf", viewer_csrf.as_str()), ("to", "+14155550189")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.store.queued_count().await.unwrap(), 1);
    let html = get_as(&app, &viewer, &format!("/agents/{aid}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"id="preview""#) && !html.contains(r#"id="test-call""#));

    // Expired sessions are purged in bounded rounds (serve runs one every 10 minutes); live
    // ones stay.
    let owner = app
        .store
        .list_users(org)
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.email == email)
        .unwrap();
    let hour_ago = switchboard_domain::Timestamp(
        switchboard_domain::Timestamp::now().micros() - 3_600_000_000,
    );
    app.store
        .create_session(owner.id, "expired-session", "x", hour_ago)
        .await
        .unwrap();
    assert_eq!(
        app.store.purge_expired_sessions(0).await.unwrap(),
        0,
        "bounded"
    );
    assert_eq!(app.store.purge_expired_sessions(1000).await.unwrap(), 1);
    assert_eq!(app.store.purge_expired_sessions(1000).await.unwrap(), 0);
    let r = get_as(&app, &cookie, "/calls/rows").await;
    assert_eq!(r.status(), StatusCode::OK, "a live session stays");
}

switchboard_testkit::both!(trying_an_agent_over_http);
