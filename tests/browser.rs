//! Browser tests: the dashboard in headless Chromium against the embedded `tickwire` binary.
//!
//! This starts the binary on free ports with a prepared users file (an admin and a viewer)
//! and runs `tests/browser/dashboard.mjs` (playwright-core) against it: login, live
//! scanners, a dropped socket reconnecting, the WDS token renewed on the open socket,
//! ticker linking into quote/daily range/chart (candles and volume with history, a live bar
//! on the last candle, another interval), dragging a widget to move and resize it, a
//! scanner's filters, a watchlist and an alert notification, the saved layout, the
//! operations page,
//! logout, the viewer's limits, the viewer changing their password, and that change ending
//! the viewer's other browser at once (its socket told `token_revoked`). Screenshots go to
//! `target/screenshots/`; with `TW_DOC_SCREENSHOTS=1` the dashboard's and the operations
//! page's also replace `docs/screenshots/` (the README shows them).
//! `scripts/test.sh` installs Chromium and playwright-core; missing ones fail the test with
//! the command to install them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{free_port, temp_dir, wait_until_async, Proc};

const ADMIN_PASSWORD: &str = "browser-admin-pw";
const VIEWER_PASSWORD: &str = "browser-viewer-pw";

fn chromium() -> PathBuf {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&path).exists(),
        "Chromium not found at {path}: install it (apt-get install chromium), set CHROMIUM, \
         or run scripts/test.sh, which installs it"
    );
    PathBuf::from(path)
}

#[actix_web::test]
async fn dashboard_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser_dir = root.join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser` (scripts/test.sh does)"
    );
    let chromium = chromium();

    let data = temp_dir("browser");
    let (mut users, _) =
        tickwire::scp::users::Users::open(&data.join("users.json"), "admin", ADMIN_PASSWORD)
            .expect("users file");
    users
        .add("viewer", VIEWER_PASSWORD, "viewer")
        .expect("viewer");
    drop(users);

    let (http, sim) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_tickwire"))
        .env("TICKWIRE_PORT", http.to_string())
        .env("SERVER_PORT", sim.to_string())
        .env("SERVER_IP", "127.0.0.1")
        .env("SCP_DATA_DIR", &data)
        .env("SIM_TICKERS", "120")
        // Short WDS tokens, so that the in-band renewal is exercised within the test.
        .env("SCP_TOKEN_TTL_SECS", "15")
        .env("LOG_LEVEL", "warn")
        .spawn()
        .expect("start tickwire");
    let _proc = Proc(child);
    let url = format!("http://127.0.0.1:{http}");
    wait_until_async("tickwire answers /stats", || async move {
        common::try_stats(http).await.is_some()
    })
    .await;

    let shots = root.join("target/screenshots");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("dashboard.mjs")
            .current_dir(&browser_dir)
            .env("TW_URL", &url)
            .env("TW_ADMIN_USER", "admin")
            .env("TW_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("TW_VIEWER_USER", "viewer")
            .env("TW_VIEWER_PASSWORD", VIEWER_PASSWORD)
            .env("TW_SHOTS", &shots)
            .env("CHROMIUM", &chromium)
            .output()
    })
    .await
    .expect("join")
    .expect("node runs (install Node.js)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "browser test failed (screenshots in target/screenshots/):\n{stdout}\n{stderr}"
    );
    // `TW_DOC_SCREENSHOTS=1`: the dashboard and operations shots become the docs' (README).
    if std::env::var_os("TW_DOC_SCREENSHOTS").is_some() {
        let docs = root.join("docs/screenshots");
        std::fs::create_dir_all(&docs).expect("docs/screenshots");
        for (from, to) in [
            ("02-dashboard.png", "dashboard.png"),
            ("03-operations.png", "operations.png"),
        ] {
            std::fs::copy(root.join("target/screenshots").join(from), docs.join(to))
                .expect("copy a screenshot into docs/");
        }
    }
    let _ = std::fs::remove_dir_all(&data);
}
