//! The original system's own web interface (its React/Vite build, issue 11) in headless Chromium
//! against `bank up --seed-compat`: choose a bank, sign up, sign out and in, deposit, look up a
//! key and send a Pix to another bank, mount and send a packet from two banks, see a refused Pix's
//! reason, then `bank audit` clean. Each step is asserted on the page and on the bank.
//!
//! Ignored: it needs the interface built from the original repository (network: git and npm), so
//! it is not part of CI. `scripts/seed-ui.sh` builds the interface and runs it with
//! `SEED_UI_DIST=<its dist/>`. Needs Debian's `chromium` and `chromium-driver`.
//!
//! The interface is a single-page app with client-side routes (`/logged/<bank>/<n>`), so the test
//! serves `dist/` itself with a fallback to `index.html` for any path that is not a file.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bank_core::document::Cpf;
use bank_testkit::browser::{Browser, Look};
use bank_testkit::up::Up;
use fantoccini::{Client, Locator};
use serde_json::{Value, json};

const BANK: &str = env!("CARGO_BIN_EXE_bank");
const BANKS: u32 = 3;
/// Longest one step may wait for the page or the bank.
const STEP: Duration = Duration::from_secs(30);
const PASSWORD: &str = "a long seed passphrase";

// ---------------------------------------------------------------------------------------------
// The interface's files, with the single-page app's fallback.

/// Decodes `%XX` escapes (the build has file names with spaces); `None` if malformed.
fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "gif" => "image/gif",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

/// The file under `dist` that `uri` names, or `index.html` when it names none (a client-side
/// route). Paths with `..` or other non-plain parts are refused.
async fn spa_file(dist: Arc<PathBuf>, uri: Uri) -> Response {
    let Some(decoded) = percent_decode(uri.path()) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let relative = Path::new(decoded.trim_start_matches('/'));
    if !relative.components().all(|c| matches!(c, Component::Normal(_))) {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let candidate = dist.join(relative);
    let file =
        if !relative.as_os_str().is_empty() && candidate.is_file() { candidate } else { dist.join("index.html") };
    match tokio::fs::read(&file).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type(&file))], bytes).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Serves `dist` on a free local port; returns its URL.
async fn serve_interface(dist: PathBuf) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the interface's server");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let dist = Arc::new(dist);
    let app = Router::new().fallback(move |uri: Uri| spa_file(dist.clone(), uri));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve the interface") });
    url
}

#[tokio::test]
async fn the_server_falls_back_to_the_app_and_refuses_escapes() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("assets")).expect("assets");
    std::fs::write(dir.path().join("index.html"), "<html>app</html>").expect("index");
    std::fs::write(dir.path().join("assets/Eleven Bank-1.svg"), "<svg/>").expect("svg");
    let url = serve_interface(dir.path().to_path_buf()).await;
    let http = reqwest::Client::new();
    let get = |path: &'static str| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let r = http.get(format!("{url}{path}")).send().await.expect("GET");
            let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap_or("").to_string());
            (r.status().as_u16(), ct.unwrap_or_default(), r.text().await.expect("body"))
        }
    };
    assert_eq!(get("/").await, (200, "text/html; charset=utf-8".into(), "<html>app</html>".into()));
    assert_eq!(get("/logged/Eleven/1").await.2, "<html>app</html>", "a client-side route gets the app");
    assert_eq!(get("/assets/Eleven%20Bank-1.svg").await, (200, "image/svg+xml".into(), "<svg/>".into()));
    assert_eq!(get("/assets/%zz").await.0, 400);
    // Clients resolve `..` themselves; a raw request path may still carry it, encoded or not.
    let dist = Arc::new(dir.path().join("assets"));
    for raw in ["/../index.html", "/%2e%2e/index.html", "/a/%2E%2E/%2e%2e/index.html"] {
        let answer = spa_file(dist.clone(), Uri::from_static(raw)).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "no way out of dist: {raw}");
    }
}

// ---------------------------------------------------------------------------------------------
// Driving the browser.

async fn poll<T>(what: &str, mut ready: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(value) = ready().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not reached within {STEP:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn path(c: &Client) -> String {
    c.current_url().await.map(|u| u.path().to_string()).unwrap_or_default()
}

/// The page's text (empty while the page is being replaced).
async fn body(c: &Client) -> String {
    match c.find(Locator::Css("body")).await {
        Ok(body) => body.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn wait_path(c: &Client, what: &str, prefix: &str) -> String {
    poll(what, async || {
        let p = path(c).await;
        p.starts_with(prefix).then_some(p)
    })
    .await
}

async fn wait_text(c: &Client, what: &str, text: &str) {
    poll(what, async || body(c).await.contains(text).then_some(())).await;
}

/// Clicks the element, waiting for it to exist (React renders after state changes).
async fn click(c: &Client, locator: Locator<'_>) {
    poll(&format!("click {locator:?}"), async || c.find(locator).await.ok()?.click().await.ok()).await;
}

async fn click_button(c: &Client, label: &str) {
    let xpath = format!("//button[normalize-space()='{label}']");
    click(c, Locator::XPath(&xpath)).await;
}

/// Types into a (React-controlled) field, key by key as a person would.
async fn type_into(c: &Client, css: &str, text: &str) {
    let field = poll(&format!("field {css}"), async || c.find(Locator::Css(css)).await.ok()).await;
    field.send_keys(text).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
}

async fn screenshot(c: &Client, name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/seed-ui");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(png) = c.screenshot().await {
        let _ = std::fs::write(dir.join(format!("{name}.png")), png);
    }
}

// ---------------------------------------------------------------------------------------------
// The steps, as a customer does them in the original interface.

struct Person {
    name: &'static str,
    email: &'static str,
    cpf: String,
}

/// Presses the button labelled `label` until the browser is at `target`. Two of the original's
/// buttons act only on a second press, as a person would find: "Go to Bank Page" fetches the
/// address saved by the press before (a stale React state; the first press fetches the page
/// itself and stops), and "Login" reads the account it stored on the press before (the first
/// press signs in, then throws reading `userData.accountNumber` of a state not yet updated).
async fn press_until_at(c: &Client, label: &str, target: &str) {
    let xpath = format!("//button[normalize-space()='{label}']");
    let mut presses = 0;
    poll(&format!("{target} after pressing '{label}'"), async || {
        if path(c).await == target {
            return Some(());
        }
        if c.find(Locator::XPath(&xpath)).await.ok()?.click().await.is_ok() {
            presses += 1;
        }
        // The press's request and React's update take a moment; look again before pressing.
        for _ in 0..20 {
            if path(c).await == target {
                return Some(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    })
    .await;
    eprintln!("seed-ui: '{label}' took {presses} press(es)");
}

/// The first page: type the bank's address and go to the bank's landing page (`bank_name` is
/// what `GET /bank` answers).
async fn choose_bank(c: &Client, ui: &str, bank_url: &str, bank_name: &str) {
    c.goto(&format!("{ui}/")).await.expect("the first page");
    type_into(c, "#agencyNumber", bank_url.trim_start_matches("http://")).await;
    press_until_at(c, "Go to Bank Page", &format!("/{bank_name}")).await;
    wait_text(c, "the landing page", "Create Account").await;
}

/// From the landing page: the sign-up form (an individual, not joint), then the dashboard.
/// Returns the account number from the dashboard's address.
async fn sign_up(c: &Client, bank_name: &str, who: &Person) -> u64 {
    click_button(c, "Create Account").await;
    wait_path(c, "the sign-up page", &format!("/go/{bank_name}/signup")).await;
    type_into(c, "#emailRegister", who.email).await;
    type_into(c, "#nameRegister", who.name).await;
    type_into(c, "#telephoneRegister", "(75) 99999-1234").await;
    click(c, Locator::Css("#personalAccountIsTrue")).await;
    click(c, Locator::Css("#joinetAccountIsFalse")).await;
    type_into(c, "#cpfHoldRegister", &who.cpf.replace(['.', '-'], "")).await;
    let typed = c.find(Locator::Css("#cpfHoldRegister")).await.expect("cpf field").prop("value").await;
    assert_eq!(typed.expect("value").as_deref(), Some(who.cpf.as_str()), "the form formats the CPF");
    type_into(c, "#passwordRegister", PASSWORD).await;
    type_into(c, "#passwordConfirm", PASSWORD).await;
    click_button(c, "Create").await;
    let dashboard = wait_path(c, "the dashboard after sign-up", &format!("/logged/{bank_name}/")).await;
    wait_text(c, "the holder's name on the dashboard", who.name).await;
    dashboard.rsplit('/').next().and_then(|n| n.parse().ok()).expect("the account number in the address")
}

/// The navigation bar's log-out button (its only button), then the login form, then the
/// dashboard again.
async fn sign_out_and_in(c: &Client, bank_name: &str, who: &Person, number: u64) {
    let dashboard = format!("/logged/{bank_name}/{number}");
    click(c, Locator::XPath("//button[img]")).await;
    poll("the landing page after logging out", async || (path(c).await == format!("/{bank_name}")).then_some(())).await;
    click_button(c, "Login").await;
    wait_path(c, "the login page", &format!("/go/{bank_name}/login")).await;
    type_into(c, "#emailRegister", who.email).await;
    type_into(c, "#passwordRegister", PASSWORD).await;
    press_until_at(c, "Login", &dashboard).await;
    wait_text(c, "the holder's name after signing in", who.name).await;
}

/// The seed API's view of an account (what the interface polls).
async fn account(http: &reqwest::Client, bank_url: &str, number: u64) -> Value {
    let url = format!("{bank_url}/account/data/{number}");
    http.get(url).send().await.expect("GET /account/data").json().await.expect("account JSON")
}

async fn wait_balance(http: &reqwest::Client, bank_url: &str, number: u64, balance: &str) {
    poll(&format!("balance {balance} at {bank_url} account {number}"), async || {
        let a = account(http, bank_url, number).await;
        (a["balance"] == balance && a["blockedBalance"] == "0.00").then_some(())
    })
    .await;
}

struct Step {
    name: &'static str,
}

impl Step {
    fn passed(&self) {
        eprintln!("seed-ui: PASS {}", self.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the original's interface built from the network: run scripts/seed-ui.sh"]
async fn the_original_interface_works_against_our_banks() {
    let dist = PathBuf::from(std::env::var_os("SEED_UI_DIST").expect("SEED_UI_DIST=<the interface's dist/>"));
    assert!(dist.join("index.html").is_file(), "{} has no index.html", dist.display());
    assert!(Browser::installed(), "apt-get install chromium chromium-driver");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let base_port = bank_testkit::ports::consecutive(BANKS as u16);
    let up = Up::start(BANK, &data, BANKS, base_port, &["--base-port", &base_port.to_string(), "--seed-compat"]);
    let http = bank_testkit::http::client(Some(Duration::from_secs(10)));
    up.wait_all_healthy(&http).await;
    let name_of = async |id: u32| -> String {
        let v: Value =
            http.get(format!("{}/bank", up.url(id))).send().await.expect("GET /bank").json().await.expect("json");
        v["nameBank"].as_str().expect("nameBank").to_string()
    };
    let (name1, name2, name3) = (name_of(1).await, name_of(2).await, name_of(3).await);
    let ui = serve_interface(dist).await;

    let look = Look { width: 1400, height: 1000, language: None };
    let browser = Browser::start(&dir.path().join("chromium-profile"), look).await;
    let c = browser.client.clone();

    let ana = Person { name: "Ana Souza", email: "ana@example.com", cpf: Cpf::from_base(101).formatted() };
    let bia = Person { name: "Bia Lima", email: "bia@example.com", cpf: Cpf::from_base(202).formatted() };
    let (b1, b2, b3) = (up.url(1), up.url(2), up.url(3));
    let scenario = async {
        let step = Step { name: "choose a bank (the first page, then the bank's landing page)" };
        choose_bank(&c, &ui, &b2, &name2).await;
        screenshot(&c, "01-landing").await;
        step.passed();

        let step = Step { name: "sign up (Bia at bank 2)" };
        let bia_number = sign_up(&c, &name2, &bia).await;
        assert_eq!(account(&http, &b2, bia_number).await["cpfCNPJ1"], bia.cpf.as_str());
        screenshot(&c, "02-dashboard-bia").await;
        step.passed();

        let step = Step { name: "choose another bank and sign up (Ana at bank 1)" };
        choose_bank(&c, &ui, &b1, &name1).await;
        let ana_number = sign_up(&c, &name1, &ana).await;
        step.passed();

        // Ana also has an account at bank 3 (opened through the same protocol, as tests.py
        // does), so her packet can draw on two banks.
        let open3 = json!({ "operation": "create", "clientCpfCNPJ": ana.cpf, "dataOperation": {
            "name1": ana.name, "cpfCNPJ1": ana.cpf, "name2": "", "cpfCNPJ2": "", "email": "ana3@example.com",
            "password": PASSWORD, "telephone": "(75) 99999-1234", "isFisicAccount": "true",
            "isJoinetAccount": "false" } });
        let r = http.post(format!("{b3}/operations")).json(&open3).send().await.expect("create at bank 3");
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap_or_default());
        let ana3: Value = r.json().await.expect("account JSON");
        let ana3_number = ana3["accountNumber"].as_u64().expect("accountNumber");
        let deposit3 = json!({ "operation": "deposit", "clientCpfCNPJ": ana.cpf,
            "dataOperation": { "value": "100", "method": "money" } });
        let r = http.post(format!("{b3}/operations")).json(&deposit3).send().await.expect("deposit at bank 3");
        assert_eq!(r.status().as_u16(), 200);

        let step = Step { name: "sign out and sign in" };
        sign_out_and_in(&c, &name1, &ana, ana_number).await;
        step.passed();

        let step = Step { name: "deposit (R$ 1000 in money)" };
        type_into(&c, "#valueDeposit", "1000").await;
        click(&c, Locator::Css("button[value='money']")).await;
        click_button(&c, "Pay").await;
        wait_balance(&http, &b1, ana_number, "1000.00").await;
        wait_text(&c, "the new balance on the dashboard", "1.000,00").await;
        screenshot(&c, "03-deposit").await;
        step.passed();

        let step = Step { name: "search a key at another bank and send a Pix (R$ 25.50 to Bia at bank 2)" };
        type_into(&c, "#keyInserted", &format!("2-{}", bia.cpf)).await;
        click_button(&c, "Search").await;
        wait_text(&c, "the receiver's name after Search", bia.name).await;
        wait_text(&c, "the receiver's bank after Search", &format!("{name2} Bank")).await;
        screenshot(&c, "04-pix-receiver").await;
        type_into(&c, "input[placeholder='Value:']", "25.50").await;
        click_button(&c, "Send").await;
        wait_balance(&http, &b1, ana_number, "974.50").await;
        wait_balance(&http, &b2, bia_number, "25.50").await;
        wait_text(&c, "the balance after the Pix", "974,50").await;
        wait_text(&c, "the Pix in the recent transactions", "Pix send").await;
        // The line says whom it paid ("To"), as the original's did.
        let to = Locator::XPath("//h2[normalize-space()='To']/following-sibling::h2");
        poll("the Pix line's receiver", async || {
            let text = c.find(to).await.ok()?.text().await.ok()?;
            (text == bia.name).then_some(())
        })
        .await;
        screenshot(&c, "05-pix-sent").await;
        step.passed();

        let step = Step { name: "send a packet (R$ 10 from bank 1 and R$ 20 from bank 3 to Bia at bank 2)" };
        click(&c, Locator::XPath("//a[normalize-space()='transfers']")).await;
        wait_path(&c, "the transfers page", &format!("/logged/{name1}/{ana_number}/transactions")).await;
        // The holder's banks come with the account data, polled each second.
        let third = format!("select option[value='{name3}']");
        poll("Ana's bank 3 among the packet's sources", async || c.find(Locator::Css(&third)).await.ok()).await;
        for (n, (source, value)) in [(name1.as_str(), "10"), (name3.as_str(), "20")].into_iter().enumerate() {
            click(&c, Locator::Css(&format!("select option[value='{source}']"))).await;
            type_into(&c, "#keyPix", &format!("2-{}", bia.cpf)).await;
            type_into(&c, "#value", value).await;
            click_button(&c, "add operation").await;
            poll(&format!("packet line {}", n + 1), async || {
                let lines = c.find_all(Locator::Css("li")).await.ok()?;
                (lines.len() == n + 1).then_some(())
            })
            .await;
        }
        screenshot(&c, "06-packet").await;
        click_button(&c, "Make Transaction").await;
        wait_balance(&http, &b1, ana_number, "964.50").await;
        wait_balance(&http, &b3, ana3_number, "80.00").await;
        wait_balance(&http, &b2, bia_number, "55.50").await;
        poll("the packet's lines cleared", async || {
            c.find_all(Locator::Css("li")).await.ok()?.is_empty().then_some(())
        })
        .await;
        screenshot(&c, "07-packet-sent").await;
        step.passed();

        let step = Step { name: "a refused Pix shows the bank's reason and moves nothing" };
        click(&c, Locator::XPath("//a[normalize-space()='dashboard']")).await;
        poll("the dashboard again", async || (path(&c).await == format!("/logged/{name1}/{ana_number}")).then_some(()))
            .await;
        type_into(&c, "#keyInserted", &format!("2-{}", bia.cpf)).await;
        click_button(&c, "Search").await;
        wait_text(&c, "the receiver's name after Search", bia.name).await;
        type_into(&c, "input[placeholder='Value:']", "5000").await;
        click_button(&c, "Send").await;
        // The interface's error overlay shows the refusal's text (a 4xx with CORS, plain text).
        wait_text(&c, "the refusal in the error overlay", "nothing moved").await;
        screenshot(&c, "08-pix-refused").await;
        assert_eq!(account(&http, &b1, ana_number).await["balance"], "964.50");
        assert_eq!(account(&http, &b2, bia_number).await["balance"], "55.50");
        // The attempt is listed, marked as an error (the original's interface draws an X).
        poll("the refused Pix listed as an error", async || {
            let line = account(&http, &b1, ana_number).await["transactions"][0].clone();
            (line["concluded"] == "error" && line["value"] == "5000.00" && line["receptor"] == bia.name).then_some(())
        })
        .await;
        step.passed();
    };
    // A failing step leaves its screenshot and the page's text behind.
    let result = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(scenario)).await;
    if result.is_err() {
        screenshot(&c, "failed").await;
        eprintln!("seed-ui: FAILED at {}; the page said:\n{}", path(&c).await, body(&c).await);
    }
    let _ = c.close().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }

    up.assert_audit_clean(BANK, "the interface's journey");
    eprintln!("seed-ui: PASS bank audit clean");
    assert!(up.stop(), "bank up stops cleanly");
}
