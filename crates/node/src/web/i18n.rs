//! The pages' languages: Brazilian Portuguese (the default) and English, with Project Fluent.
//!
//! **Where the words are.** Every sentence a page shows lives in a Fluent message file,
//! `crates/node/locales/<language>/*.ftl`, compiled into the binary ([`SOURCES`]). Templates and
//! handlers name messages by id (`shell.t("nav-pix")`, `tr.t1("dashboard-hello", "name", …)`);
//! Fluent picks the plural form by the language's CLDR rules (`{ $count -> [one] … *[other] … }`),
//! so counts are passed as numbers. Money (`R$ 1.234,56`, as Brazilians write it in either
//! language) and times (Brasília time, [`when`]) are formatted by code and passed in as text. The
//! JSON API is not translated: it keeps its English problem details and ISO-8601 UTC times.
//!
//! **Which language.** [`Lang::of_request`]: the `lang` cookie if it names a language we have
//! (set by the switch in every page's header, `POST /lang`; SameSite=Lax, a year), otherwise the
//! first language of `Accept-Language` we have (`pt-PT` counts as Portuguese, `en-US` as
//! English), otherwise pt-BR — the customers are Brazilian, so a browser that says nothing useful
//! gets Portuguese.
//!
//! **Guarantees, tested here.** Every message id exists in every language, with the same
//! variables; every id the templates and the web code use exists (ids are literals passed to
//! `t`, `t1`, `t2`, `t3` or marked with [`msg`], so a test can find them); the files parse. A
//! missing id at run time is logged and shown as the id itself — the pages' tests fail on that
//! (`crates/node/tests/web.rs`, `crates/cli/tests/e2e_web.rs`), so it does not ship.
//!
//! **Not handled.** Only two languages; `Accept-Language` quality values are not weighed (browsers
//! list languages in order of preference, which is what is read); the core's error sentences
//! are English and are recognised by pattern in [`super::words`], falling back to a generic
//! sentence that quotes the English detail.

use std::borrow::Cow;
use std::sync::LazyLock;

use axum::http::{HeaderMap, header};
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use unic_langid::LanguageIdentifier;

/// A language the pages speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    /// Brazilian Portuguese: the default.
    PtBr,
    En,
}

/// The cookie that remembers the customer's choice (shared by the banks on one host: a person
/// reads one language whichever bank they use).
pub const LANG_COOKIE: &str = "lang";

/// How long the choice is remembered, in seconds (a year).
pub const LANG_COOKIE_MAX_AGE_S: u64 = 365 * 24 * 3600;

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::PtBr, Lang::En];
    pub const DEFAULT: Lang = Lang::PtBr;

    /// The BCP 47 tag: the `lang` attribute, the cookie's value and the locales folder's name.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::PtBr => "pt-BR",
            Lang::En => "en",
        }
    }

    /// One of our tags, exactly (the cookie and the switch's form send nothing else).
    pub fn parse(tag: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.tag() == tag)
    }

    /// The message id of the language's own name, for the switch.
    pub fn name_id(self) -> &'static str {
        match self {
            Lang::PtBr => msg("lang-name-pt-BR"),
            Lang::En => msg("lang-name-en"),
        }
    }

    fn langid(self) -> LanguageIdentifier {
        self.tag().parse().unwrap_or_default()
    }

    /// The first language of an `Accept-Language` header that we speak, or pt-BR.
    pub fn from_accept_language(header: &str) -> Lang {
        let requested = fluent_langneg::accepted_languages::parse(header);
        let available: Vec<LanguageIdentifier> = Lang::ALL.iter().map(|l| l.langid()).collect();
        let default = Lang::DEFAULT.langid();
        let chosen = fluent_langneg::negotiate_languages(
            &requested,
            &available,
            Some(&default),
            fluent_langneg::NegotiationStrategy::Lookup,
        );
        chosen.first().and_then(|id| Lang::ALL.into_iter().find(|l| &l.langid() == *id)).unwrap_or(Lang::DEFAULT)
    }

    /// The language of a request: the switch's cookie, else `Accept-Language`, else pt-BR.
    pub fn of_request(headers: &HeaderMap) -> Lang {
        let jar = axum_extra::extract::CookieJar::from_headers(headers);
        if let Some(lang) = jar.get(LANG_COOKIE).and_then(|c| Lang::parse(c.value())) {
            return lang;
        }
        let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        Lang::from_accept_language(accept)
    }

    fn index(self) -> usize {
        match self {
            Lang::PtBr => 0,
            Lang::En => 1,
        }
    }
}

/// The message files, compiled in: language, file name (for errors and tests), Fluent source.
/// A new file is added here for every language.
pub const SOURCES: &[(Lang, &str, &str)] = &[
    (Lang::PtBr, "pages.ftl", include_str!("../../locales/pt-BR/pages.ftl")),
    (Lang::PtBr, "errors.ftl", include_str!("../../locales/pt-BR/errors.ftl")),
    (Lang::En, "pages.ftl", include_str!("../../locales/en/pages.ftl")),
    (Lang::En, "errors.ftl", include_str!("../../locales/en/errors.ftl")),
];

type Bundle = FluentBundle<FluentResource>;

/// One bundle per language, in [`Lang::index`] order, built on first use. A file that does not
/// parse whole keeps the messages that did (the unit tests refuse such a file before it ships).
static BUNDLES: LazyLock<Vec<Bundle>> = LazyLock::new(|| {
    Lang::ALL
        .into_iter()
        .map(|lang| {
            let mut bundle = FluentBundle::new_concurrent(vec![lang.langid()]);
            // No Unicode isolation marks around placeables: the pages are left-to-right text,
            // and the marks would hide inside copied names and amounts.
            bundle.set_use_isolating(false);
            for (_, file, source) in SOURCES.iter().filter(|(l, _, _)| *l == lang) {
                let resource = FluentResource::try_new(source.to_string()).unwrap_or_else(|(partial, errors)| {
                    tracing::error!(lang = lang.tag(), file, ?errors, "message file does not parse");
                    partial
                });
                if let Err(errors) = bundle.add_resource(resource) {
                    tracing::error!(lang = lang.tag(), file, ?errors, "message file repeats an id");
                }
            }
            bundle
        })
        .collect()
});

fn bundle(lang: Lang) -> Option<&'static Bundle> {
    BUNDLES.get(lang.index())
}

/// Message `id` in `lang` with `args`; a missing message is logged and shown as its id.
pub fn format(lang: Lang, id: &str, args: Option<&FluentArgs>) -> String {
    let Some(pattern) = bundle(lang).and_then(|b| b.get_message(id)).and_then(|m| m.value()) else {
        tracing::error!(lang = lang.tag(), id, "message id missing");
        return id.to_string();
    };
    let mut errors = Vec::new();
    let text = bundle(lang).map(|b| b.format_pattern(pattern, args, &mut errors)).unwrap_or(Cow::Borrowed(id));
    if !errors.is_empty() {
        tracing::error!(lang = lang.tag(), id, ?errors, "message formatted with errors");
    }
    text.into_owned()
}

/// Marks a message id chosen by code rather than passed straight to a `t` call (a match arm,
/// a table), so the test that every used id exists finds it.
pub const fn msg(id: &'static str) -> &'static str {
    id
}

/// A translator for one request: the language, and the page the language switch returns to.
#[derive(Debug, Clone)]
pub struct Tr {
    pub lang: Lang,
    /// The path (and query) to come back to after switching language: always a local path.
    pub here: String,
}

impl Tr {
    pub fn new(lang: Lang) -> Tr {
        Tr { lang, here: "/".into() }
    }

    /// Message `id`, which takes no variables.
    pub fn t(&self, id: &str) -> String {
        format(self.lang, id, None)
    }

    /// Message `id` with one variable.
    pub fn t1<'a>(&self, id: &str, name: &'a str, value: impl Into<FluentValue<'a>>) -> String {
        let mut args = FluentArgs::new();
        args.set(name, value);
        format(self.lang, id, Some(&args))
    }

    /// Message `id` with two variables.
    pub fn t2<'a>(
        &self,
        id: &str,
        (n1, v1): (&'a str, impl Into<FluentValue<'a>>),
        (n2, v2): (&'a str, impl Into<FluentValue<'a>>),
    ) -> String {
        let mut args = FluentArgs::new();
        args.set(n1, v1);
        args.set(n2, v2);
        format(self.lang, id, Some(&args))
    }

    /// Message `id` with three variables.
    pub fn t3<'a>(
        &self,
        id: &str,
        (n1, v1): (&'a str, impl Into<FluentValue<'a>>),
        (n2, v2): (&'a str, impl Into<FluentValue<'a>>),
        (n3, v3): (&'a str, impl Into<FluentValue<'a>>),
    ) -> String {
        let mut args = FluentArgs::new();
        args.set(n1, v1);
        args.set(n2, v2);
        args.set(n3, v3);
        format(self.lang, id, Some(&args))
    }
}

/// Brasília's time zone, from the database compiled into the binary (the same on a machine
/// without /usr/share/zoneinfo). Brazil has had no daylight saving time since 2019, but the real
/// zone shows older entries with the offset they had.
static SAO_PAULO: LazyLock<jiff::tz::TimeZone> = LazyLock::new(|| {
    jiff::tz::TimeZone::get("America/Sao_Paulo").unwrap_or_else(|e| {
        tracing::error!(error = %e, "America/Sao_Paulo is not in the time-zone database; using UTC-3");
        jiff::tz::TimeZone::fixed(jiff::tz::offset(-3))
    })
});

/// A moment as a customer reads it, in Brasília time, to the second: `04/12/2026 15:20:07` in
/// Portuguese, `Dec 4, 2026 15:20:07` in English.
pub fn when(lang: Lang, at: bank_core::ids::TimestampMs) -> String {
    let Ok(instant) = jiff::Timestamp::from_millisecond(at.0) else { return String::new() };
    let local = instant.to_zoned_datetime(SAO_PAULO.clone());
    match lang {
        Lang::PtBr => local.strftime("%d/%m/%Y %H:%M:%S").to_string(),
        Lang::En => local.strftime("%b %-d, %Y %H:%M:%S").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use fluent_syntax::ast;

    use super::*;

    /// Each language's messages and the variables each one uses.
    fn messages(lang: Lang) -> BTreeMap<String, BTreeSet<String>> {
        let mut out = BTreeMap::new();
        for (_, file, source) in SOURCES.iter().filter(|(l, _, _)| *l == lang) {
            let resource = fluent_syntax::parser::parse(*source)
                .unwrap_or_else(|(_, errors)| panic!("{}/{file} does not parse: {errors:?}", lang.tag()));
            for entry in resource.body {
                if let ast::Entry::Message(message) = entry {
                    let mut variables = BTreeSet::new();
                    if let Some(pattern) = &message.value {
                        pattern_variables(pattern, &mut variables);
                    }
                    let id = message.id.name.to_string();
                    assert!(out.insert(id.clone(), variables).is_none(), "{}: {id} twice", lang.tag());
                }
            }
        }
        out
    }

    fn pattern_variables(pattern: &ast::Pattern<&str>, out: &mut BTreeSet<String>) {
        for element in &pattern.elements {
            if let ast::PatternElement::Placeable { expression } = element {
                expression_variables(expression, out);
            }
        }
    }

    fn expression_variables(expression: &ast::Expression<&str>, out: &mut BTreeSet<String>) {
        match expression {
            ast::Expression::Select { selector, variants } => {
                inline_variables(selector, out);
                for variant in variants {
                    pattern_variables(&variant.value, out);
                }
            }
            ast::Expression::Inline(inline) => inline_variables(inline, out),
        }
    }

    fn inline_variables(inline: &ast::InlineExpression<&str>, out: &mut BTreeSet<String>) {
        match inline {
            ast::InlineExpression::VariableReference { id } => {
                out.insert(id.name.to_string());
            }
            ast::InlineExpression::Placeable { expression } => expression_variables(expression, out),
            _ => {}
        }
    }

    #[test]
    fn every_message_exists_in_every_language_with_the_same_variables() {
        let reference = messages(Lang::DEFAULT);
        assert!(reference.len() > 100, "the pages' messages are there");
        for lang in Lang::ALL {
            let other = messages(lang);
            let missing: Vec<_> = reference.keys().filter(|id| !other.contains_key(*id)).collect();
            let extra: Vec<_> = other.keys().filter(|id| !reference.contains_key(*id)).collect();
            assert!(missing.is_empty() && extra.is_empty(), "{}: missing {missing:?}, extra {extra:?}", lang.tag());
            for (id, variables) in &reference {
                assert_eq!(&other[id], variables, "{}: {id} takes other variables", lang.tag());
            }
        }
    }

    /// Ids as the templates and the web code name them: the literal first argument of
    /// `t(`, `t1(`, `t2(`, `t3(` and of the [`msg`] marker.
    fn ids_used_in(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for call in ["t(\"", "t1(\"", "t2(\"", "t3(\"", "msg(\""] {
            let mut rest = text;
            while let Some(at) = rest.find(call) {
                let before = rest[..at].chars().next_back();
                rest = &rest[at + call.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue; // `format(` and the like
                }
                let id: String = rest.chars().take_while(|&c| c != '"').collect();
                if id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && id.starts_with(|c: char| c.is_ascii_lowercase())
                {
                    out.push(id);
                }
            }
        }
        out
    }

    fn files_in(dir: &str) -> Vec<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("dir entry").path();
            let name = path.display().to_string();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            // Tests name ids that do not exist on purpose.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default().to_string();
            out.push((name, code));
        }
        out
    }

    #[test]
    fn every_id_the_templates_and_the_web_code_use_exists() {
        let known = messages(Lang::DEFAULT);
        let mut used = 0;
        for (file, text) in files_in("templates").into_iter().chain(files_in("src/web")) {
            for id in ids_used_in(&text) {
                used += 1;
                assert!(known.contains_key(&id), "{file} uses {id:?}, which no message file has");
            }
        }
        assert!(used > 150, "the scan finds the ids ({used})");
    }

    #[test]
    fn the_scan_finds_ids_in_calls_and_markers_only() {
        let found =
            ids_used_in(r#"{{ shell.t("nav-pix") }} tr.t1("a-b", "n", 1) msg("x-y") format("not-an-id") t("Not")"#);
        assert_eq!(found, ["nav-pix", "a-b", "x-y"]);
    }

    #[test]
    fn the_language_is_portuguese_unless_the_browser_prefers_english() {
        for (header, lang) in [
            ("", Lang::PtBr),
            ("*", Lang::PtBr),
            ("de-DE, fr;q=0.8", Lang::PtBr),
            ("pt-BR,pt;q=0.9,en;q=0.8", Lang::PtBr),
            ("pt-PT", Lang::PtBr),
            ("pt", Lang::PtBr),
            ("en-US,en;q=0.9", Lang::En),
            ("en", Lang::En),
            ("fr, en-GB;q=0.5", Lang::En),
            ("es, pt;q=0.7, en;q=0.5", Lang::PtBr),
        ] {
            assert_eq!(Lang::from_accept_language(header), lang, "{header:?}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_LANGUAGE, "en-US".parse().expect("header"));
        assert_eq!(Lang::of_request(&headers), Lang::En);
        headers.insert(header::COOKIE, "bank1_session=x; lang=pt-BR".parse().expect("header"));
        assert_eq!(Lang::of_request(&headers), Lang::PtBr, "the switch's cookie wins");
        headers.insert(header::COOKIE, "lang=xx".parse().expect("header"));
        assert_eq!(Lang::of_request(&headers), Lang::En, "an unknown cookie value is ignored");
    }

    #[test]
    fn plurals_follow_each_language() {
        let (pt, en) = (Tr::new(Lang::PtBr), Tr::new(Lang::En));
        assert_eq!(en.t1("transfer-legs", "count", 1), "One leg");
        assert_eq!(en.t1("transfer-legs", "count", 3), "3 legs");
        assert_eq!(pt.t1("transfer-legs", "count", 1), "Uma parte");
        assert_eq!(pt.t1("transfer-legs", "count", 2), "2 partes");
        assert!(pt.t1("err-sign-ins", "seconds", 30).contains("30 segundos"));
        assert!(en.t1("err-sign-ins", "seconds", 1).contains("one second"));
        assert_eq!(pt.t1("statement-shown", "count", 0), "Nenhum lançamento nesta página.");
    }

    #[test]
    fn a_missing_id_shows_itself_and_arguments_are_not_isolated() {
        let en = Tr::new(Lang::En);
        assert_eq!(en.t("no-such-message"), "no-such-message");
        assert_eq!(en.t1("dashboard-hello", "name", "Ana"), "Hello, Ana", "no U+2068/U+2069 around Ana");
    }

    #[test]
    fn times_are_brasilia_time() {
        // 2026-12-04 18:20:07 UTC is 15:20:07 in Brasília (UTC-3, no daylight saving).
        let at = bank_core::ids::TimestampMs(1_796_408_407_000);
        assert_eq!(when(Lang::PtBr, at), "04/12/2026 15:20:07");
        assert_eq!(when(Lang::En, at), "Dec 4, 2026 15:20:07");
        // January 2018 was daylight saving time in Brasília (UTC-2): the real zone knows it.
        let summer_2018 = bank_core::ids::TimestampMs(1_515_000_000_000);
        assert_eq!(when(Lang::PtBr, summer_2018), "03/01/2018 15:20:00");
    }
}
