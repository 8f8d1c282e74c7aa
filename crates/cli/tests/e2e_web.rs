//! The web pages end to end in headless Chromium against a real local consortium (`bank up
//! --banks 3`): sign up at two banks, deposit, a cross-bank Pix through its confirmation page, a
//! three-bank packet and its statement, a packet that fails and moves nothing, and a form posted
//! from another bank's page refused. The journey is walked twice: in Portuguese (the browser asks
//! for pt-BR), then in English (chosen with the switch in the page header, remembered in a
//! cookie); no page may show a message id. Screenshots of the main pages go to
//! target/screenshots/ (`pt-BR-…`, `en-…`).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without
//! /usr/bin/chromedriver the test is skipped, except under CI, where it fails.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bank_testkit::browser::{Browser, CHROMEDRIVER, Look};
use bank_testkit::up::Up;
use fantoccini::{Client, Locator};

const BANKS: u32 = 3;

fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshots dir");
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(screenshots_dir().join(format!("{name}.png")), png).expect("write screenshot");
}

async fn wait_until(what: &str, mut ready: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready().await {
        assert!(Instant::now() < deadline, "{what} did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(c: &Client, css: &str, text: &str) {
    let field = c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("field {css}: {e}"));
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("element {css}: {e}")).click().await.expect("click");
}

/// The text of the element `css`, waiting for it. A page that is still being replaced can hand
/// back an element of the page before (stale once the new one lands): look it up again then.
async fn text_of(c: &Client, css: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let element = c.wait().for_element(Locator::Css(css)).await.unwrap_or_else(|e| panic!("element {css}: {e}"));
        match element.text().await {
            Ok(text) => return text,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("text of {css}: {e}"),
        }
    }
}

async fn body(c: &Client) -> String {
    text_of(c, "body").await
}

/// What the pages say in one language, as the journey checks it.
struct Words {
    /// The screenshots' prefix and the language's tag.
    tag: &'static str,
    nothing_done: &'static str,
    hello: &'static str,
    deposit_done: &'static str,
    completed: &'static str,
    failed: &'static str,
    total_per_source: &'static str,
    pix_sent_to: &'static str,
    pix_received_from: &'static str,
    nothing_moved: &'static str,
    signed_out: &'static str,
    refund_receipt: &'static str,
    refund_from: &'static str,
}

const PORTUGUESE: Words = Words {
    tag: "pt-BR",
    nothing_done: "Nada foi feito",
    hello: "Olá",
    deposit_done: "Depósito feito",
    completed: "concluída",
    failed: "falhou",
    total_per_source: "Total por origem",
    pix_sent_to: "Pix enviado para",
    pix_received_from: "Pix recebido de",
    nothing_moved: "Nenhum dinheiro saiu",
    signed_out: "Você saiu da sua conta",
    refund_receipt: "Comprovante de devolução Pix",
    refund_from: "Devolução de Bia Lima",
};

const ENGLISH: Words = Words {
    tag: "en",
    nothing_done: "Nothing was done",
    hello: "Hello",
    deposit_done: "Deposit done",
    completed: "completed",
    failed: "failed",
    total_per_source: "Total per source",
    pix_sent_to: "Pix sent to",
    pix_received_from: "Pix received from",
    nothing_moved: "Nothing moved",
    signed_out: "You are signed out",
    refund_receipt: "Pix refund receipt",
    refund_from: "Refund from Bia Lima",
};

/// Fails if the page on screen shows a message id as a word of its own (an untranslated message).
async fn no_message_id(c: &Client, what: &str) {
    let ids = bank_testkit::messages::message_ids();
    bank_testkit::messages::assert_no_message_id(&ids, what, &body(c).await);
}

/// Takes a screenshot named after the language, after checking the page shows no message id.
async fn page_shot(c: &Client, w: &Words, name: &str) {
    no_message_id(c, &format!("{} {name}", w.tag)).await;
    shot(c, &format!("{}-{name}", w.tag)).await;
}

async fn sign_up(c: &Client, w: &Words, bank: &str, name: &str, document: &str, email: &str, screenshot: Option<&str>) {
    c.goto(&format!("{bank}/signup")).await.expect("signup page");
    fill(c, "#name", name).await;
    fill(c, "#document", document).await;
    fill(c, "#email", email).await;
    fill(c, "#phone", "+55 75 99999-1234").await;
    fill(c, "#password", "a long password").await;
    if let Some(name) = screenshot {
        page_shot(c, w, name).await;
    }
    click(c, "form.card button[type=submit]").await;
    // Waits for the dashboard: right after the click the browser may still show the form's page.
    wait_until("the dashboard after sign-up", async || text_of(c, "h1").await.starts_with(w.hello)).await;
}

async fn deposit(c: &Client, w: &Words, bank: &str, amount: &str) {
    c.goto(&format!("{bank}/deposit")).await.expect("deposit page");
    fill(c, "#amount", amount).await;
    click(c, "form.card button[type=submit]").await;
    // The click returns before the browser lands on the page the deposit redirects to.
    wait_until("the deposit's result", async || body(c).await.contains(w.deposit_done)).await;
}

async fn available(c: &Client, bank: &str) -> String {
    c.goto(&format!("{bank}/")).await.expect("dashboard");
    text_of(c, "#available").await
}

/// Fills packet leg `n` from the customer's account at `bank_id`.
async fn packet_leg(c: &Client, n: u32, bank_id: u32, key: &str, amount: &str) {
    click(c, &format!("#from-{n} option[value^='{bank_id}:']")).await;
    fill(c, &format!("#key-{n}"), key).await;
    fill(c, &format!("#amount-{n}"), amount).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_use_the_pages_in_a_real_browser() {
    if !Browser::installed() {
        assert!(std::env::var_os("CI").is_none(), "CI must install chromium and chromium-driver (.ci/run)");
        eprintln!("skipped: {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let up = Up::start_new(env!("CARGO_BIN_EXE_bank"), &data, BANKS);
    let bank = |id: u32| up.url(id);
    let http = bank_testkit::http::client(Some(Duration::from_secs(5)));
    up.wait_all_healthy(&http).await;

    // The browser asks for Brazilian Portuguese, as our customers' browsers do.
    let look = Look { width: 1200, height: 1000, language: Some("pt-BR") };
    let browser = Browser::start(&dir.path().join("chromium-profile"), look).await;
    let c = browser.client.clone();
    let mut outcome = run(&c, &bank, &PORTUGUESE, 1).await;
    if outcome.is_ok() {
        outcome = switch_to_english(&c, &bank(1)).await;
    }
    if outcome.is_ok() {
        outcome = run(&c, &bank, &ENGLISH, 3).await;
    }
    let _ = c.close().await;
    outcome.expect("scenario");
}

/// The language switch in the page header: English from now on, on every bank of this host.
async fn switch_to_english(c: &Client, bank: &str) -> Result<(), String> {
    c.goto(&format!("{bank}/login")).await.map_err(|e| e.to_string())?;
    wait_until("the sign-in page in Portuguese", async || body(c).await.contains("Entre no")).await;
    click(c, "#lang-en").await;
    // The switch posts a form: wait for the page it comes back to, in English.
    wait_until("the sign-in page in English", async || body(c).await.contains("Sign in to")).await;
    Ok(())
}

/// The journey in one language. `base` picks the customers' CPFs (`base` and `base + 1`) so the
/// second walk opens new accounts.
async fn run(c: &Client, bank: &impl Fn(u32) -> String, w: &Words, base: u64) -> Result<(), String> {
    let (b1, b2, b3) = (bank(1), bank(2), bank(3));
    let ana = bank_core::document::Cpf::from_base(base).as_str().to_string();
    let bia = bank_core::document::Cpf::from_base(base + 1).as_str().to_string();
    let (ana_email, bia_email) = (format!("ana.{}@example.com", w.tag), format!("bia.{}@example.com", w.tag));

    // The sign-in page, then a bad sign-up re-shown with what was typed.
    c.goto(&format!("{b1}/login")).await.map_err(|e| e.to_string())?;
    let lang = c.find(Locator::Css("html")).await.map_err(|e| e.to_string())?.attr("lang").await;
    assert_eq!(lang.map_err(|e| e.to_string())?.as_deref(), Some(w.tag), "the page's language");
    page_shot(c, w, "01-login").await;
    c.goto(&format!("{b1}/signup")).await.map_err(|e| e.to_string())?;
    fill(c, "#name", "Ana Souza").await;
    fill(c, "#document", "111.222.333-44").await;
    fill(c, "#email", &ana_email).await;
    fill(c, "#phone", "+55 75 99999-1234").await;
    fill(c, "#password", "a long password").await;
    click(c, "form.card button[type=submit]").await;
    let error = text_of(c, "#form-error").await;
    assert!(error.contains(w.nothing_done), "{error}");
    let typed = c.find(Locator::Css("#name")).await.map_err(|e| e.to_string())?.prop("value").await;
    assert_eq!(typed.map_err(|e| e.to_string())?.as_deref(), Some("Ana Souza"));
    page_shot(c, w, "02-signup-error").await;

    // Ana at banks 1 and 2, Bia at bank 3 (one browser: each bank keeps its own cookie).
    sign_up(c, w, &b1, "Ana Souza", &ana, &ana_email, Some("03-signup")).await;
    sign_up(c, w, &b2, "Ana Souza", &ana, &ana_email, None).await;
    sign_up(c, w, &b3, "Bia Lima", &bia, &bia_email, None).await;
    deposit(c, w, &b1, "1000,00").await;
    deposit(c, w, &b2, "50.00").await;
    assert_eq!(available(c, &b1).await, "R$ 1.000,00");
    page_shot(c, w, "04-dashboard").await;

    // Pix from bank 1 to Bia at bank 3, through the confirmation page.
    c.goto(&format!("{b1}/pix")).await.map_err(|e| e.to_string())?;
    fill(c, "#key", &bia).await;
    fill(c, "#amount", "25,50").await;
    page_shot(c, w, "05-pix").await;
    click(c, "form.card button[type=submit]").await;
    assert_eq!(text_of(c, "#receiver-name").await, "Bia Lima");
    assert!(text_of(c, "#receiver-document").await.starts_with("***."));
    assert!(text_of(c, "#receiver-bank").await.ends_with("(3)"), "the receiver's bank");
    page_shot(c, w, "06-pix-confirm").await;
    click(c, "#send").await;
    assert_eq!(text_of(c, "#transfer-status").await, w.completed, "{}", body(c).await);
    page_shot(c, w, "07-pix-result").await;
    let transfer_page = c.current_url().await.map_err(|e| e.to_string())?;
    assert_eq!(available(c, &b1).await, "R$ 974,50");

    // The Pix's receipt from the payer's transfer page; the receiver refunds part of it from the
    // same receipt at her bank; the payer's statement and balance show the refund.
    c.goto(transfer_page.as_str()).await.map_err(|e| e.to_string())?;
    click(c, "#receipt-link").await;
    let e2e = text_of(c, "#end-to-end-id").await;
    assert!(e2e.starts_with('E') && e2e.len() == 32, "end-to-end id {e2e:?}");
    page_shot(c, w, "07a-receipt").await;
    let receipt = c.current_url().await.map_err(|e| e.to_string())?;
    c.goto(&format!("{b3}{}", receipt.path())).await.map_err(|e| e.to_string())?;
    assert_eq!(text_of(c, "#end-to-end-id").await, e2e, "the same end-to-end id at both banks");
    fill(c, "#refund input[name=amount]", "5,50").await;
    page_shot(c, w, "07b-receipt-receiver").await;
    click(c, "#refund-send").await;
    // The refund form redirects to the refund's own receipt.
    wait_until("the refund's receipt", async || body(c).await.contains(w.refund_receipt)).await;
    assert_eq!(text_of(c, "#refund-of").await, e2e, "the refund names the Pix it returns");
    page_shot(c, w, "07c-refund-receipt").await;
    c.goto(&format!("{b1}/statement")).await.map_err(|e| e.to_string())?;
    wait_until("the refund on the payer's statement", async || body(c).await.contains(w.refund_from)).await;
    wait_until("the refunded money at the payer", async || available(c, &b1).await == "R$ 980,00").await;

    // A three-bank packet: from Ana's accounts at banks 1 and 2 to Bia at bank 3.
    c.goto(&format!("{b1}/packet")).await.map_err(|e| e.to_string())?;
    packet_leg(c, 1, 1, &bia, "10").await;
    packet_leg(c, 2, 2, &bia, "20").await;
    click(c, "button[value=review]").await;
    wait_until("the packet's review", async || body(c).await.contains(w.total_per_source)).await;
    page_shot(c, w, "08-packet-review").await;
    click(c, "#send-packet").await;
    assert_eq!(text_of(c, "#transfer-status").await, w.completed, "{}", body(c).await);
    page_shot(c, w, "09-packet-result").await;

    // The statements say what happened and with whom, in the customer's words.
    c.goto(&format!("{b1}/statement")).await.map_err(|e| e.to_string())?;
    let statement = body(c).await;
    assert!(statement.contains(w.pix_sent_to) && statement.contains("-R$ 10,00"), "{statement}");
    page_shot(c, w, "10-statement").await;
    c.goto(&format!("{b3}/statement")).await.map_err(|e| e.to_string())?;
    assert_eq!(body(c).await.matches(w.pix_received_from).count(), 3, "{}", body(c).await);
    no_message_id(c, "the receiver's statement").await;

    // A packet beyond bank 2's money fails whole: nothing moves anywhere.
    let before = (available(c, &b1).await, available(c, &b2).await, available(c, &b3).await);
    c.goto(&format!("{b1}/packet")).await.map_err(|e| e.to_string())?;
    packet_leg(c, 1, 1, &bia, "10").await;
    packet_leg(c, 2, 2, &bia, "999").await;
    click(c, "#send-packet").await;
    assert_eq!(text_of(c, "#transfer-status").await, w.failed, "{}", body(c).await);
    wait_until("the failed packet's page", async || body(c).await.contains(w.nothing_moved)).await;
    page_shot(c, w, "11-packet-failed").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = (available(c, &b1).await, available(c, &b2).await, available(c, &b3).await);
    assert_eq!(before, after, "a failed packet moves nothing");

    // Receive: the Pix copia e cola and its QR code.
    c.goto(&format!("{b1}/receive?amount=12,34")).await.map_err(|e| e.to_string())?;
    assert!(text_of(c, "#brcode").await.contains("br.gov.bcb.pix"));
    page_shot(c, w, "12-receive").await;
    c.goto(&format!("{b1}/consortium")).await.map_err(|e| e.to_string())?;
    page_shot(c, w, "13-consortium").await;

    // A form on another site's page posting to bank 1 is refused by the bank; nothing changes.
    // (Not from bank 2's page: the banks' pages allow forms to post only to themselves.) The
    // language cookie is SameSite=Lax, so a cross-site post does not carry it: the refusal is
    // in the browser's own language, Portuguese.
    c.goto("about:blank").await.map_err(|e| e.to_string())?;
    let script = format!(
        "const f = document.createElement('form'); f.method = 'post'; f.action = '{b1}/deposit';
         for (const [k, v] of [['amount', '500'], ['method', 'cash']]) {{
           const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); }}
         document.body.appendChild(f); f.submit();"
    );
    c.execute(&script, Vec::new()).await.map_err(|e| e.to_string())?;
    wait_until("the refusal page", async || body(c).await.contains("Pedido recusado")).await;
    page_shot(c, w, "14-cross-site-refused").await;
    assert_eq!(available(c, &b1).await, after.0, "the cross-site post changed nothing");

    // Signing out, and the dashboard on a phone-sized window.
    c.set_window_size(390, 844).await.map_err(|e| e.to_string())?;
    c.goto(&format!("{b1}/")).await.map_err(|e| e.to_string())?;
    page_shot(c, w, "15-dashboard-phone").await;
    click(c, "nav.menu form button").await;
    // The click returns before the browser lands on the page the sign-out redirects to.
    wait_until("the signed-out page", async || body(c).await.contains(w.signed_out)).await;
    no_message_id(c, "the signed-out page").await;
    c.set_window_size(1200, 1000).await.map_err(|e| e.to_string())?;
    Ok(())
}
