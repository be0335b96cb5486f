//! `natask web` against a real nats-server per test, driven in a headless
//! Chromium through chromedriver (both started here, on loopback, and
//! stopped by pid), plus raw HTTP requests for what a browser would not
//! send. State is set up and checked with natask-runtime.
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` (`scripts/dev
//! test` installs them) the browser parts fail when `CI` is set, and are
//! skipped with a notice otherwise. Screenshots of every page are written
//! to `target/web-screenshots/`.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fantoccini::{Client as Browser, ClientBuilder, Locator};
use natask_runtime::{task, Runtime, State, TaskError, TaskState};
use natask_testing::NatsServer;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

mod common;
use common::{connect, within, Worker, EVENT_DEADLINE};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

struct Flaky {
    healed: AtomicBool,
    succeeded: mpsc::UnboundedSender<u32>,
}

#[task(queue = "web_dlq")]
async fn web_flaky(flaky: State<Arc<Flaky>>, n: u32) -> Result<(), TaskError> {
    if !flaky.healed.load(Ordering::SeqCst) {
        return Err(TaskError::fatal("the <b>mail</b> server said no"));
    }
    let _ = flaky.succeeded.send(n);
    Ok(())
}

#[task(queue = "web_idle")]
async fn web_idle(n: u32) -> Result<(), TaskError> {
    let _ = n;
    Ok(())
}

#[task(queue = "web_later")]
async fn web_later(n: u32) -> Result<(), TaskError> {
    let _ = n;
    Ok(())
}

#[task(queue = "web_rate")]
async fn web_counted(n: u32) -> Result<(), TaskError> {
    let _ = n;
    Ok(())
}

#[task(queue = "web_guard")]
async fn web_guarded() -> Result<(), TaskError> {
    Ok(())
}

/// `natask web` as a child process on a free loopback port, killed (by
/// pid, `kill_on_drop`) when dropped.
struct Dashboard {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    url: String,
    /// `127.0.0.1:PORT`.
    address: String,
}

impl Dashboard {
    async fn start(server: &NatsServer, extra: &[&str]) -> Dashboard {
        let mut command = Command::new(env!("CARGO_BIN_EXE_natask"));
        for var in [
            "NATS_URL",
            "NATS_CONTEXT",
            "NATS_CREDS",
            "NATS_USER",
            "NATS_PASSWORD",
            "NATS_TOKEN",
            "NATASK_PREFIX",
            "NATASK_WEB_TOKEN",
        ] {
            command.env_remove(var);
        }
        command.args(["--server", &server.url(), "web", "--listen", "127.0.0.1:0"]);
        // The overview reloads itself every few seconds by default: not
        // under a test that reads it, unless the test says so.
        if !extra.contains(&"--refresh") {
            command.args(["--refresh", "0s"]);
        }
        let mut child = command
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("natask web starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        within(BufReader::new(stdout).read_line(&mut line))
            .await
            .expect("read natask web's stdout");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("natask web printed no address: {line:?}"))
            .to_owned();
        let address = url.trim_start_matches("http://").to_owned();
        Dashboard {
            child,
            url,
            address,
        }
    }

    async fn stop(mut self) {
        self.child.start_kill().expect("kill natask web");
        within(self.child.wait()).await.expect("reap natask web");
    }
}

/// What a raw HTTP/1.1 request got back.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request as written (a browser would not send some of them).
async fn raw(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut stream = within(tokio::net::TcpStream::connect(address))
        .await
        .expect("connect to natask web");
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" {
        request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut bytes = Vec::new();
    within(stream.read_to_end(&mut bytes)).await.expect("read");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// The text of the cells of the row of `#queues` whose first cell links to
/// `queue`, from the page's HTML.
fn queue_row(html: &str, queue: &str) -> Vec<String> {
    let link = format!(">{queue}</a></td>");
    let row = html
        .split("<tr>")
        .find(|row| row.contains(&link))
        .unwrap_or_else(|| panic!("no row `{queue}`: {html}"));
    row.split("<td>")
        .skip(1)
        .map(|cell| {
            let cell = cell.split("</td>").next().unwrap_or_default();
            // Drop the tags of a link.
            let mut text = String::new();
            let mut in_tag = false;
            for c in cell.chars() {
                match c {
                    '<' => in_tag = true,
                    '>' => in_tag = false,
                    c if !in_tag => text.push(c),
                    _ => {}
                }
            }
            text
        })
        .collect()
}

/// The CSRF token in a page's forms.
fn csrf_of(html: &str) -> String {
    let start = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("a form with a CSRF field: {html}"))
        + "name=\"csrf\" value=\"".len();
    html[start..start + 64].to_owned()
}

/// chromedriver on a free loopback port, in a process group of its own
/// with the Chromium it starts, killed (that group, by its id) when stopped
/// or dropped: a test that panics before it closes its browser session
/// leaves no Chromium behind. `None` (after a notice) when Chromium is not
/// installed and `CI` is not set.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    /// SIGKILL to chromedriver's process group (its pid), while chromedriver
    /// is not yet reaped so that the id is still its own.
    fn kill_group(&self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.kill_group();
    }
}

impl Driver {
    async fn start() -> Option<Driver> {
        let missing: Vec<&str> = [CHROMEDRIVER, CHROMIUM]
            .into_iter()
            .filter(|p| !std::path::Path::new(p).exists())
            .collect();
        if !missing.is_empty() {
            let message = format!(
                "{} missing: install them with `apt-get install -y chromium chromium-driver` \
                 (scripts/dev test does when run as root)",
                missing.join(" and ")
            );
            if std::env::var_os("CI").is_some() {
                panic!("{message}");
            }
            eprintln!("skipping the browser part of this test: {message}");
            return None;
        }
        let mut child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        // "ChromeDriver was started successfully on port 42071."
        let port = within(async {
            while let Some(line) = lines.next_line().await.expect("read chromedriver's stdout") {
                if let Some(port) = line
                    .split("started successfully on port ")
                    .nth(1)
                    .map(|p| p.trim_end_matches('.').to_owned())
                {
                    return port;
                }
            }
            panic!("chromedriver ended before it said its port");
        })
        .await;
        // Its later output is not read: drain it so that it never blocks.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Some(Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    async fn browser(&self) -> Browser {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-crash-reporter",
                    "--window-size=1280,900",
                ],
            }),
        );
        within(
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities)
                .connect(&self.url),
        )
        .await
        .expect("a Chromium session")
    }

    async fn stop(mut self) {
        self.kill_group();
        within(self.child.wait()).await.expect("reap chromedriver");
    }
}

/// Waits (bounded) for the element `css` on the current page.
async fn element(browser: &Browser, css: &str) -> fantoccini::elements::Element {
    let found = browser
        .wait()
        .at_most(EVENT_DEADLINE)
        .every(Duration::from_millis(50))
        .for_element(Locator::Css(css))
        .await;
    match found {
        Ok(element) => element,
        Err(e) => {
            let url = browser.current_url().await.map(|u| u.to_string());
            let source = browser.source().await.unwrap_or_default();
            panic!("no `{css}` on {url:?}: {e}\n{source}")
        }
    }
}

/// Marks the current document, so that [`new_page`] can tell when another
/// has replaced it.
async fn mark_page(browser: &Browser) {
    browser
        .execute("window.natask_old_page = true;", vec![])
        .await
        .expect("mark the page");
}

/// Waits (bounded) until the marked document has been replaced.
async fn new_page(browser: &Browser) {
    let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
    loop {
        // Mid-navigation a script may fail: that is "not yet".
        let gone = browser
            .execute("return window.natask_old_page === undefined;", vec![])
            .await;
        if matches!(gone, Ok(serde_json::Value::Bool(true))) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "no new page came");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clicks the button `css` and waits for the page its form leads to.
async fn submit(browser: &Browser, css: &str) {
    let button = element(browser, css).await;
    mark_page(browser).await;
    button.click().await.expect("click");
    new_page(browser).await;
}

async fn text(browser: &Browser, css: &str) -> String {
    element(browser, css).await.text().await.expect("text")
}

/// The cells of the table row whose first cell reads `first`.
async fn row(browser: &Browser, table: &str, first: &str) -> Vec<String> {
    let rows = browser
        .find_all(Locator::Css(&format!("#{table} tbody tr")))
        .await
        .expect("rows");
    for row in rows {
        let mut cells = Vec::new();
        for cell in row.find_all(Locator::Css("td")).await.expect("cells") {
            cells.push(cell.text().await.expect("cell text"));
        }
        if cells.first().map(String::as_str) == Some(first) {
            return cells;
        }
    }
    panic!("no row `{first}` in #{table}");
}

/// Saves what the browser shows as `target/web-screenshots/{name}.png`.
async fn screenshot(browser: &Browser, name: &str) {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("web-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    let png = browser.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

#[tokio::test]
async fn the_dashboard_shows_queues_pauses_resumes_and_replays_in_a_browser() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let server = NatsServer::start();
    let client = connect(&server).await;
    let (succeeded, mut ran) = mpsc::unbounded_channel();
    let flaky = Arc::new(Flaky {
        healed: AtomicBool::new(false),
        succeeded,
    });
    let worker = Worker::start(
        Runtime::builder(client.clone())
            .queues(["web_dlq"])
            .state(Arc::clone(&flaky))
            .heartbeat(Duration::from_secs(1)),
    )
    .await;
    let mut dead = Vec::new();
    for n in 0..2 {
        let id = WebFlaky::new(n).enqueue(&client).await.unwrap().id;
        assert_eq!(
            within(client.wait(id, EVENT_DEADLINE)).await.unwrap().state,
            TaskState::Dead
        );
        dead.push(id);
    }
    for n in 0..3 {
        WebIdle::new(n).enqueue(&client).await.unwrap();
    }
    let later = WebLater::new(7)
        .enqueue_in(&client, Duration::from_secs(3600))
        .await
        .unwrap()
        .id;
    let dashboard = Dashboard::start(&server, &[]).await;
    let browser = driver.browser().await;

    // The overview: one row per queue.
    browser.goto(&format!("{}/", dashboard.url)).await.unwrap();
    let idle = row(&browser, "queues", "web_idle").await;
    assert_eq!(idle[1..5], ["3", "0", "no", "0"], "{idle:?}");
    assert_ne!(idle[5], "-", "an oldest task: {idle:?}");
    let dlq = row(&browser, "queues", "web_dlq").await;
    assert_eq!(dlq[1..5], ["0", "0", "no", "2"], "{dlq:?}");
    screenshot(&browser, "overview").await;

    // Pause and resume from the queue's page.
    element(&browser, "#queues a[href='/queues/web_dlq']")
        .await
        .click()
        .await
        .unwrap();
    submit(&browser, "#pause").await;
    element(&browser, "#resume").await;
    assert!(
        text(&browser, "#flash").await.contains("paused"),
        "a flash message"
    );
    assert_eq!(text(&browser, "#paused").await, "yes");
    assert!(
        client.queue("web_dlq").info().await.unwrap().is_paused(),
        "paused for the runtime"
    );
    screenshot(&browser, "queue").await;
    submit(&browser, "#resume").await;
    element(&browser, "#pause").await;
    assert_eq!(text(&browser, "#paused").await, "no");
    assert!(!client.queue("web_dlq").info().await.unwrap().is_paused());

    // The dead letters, one of them, and its replay.
    browser
        .goto(&format!("{}/dlq", dashboard.url))
        .await
        .unwrap();
    let first = row(&browser, "letters", &dead[0].to_string()).await;
    assert_eq!(
        first[1..5],
        ["web_dlq", "web_flaky", "fatal", "1"],
        "{first:?}"
    );
    assert_eq!(
        first[6], "the <b>mail</b> server said no",
        "escaped, shown as text"
    );
    screenshot(&browser, "dlq").await;
    element(&browser, &format!("#letters a[href='/dlq/{}']", dead[0]))
        .await
        .click()
        .await
        .unwrap();
    let payload: serde_json::Value =
        serde_json::from_str(&text(&browser, "#payload").await).expect("pretty JSON");
    assert_eq!(payload, serde_json::json!({ "n": 0 }));
    assert_eq!(
        text(&browser, "#error-text").await,
        "the <b>mail</b> server said no"
    );
    screenshot(&browser, "letter").await;
    flaky.healed.store(true, Ordering::SeqCst);
    submit(&browser, "#replay").await;
    assert!(text(&browser, "#flash").await.contains("replayed"));
    assert_eq!(within(ran.recv()).await, Some(0), "the replayed task ran");
    let done = within(client.wait(dead[0], EVENT_DEADLINE)).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded);
    assert_eq!(
        browser
            .find_all(Locator::Css("#letters tbody tr"))
            .await
            .unwrap()
            .len(),
        1
    );

    // A task looked up by id.
    browser
        .goto(&format!("{}/tasks", dashboard.url))
        .await
        .unwrap();
    element(&browser, "#task-id")
        .await
        .send_keys(&dead[0].to_string())
        .await
        .unwrap();
    submit(&browser, "#look-up").await;
    assert_eq!(text(&browser, "#state").await, "succeeded");
    screenshot(&browser, "task").await;

    // Schedules, workers, catalog.
    browser
        .goto(&format!("{}/schedules", dashboard.url))
        .await
        .unwrap();
    let delayed = row(&browser, "schedules", "delayed").await;
    assert_eq!(
        delayed[1..4],
        ["web_later", "web_later", &later.to_string()],
        "{delayed:?}"
    );
    screenshot(&browser, "schedules").await;
    browser
        .goto(&format!("{}/workers", dashboard.url))
        .await
        .unwrap();
    let workers = text(&browser, "#workers").await;
    assert!(workers.contains("web_dlq 0/"), "{workers}");
    assert!(
        workers.contains(&std::process::id().to_string()),
        "{workers}"
    );
    screenshot(&browser, "workers").await;
    browser
        .goto(&format!("{}/catalog", dashboard.url))
        .await
        .unwrap();
    assert_eq!(text(&browser, "#task-web_flaky").await, "web_flaky");
    let schema = text(&browser, ".schema").await;
    assert!(schema.contains("\"properties\""), "{schema}");
    screenshot(&browser, "catalog").await;

    // The rest replayed at once.
    browser
        .goto(&format!("{}/dlq", dashboard.url))
        .await
        .unwrap();
    submit(&browser, "#replay-all").await;
    assert_eq!(text(&browser, "#flash").await, "1 dead letters replayed");
    assert_eq!(within(ran.recv()).await, Some(1));
    assert_eq!(text(&browser, "#empty").await, "no dead letters");

    // Two new letters: one deleted alone, the other purged with its queue's.
    flaky.healed.store(false, Ordering::SeqCst);
    let mut doomed = Vec::new();
    for n in 10..12 {
        let id = WebFlaky::new(n).enqueue(&client).await.unwrap().id;
        let state = within(client.wait(id, EVENT_DEADLINE)).await.unwrap().state;
        assert_eq!(state, TaskState::Dead);
        doomed.push(id);
    }
    browser
        .goto(&format!("{}/dlq/{}", dashboard.url, doomed[0]))
        .await
        .unwrap();
    submit(&browser, "#delete").await;
    assert_eq!(
        text(&browser, "#flash").await,
        format!("dead letter {} deleted", doomed[0])
    );
    let dead_letters = client.dead_letters();
    assert!(
        dead_letters.get(doomed[0]).await.is_err(),
        "the deleted letter is gone"
    );
    assert!(dead_letters.get(doomed[1]).await.is_ok(), "only that one");
    // A purge asks first, and deletes nothing until confirmed.
    submit(&browser, "#purge").await;
    assert_eq!(
        text(&browser, "#question").await,
        "Delete the 1 dead letters of queue web_dlq? They cannot be replayed afterwards."
    );
    assert!(dead_letters.get(doomed[1]).await.is_ok(), "not yet purged");
    submit(&browser, "#confirm-purge").await;
    assert_eq!(text(&browser, "#flash").await, "1 dead letters deleted");
    let left = dead_letters
        .list_matching(Some("web_dlq"), None, 0, 10)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    assert!(ran.try_recv().is_err(), "neither ran");

    browser.close().await.expect("close the session");
    dashboard.stop().await;
    driver.stop().await;
    worker.stop().await;
}

#[tokio::test]
async fn a_post_without_the_csrf_token_or_from_another_site_changes_nothing() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    // A worker creates the queue's consumer, which a pause is stored on.
    let worker = Worker::start(Runtime::builder(client.clone()).queues(["web_guard"])).await;
    let dashboard = Dashboard::start(&server, &[]).await;
    let address = dashboard.address.as_str();
    let origin = format!("http://{address}");
    let paused = || async { client.queue("web_guard").info().await.unwrap().is_paused() };

    let page = raw(address, "GET", "/queues/web_guard", &[], "").await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    let csrf = csrf_of(&page.body);

    let refused = [
        ("no token", vec![], String::new()),
        ("a wrong token", vec![], format!("csrf={}", "0".repeat(64))),
        (
            "another site's Origin",
            vec![("Origin", "http://evil.example")],
            format!("csrf={csrf}"),
        ),
        (
            "a cross-site fetch",
            vec![("Sec-Fetch-Site", "cross-site")],
            format!("csrf={csrf}"),
        ),
    ];
    for (what, headers, body) in refused {
        let answer = raw(address, "POST", "/queues/web_guard/pause", &headers, &body).await;
        assert_eq!(answer.status, 403, "{what}: {answer:?}");
        assert!(!paused().await, "{what} paused the queue");
    }
    let get = raw(address, "GET", "/queues/web_guard/pause", &[], "").await;
    assert_eq!(get.status, 405, "GET changes nothing: {get:?}");
    assert!(!paused().await);

    // The same POST with the token from this site's page does it.
    let answer = raw(
        address,
        "POST",
        "/queues/web_guard/pause",
        &[("Origin", &origin), ("Sec-Fetch-Site", "same-origin")],
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(answer.status, 303, "{answer:?}");
    assert!(
        answer
            .header("location")
            .unwrap()
            .starts_with("/queues/web_guard?flash="),
        "{answer:?}"
    );
    assert!(paused().await);
    WebGuarded::new().enqueue(&client).await.unwrap();

    // A non-loopback address needs --allow-remote.
    let remote = Command::new(env!("CARGO_BIN_EXE_natask"))
        .args(["--server", &server.url(), "web", "--listen", "0.0.0.0:0"])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("natask runs");
    assert_eq!(remote.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&remote.stderr);
    assert!(
        stderr.contains("not a loopback address") && stderr.contains("--allow-remote"),
        "{stderr}"
    );

    dashboard.stop().await;
    worker.stop().await;
}

#[tokio::test]
async fn with_a_web_token_every_request_needs_it() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    WebGuarded::new().enqueue(&client).await.unwrap();
    let dashboard =
        Dashboard::start(&server, &["--web-token", "open sesame", "--refresh", "1s"]).await;
    let address = dashboard.address.as_str();

    for path in ["/", "/dlq", "/queues/web_guard", "/?token=wrong"] {
        let answer = raw(address, "GET", path, &[], "").await;
        assert_eq!(answer.status, 401, "{path}: {answer:?}");
        assert!(!answer.body.contains("web_guard"), "{path} shows nothing");
    }
    let bearer = raw(
        address,
        "GET",
        "/",
        &[("Authorization", "Bearer open sesame")],
        "",
    )
    .await;
    assert_eq!(bearer.status, 200);
    assert!(bearer.body.contains("web_guard"), "{}", bearer.body);
    let post = raw(address, "POST", "/queues/web_guard/pause", &[], "").await;
    assert_eq!(post.status, 401, "a POST needs the token first");

    let login = raw(
        address,
        "GET",
        "/dlq?token=open%20sesame&queue=web_guard",
        &[],
        "",
    )
    .await;
    assert_eq!(login.status, 303, "{login:?}");
    assert_eq!(
        login.header("location"),
        Some("/dlq?queue=web_guard"),
        "the token leaves the URL"
    );
    let cookie = login.header("set-cookie").expect("a cookie").to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("sesame"),
        "the cookie holds a hash, not the token: {cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    let in_again = raw(address, "GET", "/", &[("Cookie", pair)], "").await;
    assert_eq!(in_again.status, 200);

    // The same in a browser: the login link, then pages without the token.
    if let Some(driver) = Driver::start().await {
        let browser = driver.browser().await;
        browser
            .goto(&format!("{}/?token=open%20sesame", dashboard.url))
            .await
            .unwrap();
        let queue = row(&browser, "queues", "web_guard").await;
        assert_eq!(queue[1], "1", "{queue:?}");
        assert_eq!(browser.current_url().await.unwrap().query(), None);
        // The overview reloads itself (its script passes the page's CSP)
        // and stays in with the cookie.
        mark_page(&browser).await;
        new_page(&browser).await;
        assert_eq!(row(&browser, "queues", "web_guard").await[1], "1");
        browser
            .goto(&format!("{}/workers", dashboard.url))
            .await
            .unwrap();
        assert_eq!(browser.title().await.unwrap(), "Workers · natask");
        browser.close().await.expect("close the session");
        driver.stop().await;
    }
    dashboard.stop().await;
}

#[tokio::test]
async fn the_overview_computes_rates_between_two_loads() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let worker = Worker::start(Runtime::builder(client.clone()).queues(["web_rate"])).await;
    let first = WebCounted::new(0).enqueue(&client).await.unwrap().id;
    within(client.wait(first, EVENT_DEADLINE)).await.unwrap();
    let dashboard = Dashboard::start(&server, &[]).await;
    let address = dashboard.address.as_str();

    let before = raw(address, "GET", "/", &[], "").await;
    let started = tokio::time::Instant::now();
    let cells = queue_row(&before.body, "web_rate");
    assert_eq!(
        cells[6..8],
        ["-", "-"],
        "no rate on the first load: {cells:?}"
    );
    // Four tasks stored and done between the loads.
    for n in 1..=4 {
        let id = WebCounted::new(n).enqueue(&client).await.unwrap().id;
        let done = within(client.wait(id, EVENT_DEADLINE)).await.unwrap();
        assert_eq!(done.state, TaskState::Succeeded);
    }
    // Looks less than a second apart keep the first one: the rates need
    // the second to have passed (a measuring interval, not a wait for an
    // event).
    tokio::time::sleep_until(started + Duration::from_millis(1100)).await;
    let after = raw(address, "GET", "/", &[], "").await;
    let secs = started.elapsed().as_secs_f64();
    let cells = queue_row(&after.body, "web_rate");
    let enqueued: f64 = cells[6].parse().expect("a rate");
    let done: f64 = cells[7].parse().expect("a rate");
    assert_eq!(enqueued, done, "as many done as enqueued: {cells:?}");
    // 4 tasks in at least 1.1 s and at most `secs` (plus rounding).
    assert!(
        (4.0 / secs - 0.05..=4.0 / 1.1 + 0.05).contains(&enqueued),
        "{enqueued} tasks/s over {secs} s"
    );
    dashboard.stop().await;
    worker.stop().await;
}
