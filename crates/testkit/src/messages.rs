//! The pages' message ids, for tests that check no page shows one (an untranslated message).

use std::path::Path;

/// Every message id of the pages' message files (`crates/node/locales/en`; every language has
/// the same ids, which a unit test of the node checks).
pub fn message_ids() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../node/locales/en");
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("crates/node/locales/en") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("ftl");
        for line in text.lines() {
            if let Some((id, _)) = line.split_once(" =")
                && !id.is_empty()
                && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                ids.push(id.to_string());
            }
        }
    }
    assert!(ids.len() > 100, "message ids: {ids:?}");
    ids
}

/// Fails if `text` shows one of `ids` as a word of its own (not inside a longer word, an HTML
/// id or a URL): a message that was not translated. `what` names the page.
pub fn assert_no_message_id(ids: &[String], what: &str, text: &str) {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    for id in ids {
        for (at, _) in text.match_indices(id.as_str()) {
            let (before, after) = (text[..at].chars().next_back(), text[at + id.len()..].chars().next());
            assert!(word(before) || word(after), "{what} shows the message id {id:?}: {text}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_shown_alone_is_caught_and_one_inside_a_word_is_not() {
        let ids = vec!["nav-pix".to_string()];
        assert_no_message_id(&ids, "page", "<a id=\"nav-pix-link\">Pix</a> xnav-pix");
        let shown = std::panic::catch_unwind(|| assert_no_message_id(&ids, "page", "<a>nav-pix</a>"));
        assert!(shown.is_err(), "a bare id must fail the check");
        assert!(message_ids().iter().any(|id| id == "title-receipt"));
    }
}
