//! The fault switch: cuts a running bank off from its peers, for tests and demonstrations.
//!
//! `POST /interbank/v1/fault` with `{ "cut_off": true }`, signed by the consortium operator,
//! makes the bank's peer transport fail every call as unreachable and refuse every member bank's
//! request with 503 `bank_unavailable` — to the rest of the consortium it is down, a network
//! partition with this bank alone on one side. Its customers are still served (intra-bank work
//! goes on; its cross-bank work waits for a token it cannot get, then fails). `{ "cut_off": false }`
//! reconnects it. The answer is `{ "bank_id", "cut_off" }`.
//!
//! The route exists only on a node started with the switch enabled (`bank node --fault-switch`,
//! `bank up --fault-switch`, or `BANK_FAULT_SWITCH=1`); otherwise it answers 404. `bank fault`
//! is its command-line client.

use axum::Json;
use bank_core::Error;
use bank_core::ids::BankId;
use serde::{Deserialize, Serialize};

use super::extract::OperatorSigned;
use crate::problem::{ApiError, invalid};

/// Path of the fault switch.
pub const FAULT_PATH: &str = "/interbank/v1/fault";

/// The switch's position, asked for and answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    pub cut_off: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultState {
    pub bank_id: BankId,
    pub cut_off: bool,
}

/// `POST /interbank/v1/fault` (the operator only, and only when enabled).
pub async fn fault(state: super::State, signed: OperatorSigned) -> Result<Json<FaultState>, ApiError> {
    let (true, Some(interbank)) = (state.fault_switch, state.interbank.as_deref()) else {
        return Err(ApiError::Core(Error::NotFound("the fault switch is not enabled on this bank".into())));
    };
    let request: FaultRequest =
        serde_json::from_slice(&signed.bytes).map_err(|e| invalid(format!("invalid JSON body: {e}")))?;
    interbank.peers.set_cut_off(request.cut_off);
    tracing::warn!(cut_off = request.cut_off, "fault switch thrown by the operator");
    Ok(Json(FaultState { bank_id: state.bank_id, cut_off: request.cut_off }))
}
