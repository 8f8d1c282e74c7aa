//! The page handlers and their templates.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use bank_core::Error;
use bank_core::account::{Account, AccountKind, Holder, NewAccount, parse_name};
use bank_core::contact::{Email, Phone};
use bank_core::document::Document;
use bank_core::ids::{AccountNumber, BankId, TransferId};
use bank_core::ledger::{AccountRef, DepositMethod, Destination, Entry, KeyRequest, LEGS_MAX, LegRequest};
use bank_core::pixkey::PixKey;

use super::i18n::msg;
use super::{
    Fields, Shell, Tr, WebSession, brl, friendly, new_idempotency_key, parse_amount, render, render_status, when,
};
use crate::auth::ClientAddr;
use crate::problem::status_of;
use crate::service::{self, Bank, ConsortiumStatus, KeyOwner, Membership, RingStatus, ServiceError};

type St = axum::extract::State<Arc<Bank>>;

/// The HTTP status of a refused form: the one the API answers for the same refusal.
fn refused(e: &ServiceError) -> StatusCode {
    match e {
        ServiceError::Core(e) => status_of(e),
        ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn invalid(message: String) -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, message)
}

fn refusal(e: ServiceError, tr: &Tr) -> (StatusCode, String) {
    (refused(&e), friendly(&e, tr))
}

/// The signed-in account and its keys; a vanished account signs the browser out.
async fn me(state: &Arc<Bank>, session: &WebSession, tr: &Tr) -> Result<(Account, Vec<(String, String)>), Response> {
    let view = service::account(state, &session.account).await.map_err(|e| match e {
        ServiceError::Core(Error::Unauthorized(_)) => Redirect::to("/login").into_response(),
        other => message(state, tr, None, refused(&other), "title-trouble", &friendly(&other, tr)),
    })?;
    let keys = view.keys.into_iter().map(|(key, kind)| (key, tr.t(key_kind(kind.as_str())))).collect();
    Ok((view.account, keys))
}

/// A Pix key's kind as a message id.
fn key_kind(kind: &str) -> &'static str {
    match kind {
        "cpf" => msg("keykind-cpf"),
        "cnpj" => msg("keykind-cnpj"),
        "email" => msg("keykind-email"),
        "phone" => msg("keykind-phone"),
        _ => msg("keykind-random"),
    }
}

/// An account's kind as a message id.
fn account_kind(kind: &str) -> &'static str {
    match kind {
        "company" => msg("kind-company"),
        "joint" => msg("kind-joint"),
        _ => msg("kind-individual"),
    }
}

/// A transfer's, leg's or entry's state as a message id (the badge's class keeps the code).
pub(super) fn status_id(status: &str) -> &'static str {
    match status {
        "completed" => msg("status-completed"),
        "failed" => msg("status-failed"),
        _ => msg("status-pending"),
    }
}

fn shell(state: &Bank, tr: &Tr, title_id: &str, account: &Account) -> Shell {
    Shell::new(state, tr, title_id, Some(account.display_name()))
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    shell: Shell,
    heading: String,
    message: String,
}

/// A page that only says something: `heading_id` is its title's message id, `text` is in words.
pub(super) fn message(
    state: &Bank,
    tr: &Tr,
    customer: Option<String>,
    status: StatusCode,
    heading_id: &str,
    text: &str,
) -> Response {
    let shell = Shell::new(state, tr, heading_id, customer);
    let page = MessagePage { heading: shell.title.clone(), shell, message: text.to_string() };
    render_status(status, &page)
}

/// The flash a redirect asks for (`?notice=…`), in words.
fn notice_text(code: Option<&String>, tr: &Tr) -> Option<String> {
    let id = match code?.as_str() {
        "signup" => msg("notice-signup"),
        "signup_nokey" => msg("notice-signup-nokey"),
        "deposit" => msg("notice-deposit"),
        "withdrawal" => msg("notice-withdrawal"),
        "key" => msg("notice-key"),
        "logout" => msg("notice-logout"),
        _ => return None,
    };
    Some(tr.t(id))
}

// ---------------------------------------------------------------- sign in / sign up / out

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    shell: Shell,
    email: String,
    error: Option<String>,
    notice: Option<String>,
}

pub async fn login_form(state: St, tr: Tr, Query(q): Query<HashMap<String, String>>) -> Response {
    render(&LoginPage {
        shell: Shell::new(&state, &tr, "title-sign-in", None),
        email: String::new(),
        error: None,
        notice: notice_text(q.get("notice"), &tr),
    })
}

pub async fn login(state: St, tr: Tr, client: ClientAddr, body: Bytes) -> Response {
    let f = Fields::parse(&body);
    let email = f.get("email");
    match service::sign_in(&state, client.0, &email, f.get("password")).await {
        Ok(session) => signed_in(&state, &session.token, "/"),
        Err(e) => {
            let page = LoginPage {
                shell: Shell::new(&state, &tr, "title-sign-in", None),
                email,
                error: Some(friendly(&e, &tr)),
                notice: None,
            };
            let mut response = render_status(refused(&e), &page);
            if let ServiceError::Core(core) = &e
                && let Some(value) = crate::problem::retry_after(core)
            {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

fn signed_in(state: &Bank, token: &str, to: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    response.headers_mut().insert(header::SET_COOKIE, super::session_cookie(state, token, state.limits.session_ttl_s));
    response
}

pub async fn logout(state: St, tr: Tr, session: Result<WebSession, Response>) -> Response {
    if let Ok(session) = session
        && let Err(e) = service::sign_out(&state, session.token_hash).await
    {
        return message(&state, &tr, None, refused(&e), "title-sign-out-failed", &tr.t("try-again"));
    }
    let mut response = Redirect::to("/login?notice=logout").into_response();
    let cookie = format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", super::cookie_name(&state));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage {
    shell: Shell,
    password_min: usize,
    kind: String,
    name: String,
    document: String,
    name_2: String,
    document_2: String,
    email: String,
    phone: String,
    error: Option<String>,
}

fn signup_page(state: &Bank, tr: &Tr, f: &Fields, error: Option<String>) -> SignupPage {
    let kind = f.get("kind");
    SignupPage {
        shell: Shell::new(state, tr, "title-sign-up", None),
        password_min: bank_core::account::PASSWORD_LEN_MIN,
        kind: if kind.is_empty() { "individual".into() } else { kind },
        name: f.get("name"),
        document: f.get("document"),
        name_2: f.get("name_2"),
        document_2: f.get("document_2"),
        email: f.get("email"),
        phone: f.get("phone"),
        error,
    }
}

pub async fn signup_form(state: St, tr: Tr) -> Response {
    render(&signup_page(&state, &tr, &Fields::default(), None))
}

pub async fn signup(state: St, tr: Tr, body: Bytes) -> Response {
    let f = Fields::parse(&body);
    match open_account(&state, &f).await {
        Ok((token, key)) => {
            let to = if key == service::DocumentKey::Missing { "/?notice=signup_nokey" } else { "/?notice=signup" };
            signed_in(&state, &token, to)
        }
        Err(e) => render_status(refused(&e), &signup_page(&state, &tr, &f, Some(friendly(&e, &tr)))),
    }
}

/// Opens an account as `POST /api/v1/accounts` does, then signs it in.
async fn open_account(state: &Arc<Bank>, f: &Fields) -> Result<(String, service::DocumentKey), ServiceError> {
    let kind = AccountKind::parse(&f.get("kind"))?;
    let mut holders =
        vec![Holder { name: parse_name(&f.get("name"))?, document: Document::parse(&f.get("document"))? }];
    let (name_2, document_2) = (f.get("name_2"), f.get("document_2"));
    if kind == AccountKind::Joint || !name_2.trim().is_empty() || !document_2.trim().is_empty() {
        holders.push(Holder { name: parse_name(&name_2)?, document: Document::parse(&document_2)? });
    }
    let email = Email::parse(&f.get("email"))?;
    let phone = Phone::parse(&f.get("phone"))?;
    let new = NewAccount { kind, holders, email, phone, password_hash: String::new() };
    let opened = service::open_account(state, new, f.get("password")).await?;
    let session = service::open_session(state, opened.account.number.clone()).await?;
    Ok((session.token, opened.document_key))
}

// ---------------------------------------------------------------- dashboard and statement

struct EntryRow {
    when: String,
    what: String,
    amount: String,
    /// The state's code (the badge's class) and its words.
    status: &'static str,
    status_text: String,
    transfer_id: Option<String>,
}

impl EntryRow {
    /// A statement line in the customer's words: what happened and with whom. Internal ids stay
    /// on the transfer's own page, which the line links to.
    fn new(e: &Entry, tr: &Tr) -> Self {
        let sign = if e.kind.is_debit() { -1 } else { 1 };
        EntryRow {
            when: when(tr.lang, e.created_at),
            what: entry_words(
                e.kind.as_str(),
                e.kind.is_debit(),
                e.method.map(|m| m.as_str()),
                e.counterparty.as_deref(),
                tr,
            ),
            amount: brl(sign * e.amount.cents()),
            status: e.status.as_str(),
            status_text: tr.t(status_id(e.status.as_str())),
            transfer_id: e.transfer_id.map(|t| t.to_string()),
        }
    }
}

/// What a statement line says. The kind is matched by its code, so a kind this code does not
/// know yet (the statement grows kinds) still reads as money in or out, with its counterparty.
fn entry_words(kind: &str, debit: bool, method: Option<&str>, counterparty: Option<&str>, tr: &Tr) -> String {
    let (with, plain) = match (kind, method) {
        ("deposit", Some("cash")) => return tr.t("entry-deposit-cash"),
        ("deposit", Some("boleto")) => return tr.t("entry-deposit-boleto"),
        ("deposit", Some("qr")) => return tr.t("entry-deposit-qr"),
        ("deposit", _) => return tr.t("entry-deposit"),
        ("withdrawal", _) => return tr.t("entry-withdrawal"),
        ("transfer_out", _) => (msg("entry-pix-sent"), msg("entry-pix-sent-plain")),
        ("transfer_in", _) => (msg("entry-pix-received"), msg("entry-pix-received-plain")),
        (refund, _) if refund.contains("refund") && debit => (msg("entry-refund-sent"), msg("entry-refund-sent-plain")),
        (refund, _) if refund.contains("refund") => (msg("entry-refund-received"), msg("entry-refund-received-plain")),
        _ if debit => (msg("entry-other-out"), msg("entry-other-out-plain")),
        _ => (msg("entry-other-in"), msg("entry-other-in-plain")),
    };
    match counterparty.map(str::trim).filter(|c| !c.is_empty()) {
        Some(counterparty) => tr.t1(with, "counterparty", counterparty),
        None => tr.t(plain),
    }
}

struct AccountRow {
    bank_name: String,
    number: String,
    kind: String,
    available: String,
    blocked: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    shell: Shell,
    holder: String,
    number: String,
    kind: String,
    available: String,
    blocked: String,
    posted: String,
    accounts: Vec<AccountRow>,
    unreachable: Vec<String>,
    /// The banks not reached, in a sentence.
    unreachable_text: String,
    entries: Vec<EntryRow>,
    notice: Option<String>,
}

pub async fn dashboard(state: St, tr: Tr, session: WebSession, Query(q): Query<HashMap<String, String>>) -> Response {
    let (account, _) = match me(&state, &session, &tr).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let found = match service::consortium_accounts(&state, &session.account).await {
        Ok(found) => found,
        Err(e) => {
            let customer = Some(account.display_name());
            return message(&state, &tr, customer, refused(&e), "title-dashboard", &friendly(&e, &tr));
        }
    };
    let entries = service::statement(&state, &session.account, None, None, 8).await.map(|(e, _)| e).unwrap_or_default();
    let unreachable: Vec<String> =
        found.unreachable.iter().map(|&id| format!("{} ({})", service::bank_name(&state, id), id.0)).collect();
    render(&DashboardPage {
        shell: shell(&state, &tr, "title-dashboard", &account),
        holder: account.display_name(),
        number: account.number.to_string(),
        kind: tr.t(account_kind(account.kind.as_str())),
        available: brl(account.available_cents()),
        blocked: brl(account.held_cents),
        posted: brl(account.posted_cents),
        accounts: found
            .accounts
            .iter()
            .map(|a| AccountRow {
                bank_name: a.bank_name.clone(),
                number: a.number.to_string(),
                kind: tr.t(account_kind(a.kind.as_str())),
                available: brl(a.available_cents()),
                blocked: brl(a.held_cents),
            })
            .collect(),
        unreachable_text: tr.t2(
            "dashboard-unreachable",
            ("count", unreachable.len()),
            ("banks", unreachable.join(", ")),
        ),
        unreachable,
        entries: entries.iter().map(|e| EntryRow::new(e, &tr)).collect(),
        notice: notice_text(q.get("notice"), &tr),
    })
}

#[derive(Template)]
#[template(path = "statement.html")]
struct StatementPage {
    shell: Shell,
    number: String,
    entries: Vec<EntryRow>,
    next: Option<u64>,
    first_page: bool,
}

const STATEMENT_PAGE: usize = 20;

pub async fn statement(state: St, tr: Tr, session: WebSession, Query(q): Query<HashMap<String, String>>) -> Response {
    let (account, _) = match me(&state, &session, &tr).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let before = q.get("before").and_then(|b| b.parse::<u64>().ok()).filter(|&b| b > 0);
    match service::statement(&state, &session.account, None, before, STATEMENT_PAGE).await {
        Ok((entries, next)) => render(&StatementPage {
            shell: shell(&state, &tr, "title-statement", &account),
            number: account.number.to_string(),
            entries: entries.iter().map(|e| EntryRow::new(e, &tr)).collect(),
            next,
            first_page: before.is_none(),
        }),
        Err(e) => {
            message(&state, &tr, Some(account.display_name()), refused(&e), "title-statement", &friendly(&e, &tr))
        }
    }
}

// ---------------------------------------------------------------- deposit and withdraw

#[derive(Template)]
#[template(path = "money_form.html")]
struct MoneyPage {
    shell: Shell,
    heading: String,
    action: &'static str,
    is_deposit: bool,
    available: String,
    amount: String,
    method: String,
    idempotency_key: String,
    error: Option<String>,
}

/// Which way money moves on the money form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MoneyMove {
    Deposit,
    Withdrawal,
}

impl MoneyMove {
    /// The page title's message id.
    fn title(self) -> &'static str {
        match self {
            MoneyMove::Deposit => msg("title-deposit"),
            MoneyMove::Withdrawal => msg("title-withdraw"),
        }
    }

    /// The heading's and the button's message id.
    fn heading(self) -> &'static str {
        match self {
            MoneyMove::Deposit => msg("money-deposit"),
            MoneyMove::Withdrawal => msg("money-withdraw"),
        }
    }

    fn path(self) -> &'static str {
        match self {
            MoneyMove::Deposit => "/deposit",
            MoneyMove::Withdrawal => "/withdraw",
        }
    }
}

fn money_page(
    state: &Bank,
    tr: &Tr,
    account: &Account,
    way: MoneyMove,
    f: &Fields,
    error: Option<String>,
) -> MoneyPage {
    let key = f.get("idempotency_key");
    MoneyPage {
        shell: shell(state, tr, way.title(), account),
        heading: tr.t(way.heading()),
        action: way.path(),
        is_deposit: way == MoneyMove::Deposit,
        available: brl(account.available_cents()),
        amount: f.get("amount"),
        method: f.get("method"),
        idempotency_key: if key.is_empty() { new_idempotency_key() } else { key },
        error,
    }
}

pub async fn deposit_form(state: St, tr: Tr, session: WebSession) -> Response {
    money_form(state, tr, session, MoneyMove::Deposit).await
}

pub async fn withdraw_form(state: St, tr: Tr, session: WebSession) -> Response {
    money_form(state, tr, session, MoneyMove::Withdrawal).await
}

async fn money_form(state: St, tr: Tr, session: WebSession, way: MoneyMove) -> Response {
    match me(&state, &session, &tr).await {
        Ok((account, _)) => render(&money_page(&state, &tr, &account, way, &Fields::default(), None)),
        Err(r) => r,
    }
}

pub async fn deposit(state: St, tr: Tr, session: WebSession, body: Bytes) -> Response {
    money_post(state, tr, session, body, MoneyMove::Deposit).await
}

pub async fn withdraw(state: St, tr: Tr, session: WebSession, body: Bytes) -> Response {
    money_post(state, tr, session, body, MoneyMove::Withdrawal).await
}

/// Runs the money form's deposit or withdrawal, as the API does.
async fn move_money(
    state: &Arc<Bank>,
    account: AccountNumber,
    way: MoneyMove,
    f: &Fields,
    tr: &Tr,
) -> Result<(), (StatusCode, String)> {
    let amount = parse_amount(&f.get("amount"), tr).map_err(invalid)?;
    match way {
        MoneyMove::Deposit => {
            let method = DepositMethod::parse(&f.get("method")).map_err(|e| refusal(e.into(), tr))?;
            let idem = f.idempotency("/deposit", &format!("{}|{}", amount.cents(), method.as_str()));
            service::deposit(state, account, amount, method, idem).await.map_err(|e| refusal(e, tr))?;
        }
        MoneyMove::Withdrawal => {
            let idem = f.idempotency("/withdraw", &amount.cents().to_string());
            service::withdraw(state, account, amount, idem).await.map_err(|e| refusal(e, tr))?;
        }
    }
    Ok(())
}

async fn money_post(state: St, tr: Tr, session: WebSession, body: Bytes, way: MoneyMove) -> Response {
    let f = Fields::parse(&body);
    match move_money(&state, session.account.clone(), way, &f, &tr).await {
        Ok(()) => {
            let notice = match way {
                MoneyMove::Deposit => "/?notice=deposit",
                MoneyMove::Withdrawal => "/?notice=withdrawal",
            };
            Redirect::to(notice).into_response()
        }
        Err((status, error)) => match me(&state, &session, &tr).await {
            Ok((account, _)) => render_status(status, &money_page(&state, &tr, &account, way, &f, Some(error))),
            Err(r) => r,
        },
    }
}

// ---------------------------------------------------------------- Pix

#[derive(Template)]
#[template(path = "pix.html")]
struct PixPage {
    shell: Shell,
    available: String,
    key: String,
    amount: String,
    idempotency_key: String,
    error: Option<String>,
}

fn pix_page(state: &Bank, tr: &Tr, account: &Account, f: &Fields, error: Option<String>) -> PixPage {
    let key = f.get("idempotency_key");
    PixPage {
        shell: shell(state, tr, "title-pix", account),
        available: brl(account.available_cents()),
        key: f.get("key"),
        amount: f.get("amount"),
        idempotency_key: if key.is_empty() { new_idempotency_key() } else { key },
        error,
    }
}

#[derive(Template)]
#[template(path = "pix_confirm.html")]
struct PixConfirmPage {
    shell: Shell,
    key: String,
    amount: String,
    amount_brl: String,
    receiver: KeyOwner,
    idempotency_key: String,
}

pub async fn pix_form(state: St, tr: Tr, session: WebSession, Query(q): Query<HashMap<String, String>>) -> Response {
    let (account, _) = match me(&state, &session, &tr).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let f = Fields(q.into_iter().filter(|(k, _)| k == "key" || k == "amount").collect());
    render(&pix_page(&state, &tr, &account, &f, None))
}

/// Checks the key and the amount, and shows whom the money would go to.
pub async fn pix_confirm(state: St, tr: Tr, session: WebSession, client: ClientAddr, body: Bytes) -> Response {
    let f = Fields::parse(&body);
    let (account, _) = match me(&state, &session, &tr).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let checked = async {
        let key = PixKey::parse(&f.get("key")).map_err(|e| refusal(e.into(), &tr))?;
        let amount = parse_amount(&f.get("amount"), &tr).map_err(invalid)?;
        let receiver =
            service::lookup_key(&state, (&account.number, client.0), &key).await.map_err(|e| refusal(e, &tr))?;
        if amount.cents() > account.available_cents() {
            let short = Error::InsufficientFunds {
                account: account.number.clone(),
                available_cents: account.available_cents(),
                requested_cents: amount.cents(),
            };
            return Err(refusal(ServiceError::Core(short), &tr));
        }
        Ok((receiver, amount))
    }
    .await;
    match checked {
        Ok((receiver, amount)) => {
            let key = f.get("idempotency_key");
            render(&PixConfirmPage {
                shell: shell(&state, &tr, "title-pix-confirm", &account),
                key: f.get("key"),
                amount: f.get("amount"),
                amount_brl: brl(amount.cents()),
                receiver,
                idempotency_key: if key.is_empty() { new_idempotency_key() } else { key },
            })
        }
        Err((status, error)) => render_status(status, &pix_page(&state, &tr, &account, &f, Some(error))),
    }
}

pub async fn pix_send(state: St, tr: Tr, session: WebSession, body: Bytes) -> Response {
    let f = Fields::parse(&body);
    let sent = async {
        let key = PixKey::parse(&f.get("key")).map_err(|e| refusal(e.into(), &tr))?;
        let amount = parse_amount(&f.get("amount"), &tr).map_err(invalid)?;
        let idem = f.idempotency("/pix/send", &format!("{}|{}", key.normalized(), amount.cents()));
        let legs = vec![LegRequest { from: None, to: Destination::Key(key), amount }];
        service::transfer(&state, session.account.clone(), legs, None, idem).await.map_err(|e| refusal(e, &tr))
    }
    .await;
    match sent {
        Ok(answer) => Redirect::to(&format!("/transfers/{}", answer.transfer.id)).into_response(),
        Err((status, error)) => match me(&state, &session, &tr).await {
            Ok((account, _)) => render_status(status, &pix_page(&state, &tr, &account, &f, Some(error))),
            Err(r) => r,
        },
    }
}

// ---------------------------------------------------------------- transfers

struct LegView {
    from: String,
    to: String,
    amount: String,
    status: &'static str,
    status_text: String,
}

#[derive(Template)]
#[template(path = "transfer.html")]
struct TransferPage {
    shell: Shell,
    id: String,
    status: &'static str,
    status_text: String,
    failure: String,
    created_at: String,
    total: String,
    legs: Vec<LegView>,
}

pub async fn transfer_detail(state: St, tr: Tr, session: WebSession, Path(id): Path<String>) -> Response {
    let (account, _) = match me(&state, &session, &tr).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let customer = Some(account.display_name());
    let Ok(id) = uuid::Uuid::try_parse(&id).map(TransferId) else {
        return message(&state, &tr, customer, StatusCode::NOT_FOUND, "title-no-transfer", &tr.t("err-transfer-id"));
    };
    let t = match service::transfer_of(&state, &session.account, id).await {
        Ok(t) => t,
        Err(e) => return message(&state, &tr, customer, refused(&e), "title-no-transfer", &friendly(&e, &tr)),
    };
    let bank = |id: BankId| service::bank_name(&state, id);
    render(&TransferPage {
        shell: shell(&state, &tr, "title-transfer", &account),
        id: t.id.to_string(),
        status: t.status.as_str(),
        status_text: tr.t(status_id(t.status.as_str())),
        failure: t.failure.as_ref().map(|f| friendly_failure(f.code.as_str(), &f.detail, &tr)).unwrap_or_default(),
        created_at: when(tr.lang, t.created_at),
        total: brl(t.legs.iter().map(|l| l.amount.cents()).sum()),
        legs: t
            .legs
            .iter()
            .map(|l| LegView {
                from: format!("{} · {}", bank(l.from.bank_id), l.from.number),
                to: format!(
                    "{} · {} · {}{}",
                    l.to.holder_name,
                    bank(l.to.bank_id),
                    l.to.number,
                    l.to.key
                        .as_ref()
                        .map(|k| format!(" {}", tr.t1("transfer-to-key", "key", k.normalized())))
                        .unwrap_or_default()
                ),
                amount: brl(l.amount.cents()),
                status: l.status.as_str(),
                status_text: tr.t(status_id(l.status.as_str())),
            })
            .collect(),
    })
}

/// Why a transfer failed, in words: the stored detail is the API's English, so known codes get
/// their own sentence and only an unknown one quotes it.
fn friendly_failure(code: &str, detail: &str, tr: &Tr) -> String {
    match code {
        "insufficient_funds" => tr.t("failure-insufficient"),
        "bank_unavailable" => tr.t("failure-bank-unavailable"),
        "expired" => tr.t("failure-expired"),
        "unknown_key" => tr.t("failure-unknown-key"),
        _ => tr.t1("failure-refused", "detail", detail.trim_end_matches('.')),
    }
}

// ---------------------------------------------------------------- packet builder

struct SourceOption {
    value: String,
    label: String,
    available_cents: i64,
}

struct PacketRow {
    n: usize,
    from: String,
    key: String,
    amount: String,
    error: Option<String>,
}

struct TotalRow {
    label: String,
    total: String,
    available: String,
    over: bool,
}

#[derive(Template)]
#[template(path = "packet.html")]
struct PacketPage {
    shell: Shell,
    sources: Vec<SourceOption>,
    rows: Vec<PacketRow>,
    totals: Vec<TotalRow>,
    idempotency_key: String,
    error: Option<String>,
}

const PACKET_ROWS_SHOWN: usize = 3;

async fn sources(state: &Arc<Bank>, session: &WebSession, tr: &Tr) -> Result<Vec<SourceOption>, ServiceError> {
    let found = service::consortium_accounts(state, &session.account).await?;
    Ok(found
        .accounts
        .iter()
        .map(|a| {
            let available = a.available_cents();
            SourceOption {
                value: format!("{}:{}", a.bank_id.0, a.number),
                label: tr.t3(
                    "packet-source",
                    ("bank", a.bank_name.as_str()),
                    ("number", a.number.to_string()),
                    ("available", brl(available)),
                ),
                available_cents: available,
            }
        })
        .collect())
}

fn empty_rows(from: usize, to: usize) -> impl Iterator<Item = PacketRow> {
    (from..to).map(|n| PacketRow {
        n: n + 1,
        from: String::new(),
        key: String::new(),
        amount: String::new(),
        error: None,
    })
}

pub async fn packet_form(state: St, tr: Tr, session: WebSession) -> Response {
    let (account, _) = match me(&state, &session, &tr).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let sources = match sources(&state, &session, &tr).await {
        Ok(s) => s,
        Err(e) => {
            return message(&state, &tr, Some(account.display_name()), refused(&e), "title-packet", &friendly(&e, &tr));
        }
    };
    render(&PacketPage {
        shell: shell(&state, &tr, "title-packet", &account),
        sources,
        rows: empty_rows(0, PACKET_ROWS_SHOWN).collect(),
        totals: Vec::new(),
        idempotency_key: new_idempotency_key(),
        error: None,
    })
}

/// What the filled rows of a packet form ask for.
struct PacketLegs {
    legs: Vec<LegRequest>,
    /// The total each source would send, against what it has.
    totals: Vec<TotalRow>,
    /// The form's meaning, for its idempotency fingerprint.
    meaning: String,
}

/// Parses every filled row (blank rows are skipped); a row that does not parse gets its error.
fn packet_legs(rows: &mut [PacketRow], sources: &[SourceOption], tr: &Tr) -> PacketLegs {
    let mut legs = Vec::new();
    let mut per_source: BTreeMap<String, i64> = BTreeMap::new();
    let mut meaning = String::new();
    for row in rows.iter_mut() {
        if row.key.trim().is_empty() && row.amount.trim().is_empty() {
            continue;
        }
        match packet_leg(row, sources, tr) {
            Ok(leg) => {
                *per_source.entry(row.from.clone()).or_default() += leg.amount.cents();
                meaning.push_str(&format!("{}>{:?}={};", row.from, row.key.trim(), leg.amount.cents()));
                legs.push(leg);
            }
            Err(e) => row.error = Some(e),
        }
    }
    let totals = per_source
        .iter()
        .filter_map(|(value, total)| {
            let s = sources.iter().find(|s| &s.value == value)?;
            Some(TotalRow {
                label: s.label.clone(),
                total: brl(*total),
                available: brl(s.available_cents),
                over: *total > s.available_cents,
            })
        })
        .collect();
    PacketLegs { legs, totals, meaning }
}

/// One filled row as a leg, or what is wrong with it, in words.
fn packet_leg(row: &PacketRow, sources: &[SourceOption], tr: &Tr) -> Result<LegRequest, String> {
    let choose = || tr.t("packet-choose-source");
    let source = sources.iter().find(|s| s.value == row.from).ok_or_else(choose)?;
    let (bank, number) = source.value.split_once(':').ok_or_else(choose)?;
    let from = AccountRef {
        bank_id: BankId(bank.parse().map_err(|_| choose())?),
        number: AccountNumber::parse(number).map_err(|_| choose())?,
    };
    let key = PixKey::parse(&row.key).map_err(|e| friendly(&e.into(), tr))?;
    let amount = parse_amount(&row.amount, tr)?;
    Ok(LegRequest { from: Some(from), to: Destination::Key(key), amount })
}

pub async fn packet(state: St, tr: Tr, session: WebSession, body: Bytes) -> Response {
    let f = Fields::parse(&body);
    let (account, _) = match me(&state, &session, &tr).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let sources = match sources(&state, &session, &tr).await {
        Ok(s) => s,
        Err(e) => {
            return message(&state, &tr, Some(account.display_name()), refused(&e), "title-packet", &friendly(&e, &tr));
        }
    };
    let (froms, keys, amounts) = (f.all("from"), f.all("key"), f.all("amount"));
    let count = froms.len().max(keys.len()).max(amounts.len()).min(LEGS_MAX);
    let at = |v: &Vec<String>, i: usize| v.get(i).cloned().unwrap_or_default();
    let mut rows: Vec<PacketRow> = (0..count)
        .map(|i| PacketRow { n: i + 1, from: at(&froms, i), key: at(&keys, i), amount: at(&amounts, i), error: None })
        .collect();
    let action = f.get("action");
    let idempotency_key = {
        let key = f.get("idempotency_key");
        if key.is_empty() { new_idempotency_key() } else { key }
    };
    let page = |rows, totals, error: Option<String>, sources| PacketPage {
        shell: shell(&state, &tr, "title-packet", &account),
        sources,
        rows,
        totals,
        idempotency_key: idempotency_key.clone(),
        error,
    };
    if action == "add" {
        let n = rows.len();
        rows.extend(empty_rows(n, (n + 1).min(LEGS_MAX)));
        return render(&page(rows, Vec::new(), None, sources));
    }
    let PacketLegs { legs, totals, meaning } = packet_legs(&mut rows, &sources, &tr);
    let row_errors = rows.iter().any(|r| r.error.is_some());
    if row_errors || legs.is_empty() || action != "send" {
        let error = if row_errors {
            Some(tr.t("packet-fix-legs"))
        } else if legs.is_empty() {
            Some(tr.t("packet-fill-one"))
        } else {
            None
        };
        let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
        return render_status(status, &page(rows, totals, error, sources));
    }
    let idem = f.idempotency("/packet", &meaning);
    match service::transfer(&state, session.account.clone(), legs, None, idem).await {
        Ok(answer) => Redirect::to(&format!("/transfers/{}", answer.transfer.id)).into_response(),
        Err(e) => render_status(refused(&e), &page(rows, totals, Some(friendly(&e, &tr)), sources)),
    }
}

// ---------------------------------------------------------------- receive

#[derive(Template)]
#[template(path = "receive.html")]
struct ReceivePage {
    shell: Shell,
    keys: Vec<(String, String)>,
    key: String,
    amount: String,
    amount_brl: String,
    payload: Option<String>,
    qr: Option<String>,
    error: Option<String>,
    notice: Option<String>,
}

pub async fn receive(state: St, tr: Tr, session: WebSession, Query(q): Query<HashMap<String, String>>) -> Response {
    let (account, keys) = match me(&state, &session, &tr).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let amount = q.get("amount").cloned().unwrap_or_default();
    let wanted = q.get("key").cloned().unwrap_or_default();
    let key = keys.iter().find(|k| k.0 == wanted).or(keys.first()).map(|k| k.0.clone()).unwrap_or_default();
    let mut page = ReceivePage {
        shell: shell(&state, &tr, "title-receive", &account),
        keys,
        key: key.clone(),
        amount: amount.clone(),
        amount_brl: String::new(),
        payload: None,
        qr: None,
        error: None,
        notice: notice_text(q.get("notice"), &tr),
    };
    let cents = if amount.trim().is_empty() { Ok(None) } else { parse_amount(&amount, &tr).map(|a| Some(a.cents())) };
    match cents {
        Err(e) => {
            page.error = Some(e);
            return render_status(StatusCode::BAD_REQUEST, &page);
        }
        Ok(cents) if !key.is_empty() => {
            let txid = format!("{}{}", state.bank_id.0, account.number);
            let payload = super::brcode::payload(&key, cents, &account.display_name(), "BRASIL", &txid);
            page.qr = super::brcode::qr_svg(&payload);
            page.payload = Some(payload);
            page.amount_brl = cents.map(brl).unwrap_or_default();
        }
        Ok(_) => {}
    }
    render(&page)
}

pub async fn register_key(state: St, tr: Tr, session: WebSession, body: Bytes) -> Response {
    let f = Fields::parse(&body);
    let request = match f.get("type").as_str() {
        "email" => Ok(KeyRequest::Email),
        "phone" => Ok(KeyRequest::Phone),
        "random" => Ok(KeyRequest::Random(uuid::Uuid::new_v4())),
        _ => Err((StatusCode::BAD_REQUEST, tr.t("receive-choose-type"))),
    };
    let result = match request {
        Ok(request) => {
            service::register_key(&state, session.account.clone(), request).await.map_err(|e| refusal(e, &tr))
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Redirect::to("/receive?notice=key").into_response(),
        Err((status, error)) => {
            let (account, keys) = match me(&state, &session, &tr).await {
                Ok(found) => found,
                Err(r) => return r,
            };
            render_status(
                status,
                &ReceivePage {
                    shell: shell(&state, &tr, "title-receive", &account),
                    keys,
                    key: String::new(),
                    amount: String::new(),
                    amount_brl: String::new(),
                    payload: None,
                    qr: None,
                    error: Some(error),
                    notice: None,
                },
            )
        }
    }
}

// ---------------------------------------------------------------- consortium status

struct MemberRow {
    id: String,
    name: String,
    url: String,
    /// The state's code (the badge's class) and its words.
    state: &'static str,
    state_text: String,
    /// Its clock against this bank's, in words ("—" for this bank, or before any answer).
    clock: String,
}

#[derive(Template)]
#[template(path = "consortium.html")]
struct ConsortiumPage {
    shell: Shell,
    mode: String,
    in_doubt: String,
    members: Vec<MemberRow>,
    ring: Vec<(String, String)>,
    error: Option<String>,
}

/// A number as the status route writes it in JSON (so the page reads the same as the API).
fn json_number(value: impl Into<serde_json::Value>) -> String {
    match value.into() {
        serde_json::Value::Null => "—".into(),
        other => other.to_string(),
    }
}

/// The ring's role as a message id.
fn role_id(role: &str) -> Option<&'static str> {
    Some(match role {
        "idle" => msg("role-idle"),
        "holding" => msg("role-holding"),
        "passing" => msg("role-passing"),
        "pre-candidate" => msg("role-pre-candidate"),
        "candidate" => msg("role-candidate"),
        _ => return None,
    })
}

/// The ring in words (in the order a person reads it).
fn ring_facts(bank_id: BankId, ring: &RingStatus, mode: &str, tr: &Tr) -> Vec<(String, String)> {
    if mode == "concurrent" {
        return vec![(tr.t("ring-token-ring"), tr.t("ring-off"))];
    }
    let bank = |id: Option<BankId>| id.map_or_else(|| "—".into(), |id| tr.t1("ring-bank", "id", id.0));
    let last_seen = |ms: Option<u64>| ms.map_or_else(|| tr.t("ring-not-yet"), |ms| tr.t1("ring-ms-ago", "ms", ms));
    let role = |role: &str| role_id(role).map_or_else(|| role.to_string(), |id| tr.t(id));
    let facts = |epoch: u64, holder, role: String, seen, rotations: f64, queue_len: usize| {
        vec![
            (tr.t("ring-epoch"), epoch.to_string()),
            (tr.t("ring-holder"), bank(holder)),
            (tr.t("ring-this-bank"), role),
            (tr.t("ring-last-here"), last_seen(seen)),
            (tr.t("ring-visits"), json_number(rotations)),
            (tr.t("ring-waiting"), queue_len.to_string()),
        ]
    };
    match ring {
        RingStatus::Token(r) => {
            let rotations = (r.rotations_per_s * 100.0).round() / 100.0;
            let mut out = facts(r.epoch, r.holder, role(r.role), r.last_seen_ms, rotations, r.queue_len);
            if !r.suspected.is_empty() {
                let suspected = r.suspected.iter().map(|&b| bank(Some(b))).collect::<Vec<_>>().join(", ");
                out.push((tr.t("ring-not-heard"), suspected));
            }
            out
        }
        RingStatus::NoToken => facts(0, None, "—".into(), None, 0.0, 0),
        RingStatus::Alone => facts(0, Some(bank_id), "—".into(), Some(0), 0.0, 0),
    }
}

/// A member's state as a message id.
fn member_state_id(state: &str) -> &'static str {
    match state {
        "up" => msg("member-up"),
        "suspected" => msg("member-suspected"),
        _ => msg("member-unknown"),
    }
}

fn member_rows(status: &ConsortiumStatus, tr: &Tr) -> Vec<MemberRow> {
    match &status.members {
        Membership::Alone { name, url } => {
            vec![MemberRow {
                id: status.bank_id.0.to_string(),
                name: name.clone(),
                url: url.clone(),
                state: "up",
                state_text: tr.t("member-up"),
                clock: "—".into(),
            }]
        }
        Membership::Consortium(members) => members
            .iter()
            .map(|m| MemberRow {
                id: m.id.0.to_string(),
                name: m.name.clone(),
                url: m.url.clone(),
                state: m.state.as_str(),
                state_text: tr.t(member_state_id(m.state.as_str())),
                clock: clock_words(m.clock, tr),
            })
            .collect(),
    }
}

/// A peer's clock in words: agreeing, or how far off and that work with it is refused.
fn clock_words(clock: Option<service::PeerClock>, tr: &Tr) -> String {
    match clock {
        None => "—".into(),
        Some(c) if c.disagrees => {
            let way = if c.offset_ms > 0 { msg("clock-ahead") } else { msg("clock-behind") };
            tr.t1(way, "ms", c.offset_ms.unsigned_abs())
        }
        Some(c) => tr.t2(
            "clock-agrees",
            ("offset", format!("{:+}", c.offset_ms)),
            ("uncertainty", c.uncertainty_ms.to_string()),
        ),
    }
}

/// The mode's words, with its code (as the status route names it).
fn mode_words(mode: &str, tr: &Tr) -> String {
    match mode {
        "token-ring" => tr.t("mode-token-ring"),
        "concurrent" => tr.t("mode-concurrent"),
        other => other.to_string(),
    }
}

/// Shows the consortium as `GET /api/v1/consortium/status` reports it (the same service call).
pub async fn consortium(state: St, tr: Tr, session: Result<WebSession, Response>) -> Response {
    let customer = match &session {
        Ok(s) => service::account(&state, &s.account).await.ok().map(|view| view.account.display_name()),
        Err(_) => None,
    };
    let mut page = ConsortiumPage {
        shell: Shell::new(&state, &tr, "title-consortium", customer),
        mode: String::new(),
        in_doubt: String::new(),
        members: Vec::new(),
        ring: Vec::new(),
        error: None,
    };
    match service::consortium_status(&state).await {
        Ok(status) => {
            page.mode = mode_words(status.mode.as_str(), &tr);
            if state.seed_compat {
                page.mode = format!("{} — {}", page.mode, tr.t("consortium-seed-compat-on"));
            }
            page.in_doubt = status.in_doubt.to_string();
            page.members = member_rows(&status, &tr);
            page.ring = ring_facts(status.bank_id, &status.ring, status.mode.as_str(), &tr);
            render(&page)
        }
        Err(e) => {
            page.error = Some(tr.t1("consortium-unreadable", "reason", friendly(&e, &tr)));
            render_status(StatusCode::SERVICE_UNAVAILABLE, &page)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::ring::RingSnapshot;
    use crate::web::Lang;

    fn texts(facts: Vec<(String, String)>) -> Vec<String> {
        facts.into_iter().map(|(what, value)| format!("{what}: {value}")).collect()
    }

    /// The page words the ring as it did when it read the status route's JSON: numbers as JSON
    /// writes them (`0.0`, `2.0`), absent facts as a dash.
    #[test]
    fn ring_facts_read_as_the_status_json_did() {
        let en = Tr::new(Lang::En);
        let alone = texts(ring_facts(BankId(1), &RingStatus::Alone, "token-ring", &en));
        assert_eq!(
            alone,
            [
                "Epoch: 0",
                "Last known holder: bank 1",
                "This bank: —",
                "Token last here: 0 ms ago",
                "Visits per second: 0.0",
                "Transfers waiting for the token: 0"
            ]
        );
        let no_token = texts(ring_facts(BankId(1), &RingStatus::NoToken, "token-ring", &en));
        assert_eq!((no_token[1].as_str(), no_token[3].as_str()), ("Last known holder: —", "Token last here: not yet"));
        let snapshot = RingSnapshot {
            epoch: 7,
            role: "holding",
            holder: Some(BankId(2)),
            last_seen_ms: Some(15),
            rotations_per_s: 1.996,
            queue_len: 3,
            suspected: vec![BankId(3), BankId(4)],
        };
        let token = texts(ring_facts(BankId(1), &RingStatus::Token(snapshot.clone()), "token-ring", &en));
        assert_eq!(
            token,
            [
                "Epoch: 7",
                "Last known holder: bank 2",
                "This bank: holding",
                "Token last here: 15 ms ago",
                "Visits per second: 2.0",
                "Transfers waiting for the token: 3",
                "Not heard from: bank 3, bank 4"
            ]
        );
        let pt = texts(ring_facts(BankId(1), &RingStatus::Token(snapshot), "token-ring", &Tr::new(Lang::PtBr)));
        assert_eq!(pt[2], "Este banco: com a ficha");
        assert_eq!(pt[3], "Ficha vista aqui: há 15 ms");
        let off = texts(ring_facts(BankId(1), &RingStatus::NoToken, "concurrent", &en));
        assert_eq!(off, ["Token ring: off: every bank starts its cross-bank work at once"]);
    }

    /// Every kind of statement line reads in the customer's words in both languages; a kind this
    /// code does not know yet still says money in or out and with whom.
    #[test]
    fn statement_lines_say_what_happened_and_with_whom() {
        let (pt, en) = (Tr::new(Lang::PtBr), Tr::new(Lang::En));
        let bruno = Some("Bruno Lima · Automobili");
        assert_eq!(entry_words("transfer_out", true, None, bruno, &pt), "Pix enviado para Bruno Lima · Automobili");
        assert_eq!(entry_words("transfer_in", false, None, bruno, &pt), "Pix recebido de Bruno Lima · Automobili");
        assert_eq!(entry_words("transfer_out", true, None, bruno, &en), "Pix sent to Bruno Lima · Automobili");
        assert_eq!(entry_words("transfer_in", false, None, None, &en), "Pix received");
        assert_eq!(entry_words("deposit", false, Some("cash"), None, &pt), "Depósito em dinheiro");
        assert_eq!(entry_words("deposit", false, Some("boleto"), None, &en), "Deposit by boleto");
        assert_eq!(entry_words("withdrawal", true, None, None, &pt), "Saque");
        assert_eq!(entry_words("refund_in", false, None, bruno, &pt), "Devolução de Bruno Lima · Automobili");
        assert_eq!(entry_words("refund_out", true, None, bruno, &en), "Refund sent to Bruno Lima · Automobili");
        assert_eq!(entry_words("fee", true, None, Some("Eleven"), &pt), "Saída · Eleven");
        assert_eq!(entry_words("bonus", false, None, Some("  "), &en), "Money in");
    }
}
