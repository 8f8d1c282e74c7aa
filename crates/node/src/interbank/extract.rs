//! Axum extractors for `/interbank/v1` handlers: the request is believed only once its signature
//! verifies (see [`super::sign`]); a refusal is a 401 problem `unauthorized` (503 `overloaded`
//! when the sender's nonce cache is full) and the handler never runs, so nothing changes.
//!
//! Two kinds of signer, never mixed up:
//!
//! - [`SignedBody`] / [`Signed`]: a **member bank**, checked by the bank verifier (members' keys).
//!   The operator's id 0 is not a member, so an operator's signature is refused here.
//! - [`OperatorSigned`]: the **consortium operator** (`bank audit`), checked by a verifier that
//!   knows only the operator key, under id 0 ([`OPERATOR`]), with its own nonce cache and the
//!   same stale/replay rules. A member's signature is refused here.
//!
//! The verifiers are found through [`InterbankState`], so a router over any state that can lend
//! them can use these extractors (the node's `Arc<AppState>` implements it in [`super`]).

use axum::body::Bytes;
use axum::extract::{FromRequest, OriginalUri, Request};
use axum::http::{StatusCode, Uri};
use bank_core::Error;
use bank_core::ids::BankId;
use serde::de::DeserializeOwned;

use super::sign::{OPERATOR, SignatureError, Verifier, unix_now_ms};
use crate::problem::{ApiError, invalid};

/// State that can lend the verifiers of inter-bank requests; `None` when the bank runs alone
/// (no consortium file), and then every inter-bank request is refused.
pub trait InterbankState {
    /// The verifier of member banks' requests.
    fn verifier(&self) -> Option<&Verifier>;
    /// The verifier of the operator's requests (only [`OPERATOR`]'s key); `None` refuses them all.
    fn operator_verifier(&self) -> Option<&Verifier> {
        None
    }
    /// Whether the fault switch cuts this bank off: member banks' requests are then refused as
    /// if it were down.
    fn cut_off(&self) -> bool {
        false
    }
}

/// The raw body of a request whose signature verified, and who sent it.
#[derive(Debug, Clone)]
pub struct SignedBody {
    pub from: BankId,
    pub bytes: Bytes,
}

/// A verified request's JSON body, parsed strictly (unknown fields refused by `T`'s serde
/// attributes), and who sent it.
#[derive(Debug, Clone)]
pub struct Signed<T> {
    pub from: BankId,
    pub value: T,
}

/// A request signed by the consortium operator (sender id [`OPERATOR`], the operator key): its
/// URI as sent (path and query, both covered by the signature) and its raw body.
#[derive(Debug, Clone)]
pub struct OperatorSigned {
    pub uri: Uri,
    pub bytes: Bytes,
}

/// The answer to a refused signature; the reason goes to the log and the detail.
pub fn refusal(error: &SignatureError) -> ApiError {
    match error {
        SignatureError::Overloaded(_) => ApiError::Core(Error::Overloaded),
        other => ApiError::Core(Error::Unauthorized(format!("inter-bank request refused: {other}"))),
    }
}

/// Which verifier a route believes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signer {
    Member,
    Operator,
}

/// Reads the request and checks its signature with the verifier of `signer`.
async fn verified<S: InterbankState + Send + Sync>(
    req: Request,
    state: &S,
    signer: Signer,
) -> Result<(BankId, Uri, Bytes), ApiError> {
    let verifier = match signer {
        Signer::Member => state.verifier(),
        Signer::Operator => state.operator_verifier(),
    };
    let Some(verifier) = verifier else {
        return Err(ApiError::Core(Error::Unauthorized(
            "this bank runs without a consortium file; it accepts no inter-bank requests".into(),
        )));
    };
    if signer == Signer::Member && state.cut_off() {
        // The fault switch: to its peers this bank looks down (the operator can still reach it).
        return Err(ApiError::Core(Error::BankUnavailable("this bank is cut off by the fault switch".into())));
    }
    // The path as the sender addressed it, even if a router nests this handler.
    let uri = req.extensions().get::<OriginalUri>().map_or_else(|| req.uri().clone(), |original| original.0.clone());
    let path = uri.path_and_query().map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let method = req.method().clone();
    let headers = req.headers().clone();
    let bytes = Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            invalid("the request body is too large")
        } else {
            invalid(format!("could not read the request body: {e}"))
        }
    })?;
    match verifier.verify(method.as_str(), &path, &headers, &bytes, unix_now_ms()) {
        Ok(from) => Ok((from, uri, bytes)),
        Err(e) => {
            tracing::info!(reason = %e, %method, %path, ?signer, "inter-bank request refused");
            Err(match (&e, signer) {
                // Say which key this route wants rather than "not a member".
                (SignatureError::UnknownBank(id), Signer::Member) if *id == OPERATOR => {
                    ApiError::Core(Error::Unauthorized(
                        "inter-bank request refused: the operator's key signs only audit requests".into(),
                    ))
                }
                (SignatureError::UnknownBank(id), Signer::Operator) => ApiError::Core(Error::Unauthorized(format!(
                    "inter-bank request refused: this route accepts only the consortium operator's signature \
                     (sender id {OPERATOR}), not bank {id}'s"
                ))),
                _ => refusal(&e),
            })
        }
    }
}

impl<S: InterbankState + Send + Sync> FromRequest<S> for SignedBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (from, _, bytes) = verified(req, state, Signer::Member).await?;
        Ok(SignedBody { from, bytes })
    }
}

impl<T: DeserializeOwned, S: InterbankState + Send + Sync> FromRequest<S> for Signed<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let SignedBody { from, bytes } = SignedBody::from_request(req, state).await?;
        let value = serde_json::from_slice(&bytes).map_err(|e| invalid(format!("invalid JSON body: {e}")))?;
        Ok(Signed { from, value })
    }
}

impl<S: InterbankState + Send + Sync> FromRequest<S> for OperatorSigned {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (from, uri, bytes) = verified(req, state, Signer::Operator).await?;
        // The operator verifier knows no other sender; this is a second lock on the same door.
        if from != OPERATOR {
            return Err(ApiError::Core(Error::Unauthorized("only the operator may call this route".into())));
        }
        Ok(OperatorSigned { uri, bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interbank::sign::{fresh_nonce, sign};
    use axum::Router;
    use axum::routing::post;
    use ed25519_dalek::SigningKey;
    use std::sync::Arc;
    use tower::ServiceExt;

    /// Any state that lends a verifier can use the extractors, not only the node's.
    struct TestState(Option<Verifier>, Option<Verifier>);

    impl InterbankState for Arc<TestState> {
        fn verifier(&self) -> Option<&Verifier> {
            self.0.as_ref()
        }
        fn operator_verifier(&self) -> Option<&Verifier> {
            self.1.as_ref()
        }
    }

    async fn echo(signed: Signed<serde_json::Value>) -> axum::Json<serde_json::Value> {
        axum::Json(serde_json::json!({ "from": signed.from, "value": signed.value }))
    }

    async fn operator_echo(signed: OperatorSigned) -> String {
        format!("{} {}", signed.uri, String::from_utf8_lossy(&signed.bytes))
    }

    fn app(verifier: Option<Verifier>) -> Router {
        Router::new().route("/interbank/v1/echo", post(echo)).with_state(Arc::new(TestState(verifier, None)))
    }

    fn operator_key() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }

    /// Bank 2 with member bank 1 and the operator; `/audit` believes only the operator.
    fn both() -> Router {
        let operator = Verifier::new(BankId(2), [(OPERATOR, operator_key().verifying_key())].into_iter().collect());
        Router::new()
            .route("/interbank/v1/echo", post(echo))
            .route("/interbank/v1/audit", post(operator_echo))
            .with_state(Arc::new(TestState(Some(verifier()), Some(operator))))
    }

    fn signed_by(key: &SigningKey, from: BankId, path: &str, body: &str, nonce: [u8; 16]) -> Request {
        let headers = sign(key, from, BankId(2), "POST", path, body.as_bytes(), unix_now_ms(), nonce);
        let mut builder = Request::post(path);
        for (name, value) in headers.pairs() {
            builder = builder.header(name, value);
        }
        builder.body(axum::body::Body::from(body.to_owned())).expect("request")
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[1; 32])
    }

    fn verifier() -> Verifier {
        Verifier::new(BankId(2), [(BankId(1), key().verifying_key())].into_iter().collect())
    }

    fn request(body: &str, signed_body: &str) -> Request {
        let nonce = fresh_nonce().expect("nonce");
        let headers = sign(
            &key(),
            BankId(1),
            BankId(2),
            "POST",
            "/interbank/v1/echo",
            signed_body.as_bytes(),
            unix_now_ms(),
            nonce,
        );
        let mut builder = Request::post("/interbank/v1/echo");
        for (name, value) in headers.pairs() {
            builder = builder.header(name, value);
        }
        builder.body(axum::body::Body::from(body.to_owned())).expect("request")
    }

    async fn status_of(app: Router, request: Request) -> u16 {
        app.oneshot(request).await.expect("answer").status().as_u16()
    }

    #[tokio::test]
    async fn signed_json_reaches_the_handler_with_its_sender() {
        let response = app(Some(verifier())).oneshot(request("{\"a\":1}", "{\"a\":1}")).await.expect("answer");
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(response.into_body(), 1024).await.expect("body");
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(body, serde_json::json!({ "from": 1, "value": { "a": 1 } }));
    }

    #[tokio::test]
    async fn refusals_never_reach_the_handler() {
        assert_eq!(status_of(app(Some(verifier())), request("{\"a\":2}", "{\"a\":1}")).await, 401, "tampered body");
        assert_eq!(status_of(app(None), request("{}", "{}")).await, 401, "no consortium");
        assert_eq!(status_of(app(Some(verifier())), request("not json", "not json")).await, 400, "signed, not JSON");
        let unsigned = Request::post("/interbank/v1/echo").body(axum::body::Body::from("{}")).expect("request");
        assert_eq!(status_of(app(Some(verifier())), unsigned).await, 401, "unsigned");
    }

    #[tokio::test]
    async fn the_operator_and_the_members_each_have_their_own_routes() {
        let path = "/interbank/v1/audit?list=totals";
        let op = signed_by(&operator_key(), OPERATOR, path, "", [1; 16]);
        let response = both().oneshot(op).await.expect("answer");
        assert_eq!(response.status(), StatusCode::OK, "the operator on its route");
        let bytes = axum::body::to_bytes(response.into_body(), 1024).await.expect("body");
        assert_eq!(&bytes[..], format!("{path} ").as_bytes(), "the signed URI reaches the handler");

        let member_on_audit = signed_by(&key(), BankId(1), path, "", [2; 16]);
        assert_eq!(status_of(both(), member_on_audit).await, 401, "a member's signature on the audit route");
        let operator_on_member = signed_by(&operator_key(), OPERATOR, "/interbank/v1/echo", "{}", [3; 16]);
        assert_eq!(status_of(both(), operator_on_member).await, 401, "the operator's signature on a member route");
        // A member key claiming to be the operator, and the operator key claiming to be bank 1.
        let forged = signed_by(&key(), OPERATOR, path, "", [4; 16]);
        assert_eq!(status_of(both(), forged).await, 401, "a member key under id 0");
        let forged = signed_by(&operator_key(), BankId(1), "/interbank/v1/echo", "{}", [5; 16]);
        assert_eq!(status_of(both(), forged).await, 401, "the operator key under bank 1's id");
        let unsigned = Request::post(path).body(axum::body::Body::empty()).expect("request");
        assert_eq!(status_of(both(), unsigned).await, 401, "unsigned");
        // No operator verifier (a bank alone): refused.
        let op = signed_by(&operator_key(), OPERATOR, path, "", [6; 16]);
        let alone =
            Router::new().route("/interbank/v1/audit", post(operator_echo)).with_state(Arc::new(TestState(None, None)));
        assert_eq!(status_of(alone, op).await, 401, "no consortium");
    }

    #[tokio::test]
    async fn a_replayed_operator_request_is_refused() {
        let app = both();
        let path = "/interbank/v1/audit";
        let first = signed_by(&operator_key(), OPERATOR, path, "", [7; 16]);
        let again = signed_by(&operator_key(), OPERATOR, path, "", [7; 16]);
        assert_eq!(status_of(app.clone(), first).await, 200);
        assert_eq!(status_of(app, again).await, 401, "same nonce");
    }
}
