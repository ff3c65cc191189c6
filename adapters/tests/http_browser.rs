//! Headless Chromium against a running node: the tracking page shows the
//! parcel's timeline and takes a new event live over SSE; the dashboard
//! plots the stats it polls. Screenshots go to `target/browser/`.
//!
//! The live check drives Chromium over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: JSON messages separated by NUL on fds 3 and
//! 4, wired by `sh`), so the test waits on the page's own state (a promise
//! evaluated in the page) instead of sleeping. Needs Debian's `chromium`
//! (`.ci/run` installs it); fails loudly without.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use dropline_operators::model::{Status, SubStatus};
use http_support::*;
use serde_json::{Value, json};

/// Upper bound on any wait for Chromium (a hang fails the test instead of
/// blocking CI; it is not a timing assertion).
const CHROMIUM_WAIT_MAX: Duration = Duration::from_secs(120);

const BASE_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {name}"))
            .output()
            && out.status.success()
        {
            return PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        }
    }
    panic!("chromium is not installed: `apt-get install chromium` (.ci/run installs it)");
}

fn shots_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A Chromium driven over the DevTools pipe.
struct Browser {
    child: Child,
    to: ChildStdin,
    from: mpsc::Receiver<Value>,
    next_id: u64,
    session: Option<String>,
}

impl Browser {
    fn start(profile: &Path) -> Browser {
        // fd 3 <- our stdin pipe (commands), fd 4 -> our stdout pipe.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$@" 3<&0 4>&1 0</dev/null 1>&2"#)
            .arg("sh")
            .arg(chromium())
            .args(BASE_ARGS)
            .arg("--remote-debugging-pipe")
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromium");
        let to = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (tx, from) = mpsc::channel();
        std::thread::spawn(move || {
            loop {
                let mut msg = Vec::new();
                match out.read_until(0, &mut msg) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        msg.pop();
                        if let Ok(v) = serde_json::from_slice::<Value>(&msg)
                            && tx.send(v).is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
        Browser {
            child,
            to,
            from,
            next_id: 1,
            session: None,
        }
    }

    /// Sends a command and waits (bounded) for its answer.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap();
        self.to.flush().unwrap();
        loop {
            let v = self
                .from
                .recv_timeout(CHROMIUM_WAIT_MAX)
                .unwrap_or_else(|_| panic!("no answer from chromium to {method}"));
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method} failed: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Opens a tab, attaches to it, and navigates it to `url` (the answer
    /// comes once the navigation committed).
    fn open(&mut self, url: &str) {
        let target = self.call("Target.createTarget", json!({"url": "about:blank"}));
        let session = self.call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        self.session = Some(session["sessionId"].as_str().unwrap().to_string());
        let nav = self.call("Page.navigate", json!({"url": url}));
        assert!(nav.get("errorText").is_none(), "navigation failed: {nav}");
    }

    /// Evaluates `expr` in the page, awaiting a returned promise.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "awaitPromise": true, "returnByValue": true}),
        );
        assert!(
            r.get("exceptionDetails").is_none(),
            "page script failed: {r}"
        );
        r["result"]["value"].clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.session = None;
        let mut bytes = serde_json::to_vec(&json!({"id": 0, "method": "Browser.close"})).unwrap();
        bytes.push(0);
        let _ = self.to.write_all(&bytes);
        let _ = self.to.flush();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs Chromium once with `args` on `url` and returns its stdout (bounded).
fn run_chromium(args: &[String], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args(BASE_ARGS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromium");
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = tx.send(out);
    });
    match rx.recv_timeout(CHROMIUM_WAIT_MAX) {
        Ok(out) => {
            let _ = child.wait();
            out
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish on {url}");
        }
    }
}

/// Waits in the page until `cond` (a JS expression) holds, then returns
/// the page's HTML.
fn wait_in_page(b: &mut Browser, cond: &str) -> String {
    let expr = format!(
        "new Promise(function (done) {{ (function check() {{ if ({cond}) done(document.documentElement.outerHTML); else setTimeout(check, 20); }})(); }})"
    );
    b.eval(&expr).as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_page_and_dashboard_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _admin) = start_admin(dir.path()).await;
    let tn = "1Z999AA10123456784";
    create(&node, &order_json(tn, "ORD-1")).await;
    append_view(
        &node.log,
        &view(
            tn,
            Status::PickedUp,
            SubStatus::Accepted,
            0,
            1_732_000_000_000,
            "Louisville",
        ),
    );
    append_view(
        &node.log,
        &view(
            tn,
            Status::InTransit,
            SubStatus::ArrivalScan,
            1,
            1_732_050_000_000,
            "Memphis",
        ),
    );
    wait_status(&node, tn, Status::InTransit).await;
    let url = format!("{}/track/ups/{tn}?postal_code={POSTAL}", node.base);

    let profile = tempfile::tempdir().unwrap();
    let u = url.clone();
    let mut browser = tokio::task::spawn_blocking(move || {
        let mut b = Browser::start(profile.path());
        b.open(&u);
        // The server-rendered snapshot is on screen and the stream is open.
        let html = wait_in_page(
            &mut b,
            // The stream's first event (the current state) has been rendered,
            // so the next one is a live change.
            "document.readyState === 'complete' && document.body.getAttribute('data-sse-events') !== '0'",
        );
        (b, html, profile)
    })
    .await
    .unwrap();
    let html = &browser.1;
    assert!(
        html.contains("Louisville") && html.contains("Memphis"),
        "timeline missing:\n{html}"
    );
    assert!(html.contains("In transit"), "status missing:\n{html}");
    assert!(!html.contains(EMAIL) && !html.contains(PHONE));

    // A new event arrives while the page is open.
    node.handle
        .views()
        .wait_until(|v| v.subscribers(tn) > 0)
        .await;
    append_view(
        &node.log,
        &view(
            tn,
            Status::OutForDelivery,
            SubStatus::OnVehicle,
            2,
            1_732_100_000_000,
            "Atlanta",
        ),
    );
    let live = tokio::task::spawn_blocking(move || {
        let html = wait_in_page(
            &mut browser.0,
            "document.body.getAttribute('data-live-updates') !== '0'",
        );
        drop(browser);
        html
    })
    .await
    .unwrap();
    std::fs::write(shots_dir().join("track-live.html"), &live).unwrap();
    assert!(live.contains("live update received"), "{live}");
    assert!(live.contains("Out for delivery"), "{live}");
    assert!(live.contains("Atlanta"), "{live}");
    let order = |s: &str| live.find(s).unwrap();
    assert!(
        order("Atlanta") < order("Memphis") && order("Memphis") < order("Louisville"),
        "timeline not newest first"
    );

    // Screenshots: the tracking page (phone-sized) and the dashboard.
    let shots = shots_dir();
    let track_png = shots.join("tracking-page.png");
    let dash_png = shots.join("dashboard.png");
    let _ = std::fs::remove_file(&track_png);
    let _ = std::fs::remove_file(&dash_png);
    let (u, p) = (url.clone(), track_png.clone());
    tokio::task::spawn_blocking(move || {
        run_chromium(
            &[
                format!("--screenshot={}", p.display()),
                "--window-size=412,915".into(),
            ],
            &u,
        )
    })
    .await
    .unwrap();
    assert!(
        std::fs::metadata(&track_png).unwrap().len() > 1000,
        "no tracking screenshot"
    );

    // The dashboard polls the admin stats with the token from its fragment.
    let dash = format!("{}/dashboard#token={ADMIN_TOKEN}", node.base);
    let d = dash.clone();
    let dom = tokio::task::spawn_blocking(move || {
        run_chromium(
            &["--dump-dom".into(), "--virtual-time-budget=3000".into()],
            &d,
        )
    })
    .await
    .unwrap();
    assert!(
        !dom.contains("data-polls=\"0\""),
        "the dashboard never polled:\n{dom}"
    );
    assert!(
        dom.contains("12,345") || dom.contains("12345"),
        "ingest rate not shown:\n{dom}"
    );
    assert!(
        dom.contains("99.1% within SLO"),
        "SLO panel not shown:\n{dom}"
    );
    assert!(
        dom.contains("Drop mode: off"),
        "drop-mode switch not shown:\n{dom}"
    );
    let p = dash_png.clone();
    tokio::task::spawn_blocking(move || {
        run_chromium(
            &[
                format!("--screenshot={}", p.display()),
                "--window-size=1280,900".into(),
                "--virtual-time-budget=3000".into(),
            ],
            &dash,
        )
    })
    .await
    .unwrap();
    assert!(
        std::fs::metadata(&dash_png).unwrap().len() > 1000,
        "no dashboard screenshot"
    );
}
