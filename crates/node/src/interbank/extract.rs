//! Axum extractors for `/interbank/v1` handlers: the request is believed only once its signature
//! verifies (see [`super::sign`]); a refusal is a 401 problem `unauthorized` (503 `overloaded`
//! when the sender's nonce cache is full) and the handler never runs, so nothing changes.
//!
//! The verifier is found through [`InterbankState`], so a router over any state that can lend one
//! can use these extractors (the node's `Arc<AppState>` implements it in [`super`]).

use axum::body::Bytes;
use axum::extract::{FromRequest, OriginalUri, Request};
use axum::http::StatusCode;
use bank_core::Error;
use bank_core::ids::BankId;
use serde::de::DeserializeOwned;

use super::sign::{SignatureError, Verifier, unix_now_ms};
use crate::api::problem::{ApiError, invalid};

/// State that can lend the verifier of inter-bank requests; `None` when the bank runs alone
/// (no consortium file), and then every inter-bank request is refused.
pub trait InterbankState {
    fn verifier(&self) -> Option<&Verifier>;
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

/// The answer to a refused signature; the reason goes to the log and the detail.
pub fn refusal(error: &SignatureError) -> ApiError {
    match error {
        SignatureError::Overloaded(_) => ApiError::Core(Error::Overloaded),
        other => ApiError::Core(Error::Unauthorized(format!("inter-bank request refused: {other}"))),
    }
}

impl<S: InterbankState + Send + Sync> FromRequest<S> for SignedBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Some(verifier) = state.verifier() else {
            return Err(ApiError::Core(Error::Unauthorized(
                "this bank runs without a consortium file; it accepts no inter-bank requests".into(),
            )));
        };
        // The path as the sender addressed it, even if a router nests this handler.
        let uri =
            req.extensions().get::<OriginalUri>().map_or_else(|| req.uri().clone(), |original| original.0.clone());
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
            Ok(from) => Ok(SignedBody { from, bytes }),
            Err(e) => {
                tracing::info!(reason = %e, %method, %path, "inter-bank request refused");
                Err(refusal(&e))
            }
        }
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
    struct TestState(Option<Verifier>);

    impl InterbankState for Arc<TestState> {
        fn verifier(&self) -> Option<&Verifier> {
            self.0.as_ref()
        }
    }

    async fn echo(signed: Signed<serde_json::Value>) -> axum::Json<serde_json::Value> {
        axum::Json(serde_json::json!({ "from": signed.from, "value": signed.value }))
    }

    fn app(verifier: Option<Verifier>) -> Router {
        Router::new().route("/interbank/v1/echo", post(echo)).with_state(Arc::new(TestState(verifier)))
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
}
