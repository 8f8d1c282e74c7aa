//! The web pages through real nodes: forms posted as a browser would (urlencoded, with a session
//! cookie), checked against the JSON API's view of the same accounts. Most tests read the pages
//! in English (`Accept-Language: en`); `every_page_reads_in_both_languages_without_message_ids`
//! walks them in Portuguese and English.

use bank_testkit::in_process;
use bank_testkit::in_process::{TestNode, cpf};

/// A browser in miniature: keeps the session cookies, never follows redirects.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
    /// The browser's `Accept-Language`.
    accept_language: &'static str,
}

struct Page {
    status: u16,
    location: Option<String>,
    set_cookie: Vec<String>,
    body: String,
}

fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn form(fields: &[(&str, &str)]) -> String {
    fields.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

impl Browser {
    /// A browser that prefers English.
    fn new(node: &TestNode) -> Browser {
        Browser::speaking(node, "en-US,en;q=0.9")
    }

    fn speaking(node: &TestNode, accept_language: &'static str) -> Browser {
        Browser {
            accept_language,
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: node.url.clone(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn finish(&mut self, resp: reqwest::Response) -> Page {
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
        let set_cookie: Vec<String> =
            resp.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect();
        for c in &set_cookie {
            let pair = c.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.retain(|(k, _)| k != name);
                if !value.is_empty() && !c.contains("Max-Age=0") {
                    self.cookies.push((name.to_string(), value.to_string()));
                }
            }
        }
        Page { status, location, set_cookie, body: resp.text().await.expect("body") }
    }

    async fn get(&mut self, path: &str) -> Page {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("accept-language", self.accept_language)
            .send()
            .await
            .expect("get");
        self.finish(resp).await
    }

    /// A same-origin form post, with the headers a browser sends.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let origin = self.base.clone();
        self.post_with(path, fields, &[("origin", &origin), ("sec-fetch-site", "same-origin")]).await
    }

    async fn post_with(&mut self, path: &str, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> Page {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("accept-language", self.accept_language)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(fields));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("post");
        self.finish(resp).await
    }

    /// Signs up an individual with CPF base `n` and the e-mail `c{n}@example.com`; ends signed in.
    async fn sign_up(&mut self, n: u64, name: &str) {
        let email = format!("c{n}@example.com");
        let page = self
            .post(
                "/signup",
                &[
                    ("kind", "individual"),
                    ("name", name),
                    ("document", &cpf(n)),
                    ("email", &email),
                    ("phone", "+55 75 99999-1234"),
                    ("password", "a long test passphrase"),
                ],
            )
            .await;
        assert_eq!(page.status, 303, "sign up: {}", page.body);
        assert!(page.location.as_deref().is_some_and(|l| l.starts_with('/')), "{:?}", page.location);
    }

    /// The value of a hidden or text input in a page.
    fn input_value(body: &str, name: &str) -> String {
        let needle = format!("name=\"{name}\" value=\"");
        let start = body.find(&needle).map(|i| i + needle.len()).unwrap_or_else(|| panic!("no input {name}"));
        body[start..].split('"').next().unwrap_or_default().to_string()
    }
}

/// Balance through the API (signing in there with the same credentials).
async fn api_balance(node: &TestNode, n: u64) -> (i64, i64, i64) {
    let token = node.sign_in(&format!("c{n}@example.com"), "a long test passphrase").await;
    node.balance(&token).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_in_and_out_with_bad_input_reshown_and_nothing_changed() {
    let node = in_process::spawn_node().await;
    let mut b = Browser::new(&node);

    let page = b.get("/").await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/login")), "not signed in");
    let page = b.get("/login").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Eleven") && page.body.contains("name=\"password\""), "{}", page.body);

    // An invalid CPF: the form comes back with the message and what was typed; no account.
    let bad = [
        ("kind", "individual"),
        ("name", "Ana Souza"),
        ("document", "111.222.333-44"),
        ("email", "ana@example.com"),
        ("phone", "+55 75 99999-1234"),
        ("password", "a long test passphrase"),
    ];
    let page = b.post("/signup", &bad).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("role=\"alert\""), "{}", page.body);
    assert!(page.body.contains("CPF"), "message names the CPF: {}", page.body);
    assert!(page.body.contains("value=\"Ana Souza\"") && page.body.contains("value=\"ana@example.com\""));
    assert!(page.body.contains("value=\"111.222.333-44\""));
    assert!(!page.body.contains("a long test passphrase"), "the password is never echoed");
    node.try_sign_in("ana@example.com", "a long test passphrase").await.assert_problem(
        401,
        "unauthorized",
        "no account",
    );

    // A good sign-up signs in with an HttpOnly, SameSite=Strict cookie and lands on the dashboard.
    let page = b
        .post(
            "/signup",
            &[
                ("kind", "individual"),
                ("name", "Ana Souza"),
                ("document", &cpf(1)),
                ("email", "c1@example.com"),
                ("phone", "+55 75 99999-1234"),
                ("password", "a long test passphrase"),
            ],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let cookie = page.set_cookie.iter().find(|c| c.starts_with("bank1_session=")).expect("session cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let page = b.get("/").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Ana Souza") && page.body.contains("R$ 0,00"), "{}", page.body);

    // The same e-mail again is refused like the API refuses it.
    let mut other = Browser::new(&node);
    let page = other
        .post(
            "/signup",
            &[
                ("kind", "individual"),
                ("name", "Bia Lima"),
                ("document", &cpf(2)),
                ("email", "c1@example.com"),
                ("phone", "+55 75 99999-1234"),
                ("password", "a long test passphrase"),
            ],
        )
        .await;
    assert_eq!(page.status, 409, "{}", page.body);
    assert!(page.body.contains("value=\"Bia Lima\""));

    // Sign out, then a wrong password re-shows the e-mail; the right one signs in again.
    let page = b.post("/logout", &[]).await;
    assert_eq!(page.status, 303);
    assert!(page.set_cookie.iter().any(|c| c.contains("Max-Age=0")));
    assert_eq!(b.get("/").await.status, 303);
    let page = b.post("/login", &[("email", "c1@example.com"), ("password", "wrong password")]).await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("Wrong e-mail or password") && page.body.contains("value=\"c1@example.com\""));
    let page = b.post("/login", &[("email", "c1@example.com"), ("password", "a long test passphrase")]).await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/")));
    assert_eq!(b.get("/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposit_withdraw_and_statement_with_bad_amounts_refused() {
    let node = in_process::spawn_node().await;
    let mut b = Browser::new(&node);
    b.sign_up(1, "Ana Souza").await;
    let form = b.get("/deposit").await;
    assert_eq!(form.status, 200);
    let idem = Browser::input_value(&form.body, "idempotency_key");

    for (typed, says) in [("abc", "not an amount"), ("-5", "greater than zero"), ("0", "greater than zero")] {
        let page = b.post("/deposit", &[("idempotency_key", &idem), ("amount", typed), ("method", "boleto")]).await;
        assert_eq!(page.status, 400, "{typed}: {}", page.body);
        assert!(page.body.contains(says), "{typed}: {}", page.body);
        assert!(page.body.contains(&format!("value=\"{typed}\"")), "typed value kept: {}", page.body);
        assert!(page.body.contains("value=\"boleto\" style=\"width:auto\" checked"), "method kept");
    }
    assert_eq!(api_balance(&node, 1).await, (0, 0, 0));

    let page = b.post("/deposit", &[("idempotency_key", &idem), ("amount", "1.234,56"), ("method", "cash")]).await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/?notice=deposit")), "{}", page.body);
    // The same form sent twice moves the money once.
    let page = b.post("/deposit", &[("idempotency_key", &idem), ("amount", "1.234,56"), ("method", "cash")]).await;
    assert_eq!(page.status, 303);
    assert_eq!(api_balance(&node, 1).await, (123_456, 0, 123_456));
    let page = b.get("/?notice=deposit").await;
    assert!(page.body.contains("Deposit done") && page.body.contains("R$ 1.234,56"), "{}", page.body);

    // An overdraft is refused with the amounts, and nothing moves.
    let page = b.post("/withdraw", &[("amount", "5000")]).await;
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(page.body.contains("Not enough money") && page.body.contains("value=\"5000\""), "{}", page.body);
    assert_eq!(api_balance(&node, 1).await, (123_456, 0, 123_456));
    let page = b.post("/withdraw", &[("amount", "34.56")]).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(api_balance(&node, 1).await, (120_000, 0, 120_000));

    let page = b.get("/statement").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Cash deposit") && page.body.contains("Withdrawal"), "{}", page.body);
    assert!(page.body.contains("badge completed") && page.body.contains("-R$ 34,56"), "{}", page.body);

    // Paging: 25 more deposits make a second page.
    for _ in 0..25 {
        assert_eq!(b.post("/deposit", &[("amount", "1"), ("method", "qr")]).await.status, 303);
    }
    let page = b.get("/statement").await;
    let next = page.body.split("/statement?before=").nth(1).and_then(|s| s.split('"').next()).expect("next link");
    let older = b.get(&format!("/statement?before={next}")).await;
    assert!(older.body.contains("Withdrawal") && older.body.contains("Newest"), "{}", older.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_form_post_is_refused_and_changes_nothing() {
    let node = in_process::spawn_node().await;
    let mut b = Browser::new(&node);
    b.sign_up(1, "Ana Souza").await;
    let cases: [&[(&str, &str)]; 3] = [
        &[("origin", "http://evil.example"), ("sec-fetch-site", "cross-site")],
        &[("origin", "http://evil.example")],
        &[("sec-fetch-site", "same-site"), ("origin", "http://127.0.0.1:1")],
    ];
    for headers in cases {
        let page = b.post_with("/deposit", &[("amount", "10"), ("method", "cash")], headers).await;
        assert_eq!(page.status, 403, "{headers:?}: {}", page.body);
        assert!(page.body.contains("Nothing was changed"));
        let page = b.post_with("/logout", &[], headers).await;
        assert_eq!(page.status, 403);
    }
    assert_eq!(api_balance(&node, 1).await, (0, 0, 0));
    assert_eq!(b.get("/").await.status, 200, "still signed in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pix_across_banks_goes_through_a_confirmation() {
    let c = in_process::cluster(2).await;
    let (one, two) = (c.bank(1), c.bank(2));
    let mut ana = Browser::new(one);
    ana.sign_up(1, "Ana Souza").await;
    let mut bia = Browser::new(two);
    bia.sign_up(2, "Bia Lima").await;
    assert_eq!(ana.post("/deposit", &[("amount", "100,00"), ("method", "cash")]).await.status, 303);
    let bia_key = cpf(2);

    // Unknown key, bad amount and overdraft re-show the form; nothing moves.
    let unknown = cpf(99);
    for (key, amount, status, says) in [
        (unknown.as_str(), "10", 404, "No account in the consortium has the Pix key"),
        (bia_key.as_str(), "abc", 400, "not an amount"),
        (bia_key.as_str(), "-3", 400, "greater than zero"),
        (bia_key.as_str(), "100,01", 422, "Not enough money"),
        ("not a key", "10", 400, ""),
    ] {
        let page = ana.post("/pix", &[("key", key), ("amount", amount)]).await;
        assert_eq!(page.status, status, "{key} {amount}: {}", page.body);
        assert!(page.body.contains(says), "{key} {amount}: {}", page.body);
        assert!(page.body.contains(&format!("value=\"{amount}\"")), "{}", page.body);
    }

    // The confirmation names the receiver, masks the document and names the bank.
    let page = ana.post("/pix", &[("key", &bia_key), ("amount", "25,50")]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Bia Lima") && page.body.contains("Bank 2"), "{}", page.body);
    assert!(page.body.contains("<dd id=\"receiver-document\">***."), "masked: {}", page.body);
    assert!(page.body.contains("R$ 25,50"));
    assert_eq!(api_balance(one, 1).await, (10_000, 0, 10_000), "nothing moves before the confirmation");

    let idem = Browser::input_value(&page.body, "idempotency_key");
    let send = [("idempotency_key", idem.as_str()), ("key", bia_key.as_str()), ("amount", "25,50")];
    let page = ana.post("/pix/send", &send).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let location = page.location.expect("location");
    assert!(location.starts_with("/transfers/"), "{location}");
    let result = ana.get(&location).await;
    assert!(result.body.contains("badge completed") && result.body.contains(&location["/transfers/".len()..]));
    // Sent twice (a double click): one transfer.
    let again = ana.post("/pix/send", &send).await;
    assert_eq!(again.location.as_deref(), Some(location.as_str()));
    assert_eq!(api_balance(one, 1).await, (7_450, 0, 7_450));
    assert_eq!(api_balance(two, 2).await, (2_550, 0, 2_550));
    let page = bia.get("/statement").await;
    assert!(page.body.contains("Pix received") && page.body.contains("R$ 25,50"), "{}", page.body);

    // Sending to yourself is refused as the API refuses it.
    let own = ana.post("/pix/send", &[("key", &cpf(1)), ("amount", "1")]).await;
    assert_eq!(own.status, 400, "{}", own.body);
    assert_eq!(api_balance(one, 1).await, (7_450, 0, 7_450));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_show_totals_and_move_all_or_nothing() {
    let c = in_process::cluster(3).await;
    let mut ana1 = Browser::new(c.bank(1));
    ana1.sign_up(1, "Ana Souza").await;
    let mut ana2 = Browser::new(c.bank(2));
    ana2.sign_up(1, "Ana Souza").await;
    let mut bia3 = Browser::new(c.bank(3));
    bia3.sign_up(2, "Bia Lima").await;
    assert_eq!(ana1.post("/deposit", &[("amount", "100"), ("method", "cash")]).await.status, 303);
    assert_eq!(ana2.post("/deposit", &[("amount", "50"), ("method", "cash")]).await.status, 303);
    let (acc1, acc2) = (number_at(c.bank(1), 1).await, number_at(c.bank(2), 1).await);
    let (from1, from2) = (format!("1:{acc1}"), format!("2:{acc2}"));

    let page = ana1.get("/packet").await;
    assert!(page.body.contains(&from1) && page.body.contains(&from2), "sources in every bank: {}", page.body);
    let bia = cpf(2);
    let legs = |a: &'static str, b: &'static str, action: &'static str| {
        vec![
            ("from", from1.clone()),
            ("key", bia.clone()),
            ("amount", a.to_string()),
            ("from", from2.clone()),
            ("key", bia.clone()),
            ("amount", b.to_string()),
            ("action", action.to_string()),
        ]
    };
    let as_refs = |v: &Vec<(&'static str, String)>| v.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();

    // Review: totals per source against what is available; nothing sent.
    let fields = as_refs(&legs("10", "60", "review"));
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = ana1.post("/packet", &fields).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Total per source") && page.body.contains("more than available"), "{}", page.body);
    // A bad amount in one leg re-shows every leg as typed.
    let fields = as_refs(&legs("abc", "20", "send"));
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = ana1.post("/packet", &fields).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("value=\"abc\"") && page.body.contains("value=\"20\""), "{}", page.body);
    assert_eq!(api_balance(c.bank(1), 1).await, (10_000, 0, 10_000));

    // Too much from bank 2: the packet fails whole and the page says nothing moved.
    let fields = as_refs(&legs("10", "60", "send"));
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = ana1.post("/packet", &fields).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let failed = ana1.get(page.location.as_deref().expect("location")).await;
    assert!(failed.body.contains("badge failed") && failed.body.contains("Nothing moved"), "{}", failed.body);

    // Within the money: every leg completes.
    let fields = as_refs(&legs("10", "20", "send"));
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = ana1.post("/packet", &fields).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let done = ana1.get(page.location.as_deref().expect("location")).await;
    assert!(done.body.contains("badge completed") && done.body.contains("R$ 30,00"), "{}", done.body);
    assert_eq!(done.body.matches("<span class=\"badge completed\">").count(), 2, "each leg's state");
    assert_eq!(api_balance(c.bank(1), 1).await.0, 9_000);
    assert_eq!(api_balance(c.bank(2), 1).await.0, 3_000);
    assert_eq!(api_balance(c.bank(3), 2).await.0, 3_000);
    let statement = ana1.get("/statement").await;
    assert!(statement.body.contains("badge failed") && statement.body.contains("Pix sent"), "{}", statement.body);
}

async fn number_at(node: &TestNode, n: u64) -> String {
    let token = node.sign_in(&format!("c{n}@example.com"), "a long test passphrase").await;
    let (_, me) = node.call("GET", "/api/v1/me", Some(&token), None).await;
    me["number"].as_str().expect("number").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_keys_brcode_and_consortium_pages() {
    let c = in_process::cluster(2).await;
    let mut b = Browser::new(c.bank(1));
    b.sign_up(1, "Ana Souza").await;
    let page = b.get("/receive?amount=12,34").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&cpf(1)) && page.body.contains("0014br.gov.bcb.pix"), "{}", page.body);
    assert!(page.body.contains("540512.34") && page.body.contains("<svg"), "{}", page.body);
    let bad = b.get("/receive?amount=abc").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("not an amount"));

    let page = b.post("/receive/keys", &[("type", "email")]).await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/receive?notice=key")), "{}", page.body);
    assert!(b.get("/receive").await.body.contains("c1@example.com"));
    // The same key again is a conflict, shown in words.
    let page = b.post("/receive/keys", &[("type", "email")]).await;
    assert_eq!(page.status, 409, "{}", page.body);
    assert!(page.body.contains("role=\"alert\""));

    let page = b.get("/consortium").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Bank 1") && page.body.contains("Bank 2") && page.body.contains("token-ring"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Epoch") && page.body.contains("Transfers waiting for the token"), "{}", page.body);
    let css = b.get("/static/web.css").await;
    assert!(css.status == 200 && css.body.contains("--hue"));
}

/// Walks every page (and its refusals) in Portuguese, then in English: each is in its language,
/// and none shows a message id. Statement lines say what happened and with whom.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_reads_in_both_languages_without_message_ids() {
    let ids = bank_testkit::messages::message_ids();
    let c = in_process::cluster(2).await;
    for (n, accept_language, says) in [
        (
            1,
            "pt-BR,pt;q=0.9,en;q=0.8",
            [
                "lang=\"pt-BR\"",
                "Olá, Ana Souza",
                "Pix enviado para",
                "Depósito em dinheiro",
                "Comprovante Pix",
                "Devolver este Pix",
                "Comprovante de devolução Pix",
            ],
        ),
        (
            3,
            "en-US,en;q=0.9",
            [
                "lang=\"en\"",
                "Hello, Ana Souza",
                "Pix sent to",
                "Cash deposit",
                "Pix receipt",
                "Refund this Pix",
                "Pix refund receipt",
            ],
        ),
    ] {
        let mut ana = Browser::speaking(c.bank(1), accept_language);
        let mut bia = Browser::speaking(c.bank(2), accept_language);
        let mut seen = Vec::new();
        seen.push(("login", ana.get("/login").await));
        seen.push(("signup", ana.get("/signup").await));
        let bad =
            [("kind", "individual"), ("name", "Ana Souza"), ("document", "111.222.333-44"), ("email", "x@example.com")];
        seen.push(("signup refused", ana.post("/signup", &bad).await));
        seen.push((
            "login refused",
            ana.post("/login", &[("email", "x@example.com"), ("password", "wrong one")]).await,
        ));
        ana.sign_up(n, "Ana Souza").await;
        bia.sign_up(n + 1, "Bia Lima").await;
        seen.push(("welcome", ana.get("/?notice=signup").await));
        seen.push(("deposit", ana.get("/deposit").await));
        seen.push(("deposit refused", ana.post("/deposit", &[("amount", "abc"), ("method", "cash")]).await));
        assert_eq!(ana.post("/deposit", &[("amount", "100"), ("method", "cash")]).await.status, 303);
        seen.push(("withdraw", ana.get("/withdraw").await));
        seen.push(("withdraw refused", ana.post("/withdraw", &[("amount", "5000")]).await));
        seen.push(("pix", ana.get("/pix").await));
        seen.push(("pix refused", ana.post("/pix", &[("key", "not a key"), ("amount", "1")]).await));
        let bia_key = cpf(n + 1);
        let confirm = ana.post("/pix", &[("key", bia_key.as_str()), ("amount", "25,50")]).await;
        assert_eq!(confirm.status, 200, "{}", confirm.body);
        let idem = Browser::input_value(&confirm.body, "idempotency_key");
        seen.push(("pix confirmation", confirm));
        let sent = ana.post("/pix/send", &[("idempotency_key", &idem), ("key", &bia_key), ("amount", "25,50")]).await;
        let location = sent.location.expect("the transfer's page");
        seen.push(("transfer", ana.get(&location).await));
        let receipt = format!("{location}/receipt");
        let payer_receipt = ana.get(&receipt).await;
        assert_eq!(payer_receipt.status, 200, "{}", payer_receipt.body);
        assert!(payer_receipt.body.contains("end-to-end-id") && !payer_receipt.body.contains("refund-send"));
        let first_part = [", parte 1.", ", leg 1."];
        assert!(first_part.iter().any(|p| payer_receipt.body.contains(p)), "the one part counts from 1");
        seen.push(("payer's receipt", payer_receipt));
        let receiver_receipt = bia.get(&receipt).await;
        assert!(receiver_receipt.body.contains("refund-send"), "{}", receiver_receipt.body);
        let idem = Browser::input_value(&receiver_receipt.body, "idempotency_key");
        seen.push(("receiver's receipt", receiver_receipt));
        let refunds = format!("{location}/refunds");
        let too_much =
            bia.post(&refunds, &[("idempotency_key", &idem), ("leg", "0"), ("amount", "30"), ("reason", "")]).await;
        assert_eq!(too_much.status, 422, "{}", too_much.body);
        seen.push(("refund refused", too_much));
        let idem = Browser::input_value(&bia.get(&receipt).await.body, "idempotency_key");
        let refunded =
            bia.post(&refunds, &[("idempotency_key", &idem), ("leg", "0"), ("amount", "10"), ("reason", "x")]).await;
        let refund_receipt = refunded.location.expect("the refund's receipt");
        seen.push(("refund receipt", bia.get(&refund_receipt).await));
        seen.push(("no receipt", ana.get(&refund_receipt.replace("/receipt", "x/receipt")).await));
        let payer_statement = ana.get("/statement").await;
        let refund_line = if n == 1 { "Devolução de Bia Lima" } else { "Refund from Bia Lima" };
        assert!(payer_statement.body.contains(refund_line), "{}", payer_statement.body);
        seen.push(("payer's statement after the refund", payer_statement));
        seen.push(("no transfer", ana.get("/transfers/not-a-uuid").await));
        seen.push(("statement", ana.get("/statement").await));
        seen.push(("packet", ana.get("/packet").await));
        seen.push(("packet refused", ana.post("/packet", &[("action", "send")]).await));
        seen.push(("receive", ana.get("/receive?amount=12,34").await));
        seen.push(("receive refused", ana.get("/receive?amount=abc").await));
        seen.push(("consortium", ana.get("/consortium").await));
        let evil = [("origin", "http://evil.example"), ("sec-fetch-site", "cross-site")];
        seen.push(("cross-site refusal", ana.post_with("/deposit", &[("amount", "1")], &evil).await));
        let bia_statement = bia.get("/statement").await;
        let received = if n == 1 { "Pix recebido de" } else { "Pix received from" };
        assert!(bia_statement.body.contains(received), "{}", bia_statement.body);
        seen.push(("receiver's statement", bia_statement));
        assert_eq!(ana.post("/logout", &[]).await.status, 303);
        seen.push(("signed out", ana.get("/login?notice=logout").await));

        let all: String = seen.iter().map(|(_, page)| page.body.as_str()).collect();
        for text in says {
            assert!(all.contains(text), "{accept_language}: no {text:?} in the pages");
        }
        for (what, page) in &seen {
            bank_testkit::messages::assert_no_message_id(&ids, &format!("{accept_language} {what}"), &page.body);
            assert!(!page.body.is_empty(), "{what}");
        }
    }
}

/// The switch in every page's header remembers the language in a SameSite=Lax cookie, which
/// outranks `Accept-Language`, and comes back only to a page of this bank.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_language_switch_is_remembered_in_a_cookie() {
    let node = in_process::spawn_node().await;
    let mut b = Browser::speaking(&node, "");
    let page = b.get("/login").await;
    assert!(page.body.contains("lang=\"pt-BR\"") && page.body.contains("Entre no"), "pt-BR by default: {}", page.body);
    assert!(page.body.contains("action=\"/lang\"") && page.body.contains("name=\"back\" value=\"/login\""));

    let switched = b.post("/lang", &[("lang", "en"), ("back", "/login?notice=logout")]).await;
    assert_eq!((switched.status, switched.location.as_deref()), (303, Some("/login?notice=logout")));
    let cookie = switched.set_cookie.iter().find(|c| c.starts_with("lang=en")).expect("lang cookie");
    assert!(cookie.contains("SameSite=Lax") && cookie.contains("Path=/") && cookie.contains("Max-Age="), "{cookie}");
    let page = b.get("/login?notice=logout").await;
    assert!(page.body.contains("lang=\"en\"") && page.body.contains("You are signed out"), "{}", page.body);

    // Another site's address is never where the switch goes back to.
    for back in ["//evil.example/", "https://evil.example/", "/\\evil.example"] {
        let page = b.post("/lang", &[("lang", "pt-BR"), ("back", back)]).await;
        assert_eq!(page.location.as_deref(), Some("/"), "{back}");
    }
    let page = b.get("/login").await;
    assert!(page.body.contains("Entre no"), "back in Portuguese: {}", page.body);
}
