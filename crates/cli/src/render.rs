//! Text shown to a customer: pure functions from API values to strings, so they can be tested
//! without a terminal. Money is always printed with [`format_brl`].

use bank_client::{Account, ConsortiumAccounts, Direction, Entry, EntryKind, PixKeyInfo, Statement, Status, Transfer};
use bank_core::money::format_brl;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};
use std::fmt::Write as _;

/// `2025-01-01T12:34:56.789Z` → `2025-01-01 12:34:56`; anything unexpected is shown as is.
pub fn short_time(rfc3339: &str) -> String {
    let bytes = rfc3339.as_bytes();
    if bytes.len() >= 19 && bytes[10] == b'T' && rfc3339.is_char_boundary(19) {
        format!("{} {}", &rfc3339[..10], &rfc3339[11..19])
    } else {
        rfc3339.to_owned()
    }
}

fn table() -> Table {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
    table
}

/// The signed-in account: who, where, balances and keys.
pub fn account(account: &Account) -> String {
    let mut out = String::new();
    let holders: Vec<String> = account.holders.iter().map(|h| format!("{} ({})", h.name, h.document)).collect();
    let _ = writeln!(
        out,
        "Account {} at {} (bank {}), {}",
        account.number, account.bank_name, account.bank_id, account.kind
    );
    let _ = writeln!(out, "Holders:   {}", holders.join(", "));
    let _ = writeln!(out, "Contact:   {}, {}", account.email, account.phone);
    let _ = writeln!(out, "Available: {}", format_brl(account.balance.available_cents));
    let _ = writeln!(out, "Posted:    {}", format_brl(account.balance.posted_cents));
    if account.balance.held_cents != 0 {
        let _ = writeln!(out, "Held:      {}", format_brl(account.balance.held_cents));
    }
    if account.pix_keys.is_empty() {
        let _ = writeln!(out, "Pix keys:  none");
    } else {
        let keys: Vec<String> = account.pix_keys.iter().map(|k| format!("{} ({})", k.key, k.key_type)).collect();
        let _ = writeln!(out, "Pix keys:  {}", keys.join(", "));
    }
    for warning in &account.warnings {
        let _ = writeln!(out, "Warning:   {warning}");
    }
    out
}

/// A statement line in the customer's words: what happened and with whom ("Pix to Bruno Lima ·
/// Automobili"); internal ids stay on the transfer's detail.
fn entry_label(entry: &Entry) -> String {
    match (entry.kind, &entry.counterparty) {
        (EntryKind::TransferOut, Some(who)) => format!("Pix to {who}"),
        (EntryKind::TransferIn, Some(who)) => format!("Pix from {who}"),
        (EntryKind::TransferOut, None) => "Pix sent".to_owned(),
        (EntryKind::TransferIn, None) => "Pix received".to_owned(),
        (EntryKind::RefundOut, Some(who)) => format!("Refund to {who}"),
        (EntryKind::RefundIn, Some(who)) => format!("Refund from {who}"),
        (EntryKind::RefundOut, None) => "Refund sent".to_owned(),
        (EntryKind::RefundIn, None) => "Refund received".to_owned(),
        (EntryKind::Deposit, _) => match entry.method {
            Some(method) => format!("Deposit ({})", method.as_str()),
            None => "Deposit".to_owned(),
        },
        (EntryKind::Withdrawal, _) => "Withdrawal".to_owned(),
    }
}

/// One line about an entry just made (deposit, withdrawal).
pub fn entry_line(entry: &Entry) -> String {
    let verb = match entry.direction {
        Direction::Credit => "credited",
        Direction::Debit => "debited",
    };
    format!("{}: {} {verb}, {} (entry #{})", entry_label(entry), format_brl(entry.amount_cents), entry.status, entry.id)
}

/// A statement page as a table, with the command for the next page.
pub fn statement(page: &Statement) -> String {
    if page.entries.is_empty() {
        return "No entries.\n".to_owned();
    }
    let mut table = table();
    table.set_header(["#", "Date", "Description", "Amount", "Status"]);
    for entry in &page.entries {
        let amount = format_brl(entry.signed_cents());
        let status = entry.status.to_string();
        table.add_row(vec![
            Cell::new(entry.id).set_alignment(CellAlignment::Right),
            Cell::new(short_time(&entry.created_at)),
            Cell::new(entry_label(entry)),
            Cell::new(amount).set_alignment(CellAlignment::Right),
            Cell::new(status),
        ]);
    }
    let mut out = format!("{table}\n");
    if let Some(next) = &page.next {
        let _ = writeln!(out, "Older entries: bank statement --before {next}");
    }
    out
}

/// Whom a key points to.
pub fn key_info(info: &PixKeyInfo) -> String {
    format!(
        "{} ({}) at {} (bank {}), key {} ({})",
        info.holder_name, info.masked_document, info.bank_name, info.bank_id, info.key, info.key_type
    )
}

/// An executed transfer: status, legs, failure or decision.
pub fn transfer(transfer: &Transfer) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Transfer {}: {}", transfer.id, transfer.status);
    for leg in &transfer.legs {
        let to = match (&leg.to.holder_name, &leg.to.key) {
            (Some(name), Some(key)) => format!("{name} (key {key}, {}/{})", leg.to.bank_id, leg.to.number),
            (Some(name), None) => format!("{name} ({}/{})", leg.to.bank_id, leg.to.number),
            (None, Some(key)) => format!("key {key} ({}/{})", leg.to.bank_id, leg.to.number),
            (None, None) => format!("{}/{}", leg.to.bank_id, leg.to.number),
        };
        let _ = writeln!(
            out,
            "  {} from {}/{} to {to}: {}",
            format_brl(leg.amount_cents),
            leg.from.bank_id,
            leg.from.number,
            leg.status
        );
        if let Some(e2e) = &leg.end_to_end_id {
            let _ = writeln!(out, "    end-to-end id {e2e}");
        }
    }
    if let Some(of) = &transfer.refund_of {
        let _ = writeln!(out, "  Refund of {} (transfer {}, leg {})", of.end_to_end_id, of.transfer_id, of.leg);
    }
    if let Some(description) = &transfer.description {
        let _ = writeln!(out, "  Description: {description}");
    }
    if let Some(failure) = &transfer.failure {
        let _ = writeln!(out, "  Failed: {} ({})", failure.detail, failure.code);
    }
    if transfer.status == Status::Pending {
        let decision = transfer.decision.map_or("none yet", |d| d.as_str());
        let _ = writeln!(
            out,
            "  Not finished yet (decision: {decision}); follow it with: bank transfer show {}",
            transfer.id
        );
    }
    out
}

/// The customer's accounts across the consortium.
pub fn consortium_accounts(list: &ConsortiumAccounts) -> String {
    let mut table = table();
    table.set_header(["Bank", "Account", "Kind", "Available"]);
    for a in &list.accounts {
        let available = a.balance.map_or("–".to_owned(), |b| format_brl(b.available_cents));
        table.add_row(vec![
            Cell::new(format!("{} ({})", a.bank_name, a.bank_id)),
            Cell::new(&a.number),
            Cell::new(a.kind),
            Cell::new(available).set_alignment(CellAlignment::Right),
        ]);
    }
    let mut out = format!("{table}\n");
    if !list.unreachable_banks.is_empty() {
        let names: Vec<String> = list
            .unreachable_banks
            .iter()
            .map(|b| match b {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let _ = writeln!(out, "Not reachable now (their accounts are missing above): {}", names.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(id: u64, kind: &str, direction: &str, cents: i64, counterparty: Option<&str>) -> serde_json::Value {
        json!({"id": id, "transfer_id": null, "kind": kind, "direction": direction, "amount_cents": cents,
               "status": "completed", "method": null, "counterparty": counterparty,
               "created_at": "2025-03-04T05:06:07.123Z"})
    }

    #[test]
    fn statement_shows_signed_brl_amounts_and_next_page() {
        let page: Statement = serde_json::from_value(json!({
            "entries": [entry(2, "transfer_out", "debit", 123_456, Some("Bia")), entry(1, "deposit", "credit", 500, None)],
            "next": "cursor-1"
        }))
        .expect("page");
        let text = statement(&page);
        assert!(text.contains("-R$ 1.234,56"), "{text}");
        assert!(text.contains("R$ 5,00"), "{text}");
        assert!(text.contains("Pix to Bia"), "{text}");
        assert!(text.contains("2025-03-04 05:06:07"), "{text}");
        assert!(text.contains("bank statement --before cursor-1"), "{text}");
    }

    #[test]
    fn statement_names_the_counterparty_and_its_bank_marks_refunds_and_fills_the_status() {
        let mut refund = entry(3, "refund_in", "credit", 600, Some("Bruno Lima · Automobili"));
        refund["refund_of"] = json!("0190b1a4-7c2e-7d5e-9f00-000000000009");
        let mut failed = entry(2, "transfer_out", "debit", 100, Some("Bruno Lima · Automobili"));
        failed["status"] = json!("failed");
        let page: Statement =
            serde_json::from_value(json!({ "entries": [refund, failed], "next": null })).expect("page");
        let text = statement(&page);
        assert!(text.contains("Refund from Bruno Lima · Automobili"), "{text}");
        assert!(text.contains("Pix to Bruno Lima · Automobili"), "{text}");
        assert!(text.contains("completed") && text.contains("failed"), "every line has a status: {text}");
        assert!(!text.contains("coordinated by"), "{text}");
    }

    #[test]
    fn short_time_keeps_odd_input() {
        assert_eq!(short_time("2025-01-01T00:00:00Z"), "2025-01-01 00:00:00");
        assert_eq!(short_time("yesterday"), "yesterday");
    }

    #[test]
    fn pending_transfer_says_how_to_follow_it() {
        let t: Transfer = serde_json::from_value(json!({
            "id": "0190b1a4-7c2e-7d5e-9f00-000000000009", "status": "pending",
            "legs": [{"from": {"bank_id": 1, "number": "000001-4"},
                      "to": {"bank_id": 2, "number": "000003-8", "key": "bia@x.com", "holder_name": "Bia"},
                      "amount_cents": 1000, "status": "pending"}],
            "failure": null, "decision": "commit", "description": null, "created_at": "2025-01-01T00:00:00Z"
        }))
        .expect("transfer");
        let text = transfer(&t);
        assert!(text.contains("R$ 10,00 from 1/000001-4 to Bia (key bia@x.com, 2/000003-8): pending"), "{text}");
        assert!(text.contains("decision: commit"), "{text}");
        assert!(text.contains("bank transfer show 0190b1a4-7c2e-7d5e-9f00-000000000009"), "{text}");
    }
}
