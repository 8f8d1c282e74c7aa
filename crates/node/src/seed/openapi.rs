//! The seed-compatible routes in the OpenAPI document, under their own tag (`seed-compatible`),
//! so tools see the whole surface a bank may serve. They are described on every bank but served
//! only by one started with `--seed-compat`; elsewhere they answer 404. The handlers parse their
//! bodies by hand (the original's loose shapes: numbers or strings, flags in any case), so the
//! request schemas below describe what they accept; the Account JSON schema is derived from the
//! type the handlers answer with ([`super::account::AccountJson`]). A test checks that these
//! descriptions and the seed router list the same routes (`crates/node/tests/openapi.rs`).
//!
//! Answers are not `/api/v1`'s: success is camelCase JSON, a refusal is a short `text/plain`
//! sentence with a real 4xx, and every answer carries `Access-Control-Allow-Origin: *`.

// The functions below exist for their `#[utoipa::path]` descriptions only: the routes are served
// by `super::handlers`, registered in `super::routes`.
#![allow(dead_code)]

use utoipa::{OpenApi, ToSchema};

use super::account::{AccountJson, TransactionJson};

/// The tag of every seed-compatible route.
pub const TAG: &str = "seed-compatible";

/// The description of the seed-compatible routes, merged into the API's document.
#[derive(OpenApi)]
#[openapi(
    paths(bank, login, account_data, pix_infos, operations, accounts),
    components(schemas(
        AccountJson,
        TransactionJson,
        SeedBank,
        SeedLogin,
        SeedPixInfosIn,
        SeedPixInfos,
        SeedOperation,
        SeedDone
    )),
    tags((name = "seed-compatible", description = "The original system's client routes (docs/seed-compat.md). \
        **Off by default and unauthenticated by design**: served only by a bank started with \
        `--seed-compat` (elsewhere 404), for demonstrations on trusted networks. Success is camelCase \
        JSON; a refusal is short `text/plain` with a real 4xx; every answer allows any origin (CORS). \
        Amounts are reais as strings or numbers (`\"12.34\"`, `20000`)."))
)]
#[derive(Debug)]
pub struct SeedDoc;

/// `{"nameBank"}`.
#[derive(Debug, ToSchema)]
pub struct SeedBank {
    #[schema(rename = "nameBank", example = "Eleven")]
    pub name_bank: String,
}

/// Sign-in with the original's fields.
#[derive(Debug, ToSchema)]
pub struct SeedLogin {
    #[schema(example = "ana@example.com")]
    pub email: String,
    pub password: String,
}

/// Who holds a Pix key at a bank.
#[derive(Debug, ToSchema)]
pub struct SeedPixInfosIn {
    /// The key as typed: a formatted CPF/CNPJ, an e-mail, a phone or a random key (a leading
    /// `<bankId><any char>` is accepted too).
    #[schema(rename = "keyPix", example = "651.551.749-10")]
    pub key_pix: String,
    /// The bank the customer believes holds the key: one character, `1` to `9`.
    #[schema(rename = "bankID", example = "2")]
    pub bank_id: String,
}

/// The holder of a key, with the document masked.
#[derive(Debug, ToSchema)]
pub struct SeedPixInfos {
    #[schema(example = "Bia Lima")]
    pub name: String,
    #[schema(rename = "cpfCNPJ1", example = "***.551.749-**")]
    pub cpf_cnpj1: String,
    #[schema(example = "Automobili")]
    pub bank: String,
}

/// The envelope of `POST /operations`. `dataOperation` depends on `operation`:
/// `create` → `{name1, cpfCNPJ1, name2, cpfCNPJ2, email, password, telephone, isFisicAccount,
/// isJoinetAccount}`; `deposit` → `{value, method}` (`money`, `qrCode`, `bankSlip`, `""`,
/// `none`); `sendPix` → `{value, keyPix, idBank, bankNameReceiver?, nameReceiver?}`;
/// `packetPix` → a list of 1 to 16 `{value, keyPix, idBank, bankSourceMoney, nameReceiver?}`,
/// all legs or none.
#[derive(Debug, ToSchema)]
pub struct SeedOperation {
    #[schema(example = "deposit")]
    pub operation: String,
    /// The first holder's CPF or CNPJ: names the account at this bank the operation acts on.
    #[schema(rename = "clientCpfCNPJ", example = "651.551.749-10")]
    pub client_cpf_cnpj: String,
    #[schema(rename = "dataOperation", value_type = Object)]
    pub data_operation: serde_json::Value,
}

/// A completed operation.
#[derive(Debug, ToSchema)]
pub struct SeedDone {
    #[schema(example = "deposit completed")]
    pub message: String,
}

#[utoipa::path(get, path = "/bank", tag = "seed-compatible", operation_id = "seed_bank", summary = "This bank's name",
    responses((status = 200, description = "The bank's name.", body = SeedBank)))]
fn bank() {}

#[utoipa::path(post, path = "/account/login", tag = "seed-compatible", operation_id = "seed_login", summary = "Sign in (the original's)",
    description = "Throttled and hashed like `POST /api/v1/sessions`; the protocol keeps no session.",
    request_body = SeedLogin,
    responses(
        (status = 200, description = "The account.", body = AccountJson),
        (status = 400, description = "A field is missing or malformed.", content_type = "text/plain", body = String),
        (status = 401, description = "Wrong e-mail or password.", content_type = "text/plain", body = String),
        (status = 429, description = "Too many failed sign-ins; try later.", content_type = "text/plain", body = String)
    ))]
fn login() {}

#[utoipa::path(get, path = "/account/data/{number}", tag = "seed-compatible", operation_id = "seed_account_data", summary = "An account and its 30 newest lines",
    params(("number" = u64, Path, description = "The account's integer number (our `NNNNNN-C` without its check digit).")),
    responses(
        (status = 200, description = "The account.", body = AccountJson),
        (status = 404, description = "No such account.", content_type = "text/plain", body = String)
    ))]
fn account_data() {}

#[utoipa::path(post, path = "/account/transaction/pix/infos", tag = "seed-compatible", operation_id = "seed_pix_infos", summary = "Who holds a Pix key",
    request_body = SeedPixInfosIn,
    responses(
        (status = 200, description = "The key's holder.", body = SeedPixInfos),
        (status = 400, description = "No account has the key, or a field is malformed.", content_type = "text/plain", body = String),
        (status = 404, description = "The key is not at that bank.", content_type = "text/plain", body = String),
        (status = 429, description = "Too many lookups of unknown keys.", content_type = "text/plain", body = String)
    ))]
fn pix_infos() {}

#[utoipa::path(post, path = "/operations", tag = "seed-compatible", operation_id = "seed_operations", summary = "Open an account, deposit, send a Pix or a packet",
    description = "Answers once the operation is decided, with `/api/v1`'s 5 s deadline: 200 only when completed.",
    request_body = SeedOperation,
    responses(
        (status = 200, description = "Done: the new account for `create`, a message otherwise.", body = SeedDone),
        (status = 400, description = "Invalid input (the reason names the field).", content_type = "text/plain", body = String),
        (status = 404, description = "No account of that document here, or the key is not at that bank.", content_type = "text/plain", body = String),
        (status = 409, description = "The document or e-mail already has an account here, or paying yourself.", content_type = "text/plain", body = String),
        (status = 422, description = "Not enough money (nothing moved).", content_type = "text/plain", body = String),
        (status = 504, description = "Still pending at the deadline; its outcome shows in the statement.", content_type = "text/plain", body = String)
    ))]
fn operations() {}

#[utoipa::path(get, path = "/accounts", tag = "seed-compatible", operation_id = "seed_accounts", summary = "Every account (the original's): refused",
    description = "The operator reads every account with `bank audit`.",
    responses((status = 401, description = "Always.", content_type = "text/plain", body = String)))]
fn accounts() {}
