//! Headless Chromium driven through chromedriver (WebDriver), for the browser tests: our pages
//! (`crates/cli/tests/e2e_web.rs`) and the original project's interface (`seed_ui.rs`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};

use crate::up::KillOnDrop;

/// Where Debian's `chromium-driver` and `chromium` packages put them (`.ci/run` installs both).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How the browser looks to the pages.
#[derive(Debug, Clone, Copy)]
pub struct Look<'a> {
    pub width: u32,
    pub height: u32,
    /// The language the browser asks for (`Accept-Language` and its own UI), or its default.
    pub language: Option<&'a str>,
}

/// A chromedriver process (killed on drop) and a headless Chromium session in it.
#[derive(Debug)]
pub struct Browser {
    pub client: Client,
    _driver: KillOnDrop,
}

impl Browser {
    /// Whether chromedriver is installed here.
    pub fn installed() -> bool {
        Path::new(CHROMEDRIVER).exists()
    }

    /// Starts chromedriver on a free port and opens a session of headless Chromium whose
    /// profile lives in `profile` (a fresh directory: no state from other runs).
    pub async fn start(profile: &Path, look: Look<'_>) -> Browser {
        let port = crate::ports::one();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let driver = KillOnDrop(driver);
        let url = format!("http://127.0.0.1:{port}");
        let http = crate::http::client(Some(Duration::from_secs(5)));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(http.get(format!("{url}/status")).send().await, Ok(r) if r.status().is_success()) {
            assert!(Instant::now() < deadline, "chromedriver did not answer on {url}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--disable-dev-shm-usage".into(),
            format!("--window-size={},{}", look.width, look.height),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut options = serde_json::json!({ "binary": CHROMIUM });
        if let Some(language) = look.language {
            args.push(format!("--lang={language}"));
            options["prefs"] = serde_json::json!({ "intl.accept_languages": language });
        }
        options["args"] = serde_json::json!(args);
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::rustls().expect("rustls").capabilities(caps).connect(&url).await.expect("session");
        Browser { client, _driver: driver }
    }
}
