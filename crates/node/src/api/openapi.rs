//! The OpenAPI 3.1 document of the public API, generated from the code: each handler's
//! `#[utoipa::path]` sits on the handler itself and its schemas are derived from the very types
//! it parses and answers ([`super::dto`], [`crate::problem::Problem`]), and the router is built
//! from the same list ([`super::documented`]), so a route cannot be served undocumented.
//!
//! Served at `GET /api/v1/openapi.json` and printed by `bank openapi`; both call [`json`].
//!
//! The string enums the handlers write with `as_str()` (account kinds, statuses, …) are
//! described here from the core's own enums; each list is a `match` without a wildcard, so a new
//! variant in the core does not compile until the document lists it.

use std::borrow::Cow;
use std::sync::OnceLock;

use bank_core::account::AccountKind;
use bank_core::error::ErrorCode;
use bank_core::ledger::{DepositMethod, EntryKind, Status};
use bank_core::pixkey::KeyType;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr};
use utoipa::{Modify, PartialSchema, ToResponse, ToSchema};

use crate::problem::Problem;

/// Name of the session's bearer scheme in `components.securitySchemes`.
pub const SESSION_SCHEME: &str = "session";

/// The document, built once per process (it depends on nothing but the code).
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = super::documented().split_for_parts().1;
        // The seed-compatible routes, under their own tag (served only with `--seed-compat`).
        doc.merge(<crate::seed::openapi::SeedDoc as utoipa::OpenApi>::openapi());
        doc
    })
}

/// The document as served and as `bank openapi` prints it: pretty JSON, one trailing newline.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut text = document().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        text.push('\n');
        text
    })
}

/// The top of the document: info, tags, the reusable error responses and the security scheme.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Bank node public API",
        version = "1",
        description = "The JSON API every bank of the consortium serves under `/api/v1` (API.md). \
            Amounts are integer centavos. Money-moving requests take an `Idempotency-Key` (a UUID): \
            the same key with the same body returns the first answer and moves nothing, with a \
            different body it answers 422 `idempotency_mismatch`. Every error is \
            `application/problem+json` with a stable `code`; a rejected request changes nothing.",
        license(name = "MIT", identifier = "MIT")
    ),
    tags(
        (name = "bank", description = "This bank"),
        (name = "accounts", description = "Opening an account, signing in and out"),
        (name = "money", description = "Deposits, withdrawals, transfers and the statement"),
        (name = "pix-keys", description = "Pix keys: registering and looking up"),
        (name = "consortium", description = "The consortium as this bank sees it"),
        (name = "operations", description = "Health, metrics and this document")
    ),
    components(schemas(Problem, ProblemCode), responses(
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        Unprocessable,
        TooManyAttempts,
        Unavailable
    )),
    modifiers(&SessionScheme)
)]
#[derive(Debug)]
pub struct ApiDoc;

/// Adds the session's bearer scheme (`POST /api/v1/sessions` hands out the token).
struct SessionScheme;

impl Modify for SessionScheme {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SESSION_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The `token` of `POST /api/v1/sessions`: `Authorization: Bearer <token>`."))
                    .build(),
            ),
        );
    }
}

/// A string schema that is one of `values`.
fn string_enum(description: &str, values: impl IntoIterator<Item = &'static str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .description(Some(description))
        .enum_values(Some(values))
        .into()
}

/// Declares a named component schema for a string enum whose values come from the core.
macro_rules! string_enum_schema {
    ($(#[$doc:meta])* $name:ident, $description:literal, $values:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                string_enum($description, $values)
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

fn account_kinds() -> [&'static str; 3] {
    // Exhaustive on purpose: a new kind must be added to the document.
    let list = [AccountKind::Individual, AccountKind::Company, AccountKind::Joint];
    let _: fn(AccountKind) = |k| match k {
        AccountKind::Individual | AccountKind::Company | AccountKind::Joint => {}
    };
    list.map(AccountKind::as_str)
}

fn key_types() -> [&'static str; 5] {
    let list = [KeyType::Cpf, KeyType::Cnpj, KeyType::Email, KeyType::Phone, KeyType::Random];
    let _: fn(KeyType) = |k| match k {
        KeyType::Cpf | KeyType::Cnpj | KeyType::Email | KeyType::Phone | KeyType::Random => {}
    };
    list.map(KeyType::as_str)
}

fn deposit_methods() -> [&'static str; 3] {
    let list = [DepositMethod::Cash, DepositMethod::Boleto, DepositMethod::Qr];
    let _: fn(DepositMethod) = |m| match m {
        DepositMethod::Cash | DepositMethod::Boleto | DepositMethod::Qr => {}
    };
    list.map(DepositMethod::as_str)
}

fn entry_kinds() -> [&'static str; 6] {
    let list = [
        EntryKind::Deposit,
        EntryKind::Withdrawal,
        EntryKind::TransferOut,
        EntryKind::TransferIn,
        EntryKind::RefundOut,
        EntryKind::RefundIn,
    ];
    let _: fn(EntryKind) = |k| match k {
        EntryKind::Deposit
        | EntryKind::Withdrawal
        | EntryKind::TransferOut
        | EntryKind::TransferIn
        | EntryKind::RefundOut
        | EntryKind::RefundIn => {}
    };
    list.map(EntryKind::as_str)
}

fn statuses() -> [&'static str; 3] {
    let list = [Status::Completed, Status::Failed, Status::Pending];
    let _: fn(Status) = |s| match s {
        Status::Completed | Status::Failed | Status::Pending => {}
    };
    list.map(Status::as_str)
}

/// Every code a problem may carry: the core's codes and `internal` (an opaque 500).
fn problem_codes() -> Vec<&'static str> {
    ErrorCode::ALL.iter().map(|c| c.as_str()).chain(["internal"]).collect()
}

/// The codes a transfer's `failure` may carry: the core's refusal codes.
fn failure_codes() -> Vec<&'static str> {
    ErrorCode::ALL.iter().map(|c| c.as_str()).collect()
}

string_enum_schema!(AccountKindName, "Kind of account.", account_kinds());
string_enum_schema!(KeyTypeName, "Type of a Pix key.", key_types());
string_enum_schema!(
    NewKeyTypeName,
    "A key type a customer may register; the CPF/CNPJ key is registered at account opening.",
    ["email", "phone", "random"]
);
string_enum_schema!(DepositMethodName, "How cash comes in.", deposit_methods());
string_enum_schema!(EntryKindName, "What a statement entry records.", entry_kinds());
string_enum_schema!(
    DirectionName,
    "Whether an entry adds to (`credit`) or takes from (`debit`) the account.",
    ["credit", "debit"]
);
string_enum_schema!(StatusName, "Outcome of an entry, a transfer or a leg.", statuses());
string_enum_schema!(DecisionName, "The coordinator's decision, once taken.", ["commit", "abort"]);
string_enum_schema!(
    /// `code` of a problem document: stable and machine-readable (API.md).
    ProblemCode,
    "The stable machine-readable error code.",
    problem_codes()
);
string_enum_schema!(FailureCode, "Why a transfer failed.", failure_codes());
string_enum_schema!(MemberState, "How this bank last found a member.", ["up", "suspected", "unknown"]);

/// Declares a reusable problem response for one status.
macro_rules! problem_response {
    ($name:ident, $description:literal) => {
        #[derive(Debug, ToResponse)]
        #[response(description = $description, content_type = "application/problem+json")]
        pub struct $name(#[allow(dead_code)] Problem);
    };
}

problem_response!(BadRequest, "`invalid_input`: malformed or invalid input; nothing changed.");
problem_response!(Unauthorized, "`unauthorized`: no valid session token (or wrong credentials).");
problem_response!(Forbidden, "`forbidden`: the session may not act on that account.");
problem_response!(NotFound, "`not_found` or `unknown_key`: no such account, transfer or key.");
problem_response!(
    Conflict,
    "`conflict`: taken already (a document, an e-mail, a key); `not_refundable`: that Pix cannot be refunded."
);
problem_response!(
    Unprocessable,
    "`insufficient_funds`, `refund_exceeds_amount`, or `idempotency_mismatch` (the key was used with another body)."
);
problem_response!(Unavailable, "`overloaded` or `bank_unavailable`: try again shortly.");

/// `too_many_attempts`, with the seconds to wait in `Retry-After`.
#[derive(Debug, ToResponse)]
#[response(
    description = "`too_many_attempts`: too many failed attempts lately; wait `Retry-After` seconds.",
    content_type = "application/problem+json",
    headers(("Retry-After" = u64, description = "Seconds to wait before the next attempt."))
)]
pub struct TooManyAttempts(#[allow(dead_code)] Problem);

/// The optional `Idempotency-Key` header of money-moving requests.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyHeader {
    /// A UUID chosen by the client. Repeating it with the same body returns the first answer and
    /// moves nothing again; with another body, 422 `idempotency_mismatch`. Without it the
    /// request cannot be safely retried.
    // No example: one fixed key sent with different bodies is, rightly, 422 `idempotency_mismatch`.
    #[param(rename = "Idempotency-Key", value_type = String, required = false, format = Uuid)]
    #[allow(dead_code)]
    idempotency_key: Option<String>,
}
