//! The web dashboard in a real browser: headless Chromium driven through chromedriver (WebDriver,
//! with fantoccini) against real processes — a Hive metastore holding the fixture tables, two
//! redis-server edges, a `tablecast edge serve` lookup service and `tablecast serve`.
//!
//! An analyst signs in with a token, browses to `social.referrals`, defines
//! `top_products_by_network` in the form (a wrong column first: the error shows next to the
//! field, then is fixed), plans, publishes and watches the progress reach "committed", and looks
//! up the facebook top 10 in the try-it box, which must equal the golden answer. Every page is
//! saved as a screenshot under `<target>/browser-artifacts` (or `$TABLECAST_ARTIFACTS`), and any
//! browser console error (uncaught exceptions, console.error, CSP violations, failed loads)
//! fails the test.
//!
//! Needs Debian's `chromium` and `chromium-driver` (scripts/test installs them). Without them
//! the test fails, unless `TABLECAST_SKIP_BROWSER=1`, when it says so and skips.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tablecast_e2e::{
    ChildProcess, Metastore, Redis, free_port, generate_fixtures, load_fixtures, loopback,
    tablecast_command,
};

const ADMIN_TOKEN: &str = "browser-test-admin-token-0123456789";
const API: &str = "top_products_by_network";
const WAIT: Duration = Duration::from_secs(30);

/// A program from `$var`, else the first of `names` on `PATH`.
fn find_program(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// `$TABLECAST_ARTIFACTS`, else `<target>/browser-artifacts` next to this test binary's profile.
fn artifacts_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TABLECAST_ARTIFACTS") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("locating the test binary");
    // <target>/<profile>/deps/browser-… → <target>
    exe.ancestors()
        .nth(3)
        .map(|target| target.join("browser-artifacts"))
        .unwrap_or_else(|| std::env::temp_dir().join("tablecast-browser-artifacts"))
}

/// chromedriver's log endpoint: the browser's console and network errors since the last call.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// Everything the page runs against, stopped on drop.
struct Stack {
    _dir: tempfile::TempDir,
    _edges: Vec<Redis>,
    lookup: ChildProcess,
    /// The lookup service's base URL.
    lookup_base: String,
    dashboard: ChildProcess,
    base: String,
}

impl Stack {
    fn start(metastore: &Metastore) -> Result<Stack> {
        let dir = tempfile::Builder::new()
            .prefix("tablecast-browser-")
            .tempdir()?;
        let warehouse = dir.path().join("warehouse");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state)?;

        generate_fixtures(&warehouse);
        load_fixtures(metastore, &warehouse);

        let edges = vec![Redis::try_start(&[])?, Redis::try_start(&[])?];
        let lookup_port = free_port();
        let mut command = tablecast_command();
        command
            .env("TABLECAST_STATE_DIR", &state)
            .env("TABLECAST_LOOKUP__MEMORY_SAMPLE_MS", "1000")
            .args([
                "edge",
                "serve",
                "--redis",
                &edges[0].url(),
                "--listen",
                &format!("127.0.0.1:{lookup_port}"),
            ]);
        let mut lookup =
            ChildProcess::spawn("lookup service", command, &dir.path().join("lookup.log"))?;
        lookup.wait_for_port(loopback(lookup_port), WAIT)?;

        let port = free_port();
        let config = dir.path().join("tablecast.toml");
        let edge_urls: Vec<String> = edges.iter().map(Redis::url).collect();
        std::fs::write(
            &config,
            format!(
                "state_dir = {state}\n\n[dashboard]\nlisten = \"127.0.0.1:{port}\"\n\
                 runners = 2\npreview_rows = 12\n\n[[dashboard.catalogs]]\nname = \"hive\"\n\
                 uri = {uri}\n\n[dashboard.edge_groups]\ndefault = {edges}\n\n\
                 [dashboard.lookup_base_urls]\ndefault = \"http://127.0.0.1:{lookup_port}\"\n\n\
                 [dashboard.traffic]\nscrape_ms = 500\n",
                state = json!(state.to_str().context("state path")?),
                uri = json!(metastore.uri()),
                edges = json!(edge_urls),
            ),
        )?;
        let mut command = tablecast_command();
        command
            .env("TABLECAST_ADMIN_TOKEN", ADMIN_TOKEN)
            .arg("--config")
            .arg(&config)
            .arg("serve");
        let mut dashboard = ChildProcess::spawn(
            "tablecast serve",
            command,
            &dir.path().join("dashboard.log"),
        )?;
        dashboard.wait_for_port(loopback(port), WAIT)?;
        Ok(Stack {
            _dir: dir,
            _edges: edges,
            lookup,
            lookup_base: format!("http://127.0.0.1:{lookup_port}"),
            dashboard,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    fn logs(&self) -> String {
        format!(
            "── tablecast serve log:\n{}\n── lookup service log:\n{}",
            self.dashboard.log_tail(40),
            self.lookup.log_tail(15)
        )
    }
}

/// A WebDriver session on headless Chromium, with helpers that wait for what they need.
struct Browser {
    client: Client,
    artifacts: PathBuf,
    shots: usize,
    console: Vec<Value>,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(chromium: &Path, driver_url: &str, artifacts: PathBuf) -> Result<Browser> {
        let profile = tempfile::Builder::new()
            .prefix("tablecast-chromium-")
            .tempdir()?;
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-extensions".into(),
            "--hide-scrollbars".into(),
            "--force-color-profile=srgb".into(),
            "--lang=en-US".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(driver_url)
            .await
            .with_context(|| format!("starting a Chromium session through {driver_url}"))?;
        Ok(Browser {
            client,
            artifacts,
            shots: 0,
            console: Vec::new(),
            _profile: profile,
        })
    }

    /// Reads the browser log; keeps entries at SEVERE level (errors) for the final check.
    async fn collect_console(&mut self) -> Result<()> {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .context("reading the browser log (goog:loggingPrefs)")?;
        for e in entries.as_array().into_iter().flatten() {
            if e["level"] == "SEVERE" {
                self.console.push(e.clone());
            }
        }
        Ok(())
    }

    /// Saves a screenshot of the whole page (the window is stretched to the page's height for
    /// it, then restored) as `NN-name.png`.
    async fn shot(&mut self, name: &str) -> Result<PathBuf> {
        let (width, height) = self.client.get_window_size().await?;
        let sizes = self
            .eval("return [window.outerHeight - window.innerHeight, document.documentElement.scrollHeight]")
            .await?;
        let chrome = sizes[0].as_u64().unwrap_or(0);
        let page = sizes[1].as_u64().unwrap_or(height);
        let full = (chrome + page).clamp(height, 6000);
        self.client
            .set_window_size(width as u32, full as u32)
            .await?;
        let taken = self
            .client
            .screenshot()
            .await
            .context("taking a screenshot");
        self.client
            .set_window_size(width as u32, height as u32)
            .await?;
        self.save(name, taken?).await
    }

    /// Saves what the window shows, scrolled to the top, at `width`×`height` (the window).
    async fn shot_window(&mut self, name: &str, width: u32, height: u32) -> Result<PathBuf> {
        let (w, h) = self.client.get_window_size().await?;
        self.client.set_window_size(width, height).await?;
        self.eval("window.scrollTo(0, 0)").await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let taken = self
            .client
            .screenshot()
            .await
            .context("taking a screenshot");
        self.client.set_window_size(w as u32, h as u32).await?;
        self.save(name, taken?).await
    }

    /// Saves a screenshot of one element, scrolled into view.
    async fn shot_element(&mut self, name: &str, css: &str) -> Result<PathBuf> {
        let element = self.find(css).await?;
        self.js(
            "arguments[0].scrollIntoView({block: 'start'})",
            vec![serde_json::to_value(&element)?],
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let png = element
            .screenshot()
            .await
            .with_context(|| format!("screenshot of {css}"))?;
        self.save(name, png).await
    }

    async fn save(&mut self, name: &str, png: Vec<u8>) -> Result<PathBuf> {
        self.shots += 1;
        let path = self.artifacts.join(format!("{:02}-{name}.png", self.shots));
        std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
        self.collect_console().await?;
        Ok(path)
    }

    async fn js(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.client
            .execute(script, args)
            .await
            .with_context(|| format!("running {script}"))
    }

    /// Runs `script` (JavaScript, no arguments); returns what it returns.
    async fn eval(&self, script: &str) -> Result<Value> {
        self.js(script, vec![]).await
    }

    /// Waits until `expression` (JavaScript) is truthy; returns its value.
    async fn until(&self, what: &str, timeout: Duration, expression: &str) -> Result<Value> {
        let started = Instant::now();
        let script = format!("try {{ return ({expression}); }} catch (e) {{ return null; }}");
        loop {
            let v = self.js(&script, vec![]).await?;
            let truthy =
                !matches!(&v, Value::Null | Value::Bool(false)) && v != json!("") && v != json!(0);
            if truthy {
                return Ok(v);
            }
            if started.elapsed() > timeout {
                bail!(
                    "waited {} s for {what} ({expression}); the page says: {}",
                    timeout.as_secs(),
                    self.main_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until an element matches `css`.
    async fn wait_for(&self, what: &str, css: &str) -> Result<()> {
        self.until(
            what,
            WAIT,
            &format!("document.querySelector({})", json!(css)),
        )
        .await?;
        Ok(())
    }

    /// Waits (up to `timeout`) until the progress panel `progress` shows a final phase
    /// (committed, failed or cancelled); returns it.
    async fn final_phase(&self, what: &str, timeout: Duration, progress: &str) -> Result<Value> {
        let phase = format!("document.querySelector({}).dataset.phase", json!(progress));
        let finished = format!("['committed', 'failed', 'cancelled'].includes({phase}) && {phase}");
        self.until(what, timeout, &finished).await
    }

    async fn main_text(&self) -> String {
        self.eval(
            "const m = document.querySelector('main'); return m ? m.innerText.slice(0, 1500) : ''",
        )
        .await
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
    }

    async fn find(&self, css: &str) -> Result<fantoccini::elements::Element> {
        match self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(el) => Ok(el),
            Err(e) => Err(anyhow!(e).context(format!(
                "no `{css}` on the page: {}",
                self.main_text().await
            ))),
        }
    }

    async fn click(&self, css: &str) -> Result<()> {
        let el = self.find(css).await?;
        self.js(
            "arguments[0].scrollIntoView({block: 'center'})",
            vec![serde_json::to_value(&el)?],
        )
        .await?;
        el.click()
            .await
            .with_context(|| format!("clicking `{css}`"))?;
        Ok(())
    }

    async fn fill(&self, css: &str, text: &str) -> Result<()> {
        let el = self.find(css).await?;
        el.clear()
            .await
            .with_context(|| format!("clearing `{css}`"))?;
        el.send_keys(text)
            .await
            .with_context(|| format!("typing into `{css}`"))?;
        // Close the suggestions a datalist may have opened, which would swallow the next click.
        el.send_keys(&fantoccini::key::Key::Escape.to_string())
            .await
            .with_context(|| format!("pressing Escape in `{css}`"))?;
        Ok(())
    }

    async fn sign_in(&self, token: &str) -> Result<()> {
        self.fill("#login-token", token).await?;
        self.click("#login-submit").await
    }

    /// Creates a token named `name` in the token form `form` (its `#{form}-name` field and
    /// `#{form}-create` button); checks that the secret shown once starts with `prefix` and
    /// waits for the token in the list (`#{form}s`); returns the secret.
    async fn create_token(&self, form: &str, name: &str, prefix: &str) -> Result<String> {
        self.fill(&format!("#{form}-name"), name).await?;
        self.click(&format!("#{form}-create")).await?;
        let secret = self.text("#new-token-secret").await?;
        ensure!(secret.starts_with(prefix), "{form} {secret:?}");
        self.wait_for(
            &format!("the token in #{form}s"),
            &format!("#{form}s tbody tr"),
        )
        .await?;
        Ok(secret)
    }

    /// Types a one-column key into the try-it box, sends it, and waits for the answer's status.
    async fn try_key(&self, key: &str, status: u16) -> Result<()> {
        self.fill("#try-key-0", key).await?;
        self.click("#try-send").await?;
        self.wait_for(
            &format!("the {status} answer for {key:?}"),
            &format!("#try-status[data-status=\"{status}\"]"),
        )
        .await
    }

    async fn select(&self, css: &str, value: &str) -> Result<()> {
        self.find(css)
            .await?
            .select_by_value(value)
            .await
            .with_context(|| format!("choosing {value} in `{css}`"))
    }

    /// The text content of an element (waits for it).
    async fn text(&self, css: &str) -> Result<String> {
        let el = self.find(css).await?;
        let v = self
            .js(
                "return arguments[0].textContent",
                vec![serde_json::to_value(&el)?],
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }
}

/// The golden value of `key` for the API (fixtures/golden, computed independently with DuckDB).
fn golden(key: &Value) -> Result<Value> {
    let key = key.to_string();
    let (_, value) = tablecast_e2e::golden(API)
        .into_iter()
        .find(|(k, _)| *k == key)
        .ok_or_else(|| anyhow!("no golden entry for {key} in {API}"))?;
    Ok(serde_json::from_str(&value)?)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_analyst_defines_plans_publishes_and_tries_an_api_in_the_browser() {
    let chromium = find_program(
        "TABLECAST_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let driver = find_program("TABLECAST_CHROMEDRIVER", &["chromedriver"]);
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        if std::env::var("TABLECAST_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!(
                "SKIPPED: the browser test needs chromium and chromedriver (Debian packages \
                 `chromium` and `chromium-driver`), and TABLECAST_SKIP_BROWSER=1 says to skip \
                 without them"
            );
            return;
        }
        panic!(
            "the browser test needs chromium and chromedriver: install Debian's `chromium` and \
             `chromium-driver` (scripts/test does), point TABLECAST_CHROMIUM / \
             TABLECAST_CHROMEDRIVER at them, or set TABLECAST_SKIP_BROWSER=1 to skip this test"
        );
    };

    let artifacts = artifacts_dir();
    std::fs::create_dir_all(&artifacts).expect("creating the artifacts folder");
    for entry in std::fs::read_dir(&artifacts)
        .expect("listing artifacts")
        .flatten()
    {
        if entry.path().extension().is_some_and(|e| e == "png") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    eprintln!(
        "browser test artifacts (screenshots): {}",
        artifacts.display()
    );

    let started = Instant::now();
    let stack = Stack::start(Metastore::shared()).unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!(
        "stack up in {:.1} s: dashboard {}",
        started.elapsed().as_secs_f64(),
        stack.base
    );

    let driver_port = free_port();
    let mut command = Command::new(&driver);
    command.arg(format!("--port={driver_port}"));
    let mut chromedriver =
        ChildProcess::spawn("chromedriver", command, &artifacts.join("chromedriver.log"))
            .expect("starting chromedriver");
    chromedriver
        .wait_for_port(loopback(driver_port), WAIT)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let mut browser = Browser::start(
        &chromium,
        &format!("http://127.0.0.1:{driver_port}"),
        artifacts.clone(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));

    let outcome = walk_through(&mut browser, &stack).await;
    if outcome.is_err() {
        let _ = browser.shot("failure").await;
    }
    let _ = browser.collect_console().await;
    let console = std::mem::take(&mut browser.console);
    let _ = browser.client.close().await;
    chromedriver.terminate(Duration::from_secs(5));

    if let Err(e) = outcome {
        panic!(
            "{e:#}\nscreenshots in {}\nbrowser console errors: {console:#?}\n{}",
            artifacts.display(),
            stack.logs()
        );
    }
    assert!(
        console.is_empty(),
        "the browser logged errors (screenshots in {}):\n{console:#?}",
        artifacts.display()
    );
    eprintln!(
        "browser walk-through passed in {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        artifacts.display()
    );
}

async fn walk_through(b: &mut Browser, stack: &Stack) -> Result<()> {
    // Sign in.
    b.client.goto(&stack.base).await?;
    b.find("#login-token").await?;
    b.shot("login").await?;
    b.sign_in(ADMIN_TOKEN).await?;
    b.find("#db-tree").await?;
    ensure!(
        b.text("#whoami").await?.contains("admin"),
        "the top bar does not show who is signed in"
    );

    // Browse to social.referrals: schema, statistics, partitions, preview.
    b.click("[data-test='db-social']").await?;
    b.click("[data-test='table-social.referrals']").await?;
    b.until(
        "the table's preview",
        WAIT,
        "document.querySelectorAll('#preview-table tbody tr').length",
    )
    .await?;
    ensure!(b.text("#page-title").await? == "social.referrals");
    let columns = b
        .eval("return [...document.querySelectorAll('#schema-table tbody tr')].map(r => r.dataset.column)")
        .await?;
    for c in ["network", "product_id", "product_name", "referrals"] {
        ensure!(
            columns.as_array().is_some_and(|a| a.contains(&json!(c))),
            "column {c} missing from the schema table: {columns}"
        );
    }
    ensure!(
        b.text("[data-test='stat-rows'] .value").await? != "—",
        "no row count"
    );
    b.shot("table").await?;

    // Define the API in the form, with a wrong column first.
    b.click("#new-api-from-table").await?;
    b.find("#api-form").await?;
    let table = b
        .eval("return document.querySelector('#f-table').value")
        .await?;
    ensure!(
        table == json!("social.referrals"),
        "table not prefilled: {table}"
    );
    b.until(
        "the table's columns",
        WAIT,
        "document.querySelectorAll('#columns-table tr').length",
    )
    .await?;
    b.fill("#f-name", API).await?;
    b.fill("#f-key-0", "network").await?;
    b.fill("#f-values-0-column", "product_id").await?;
    b.click("#add-values").await?;
    b.fill("#f-values-1-column", "product_name").await?;
    b.click("#add-values").await?;
    b.select("#f-values-2-agg", "sum").await?;
    b.fill("#f-values-2-column", "referals").await?;
    b.fill("#f-values-2-as", "referrals").await?;
    b.click("#add-group_by").await?;
    b.fill("#f-group_by-0", "product_id").await?;
    b.click("#add-group_by").await?;
    b.fill("#f-group_by-1", "product_name").await?;
    b.click("#add-order_by").await?;
    b.fill("#f-order_by-0-field", "referrals").await?;
    b.select("#f-order_by-0-dir", "desc").await?;
    b.fill("#f-limit", "10").await?;

    let error = b
        .until(
            "the wrong column's error next to its field",
            WAIT,
            "document.querySelector('[data-error-for=\"values[2].column\"]').textContent",
        )
        .await?;
    ensure!(
        error
            .as_str()
            .is_some_and(|e| e.contains("unknown column `referals`")),
        "unexpected error text: {error}"
    );
    let invalid = b
        .eval("return document.querySelector('#f-values-2-column').getAttribute('aria-invalid')")
        .await?;
    ensure!(
        invalid == json!("true"),
        "the wrong field is not marked invalid: {invalid}"
    );
    b.find("[data-test='validation-problems']").await?;
    b.shot("validation-error").await?;

    b.fill("#f-values-2-column", "referrals").await?;
    b.wait_for("the form to be valid", "[data-test='validation-valid']")
        .await?;
    let leftover = b
        .eval("return document.querySelector('[data-error-for=\"values[2].column\"]').textContent")
        .await?;
    ensure!(
        leftover == json!(""),
        "the fixed field still shows an error: {leftover}"
    );

    // The spec the form shows is the fixture's spec, as TOML and as JSON.
    let fixture =
        publisher::spec::ApiSpec::from_path(&fixtures::specs_dir().join(format!("{API}.toml")))?;
    let toml_text = b.text("#spec-preview").await?;
    let from_toml = publisher::spec::ApiSpec::from_toml(&toml_text)
        .with_context(|| format!("the form's TOML does not parse:\n{toml_text}"))?;
    ensure!(
        from_toml == fixture,
        "the form's TOML differs from the fixture:\n{toml_text}"
    );
    b.click("#spec-preview-json").await?;
    let json_text = b.text("#spec-preview").await?;
    let from_json = publisher::spec::ApiSpec::from_json(&json_text)
        .with_context(|| format!("the form's JSON does not parse:\n{json_text}"))?;
    ensure!(
        from_json == fixture,
        "the form's JSON differs from the fixture:\n{json_text}"
    );
    b.shot("form-valid").await?;

    // Save, plan.
    b.click("#save-api").await?;
    b.find("#plan-button").await?;
    ensure!(b.text("#page-title").await? == API);
    b.click("#plan-button").await?;
    b.find("#guards-table").await?;
    let path = b
        .eval("return document.querySelector('#plan-verdict').dataset.path")
        .await?;
    ensure!(path == json!("fasttrack"), "planned path {path}");
    let guards = b
        .eval("return [...document.querySelectorAll('#guards-table tbody tr')].map(r => [r.dataset.guard, r.dataset.tripped])")
        .await?;
    let guards = guards.as_array().context("guard rows")?;
    for name in [
        "format",
        "row_count",
        "file_count",
        "total_bytes",
        "memory_pool",
    ] {
        ensure!(
            guards.contains(&json!([name, "false"])),
            "guard {name} missing or tripped: {guards:?}"
        );
    }
    b.shot("plan").await?;

    // Publish and follow the progress to the commit.
    b.click("#publish-button").await?;
    let phase = b
        .final_phase(
            "the publish to finish",
            Duration::from_secs(180),
            "#publish-progress",
        )
        .await?;
    let status = b.text("#publish-status").await?;
    ensure!(
        phase == json!("committed"),
        "the publish ended {phase}: {status}\n{}",
        b.text("#publish-error").await.unwrap_or_default()
    );
    ensure!(
        status.contains("Committed version 1"),
        "status says {status:?}"
    );
    let steps = b
        .eval("return [...document.querySelectorAll('#publish-steps li')].filter(l => l.className === 'done').map(l => l.dataset.step)")
        .await?;
    for step in ["plan", "guards", "engine", "push", "verify", "commit"] {
        ensure!(
            steps.as_array().is_some_and(|s| s.contains(&json!(step))),
            "step {step} not shown done: {steps}"
        );
    }
    b.wait_for("the serving version", "#serving-version")
        .await?;
    b.shot("published").await?;

    // The key URL rule, live in the try-it box.
    let lookup_base = format!("/v1/{API}/");
    for (typed, segment) in [
        ("a/b ~null", "a%2Fb%20%7Enull"),
        ("..", "~.."),
        ("日本", "%E6%97%A5%E6%9C%AC"),
        ("", "~empty"),
    ] {
        b.fill("#try-key-0", typed).await?;
        let url = b.text("#try-url").await?;
        ensure!(
            url.ends_with(&format!("{lookup_base}{segment}")),
            "{typed:?} gives {url}, expected …{lookup_base}{segment}"
        );
    }
    b.click("#try-null-0").await?;
    ensure!(
        b.text("#try-url")
            .await?
            .ends_with(&format!("{lookup_base}~null"))
    );
    b.click("#try-null-0").await?;

    // A key nobody has: the lookup's 404, shown as such.
    b.try_key("myspace", 404).await?;

    // The facebook top 10 equals the golden answer.
    b.try_key("facebook", 200).await?;
    let body = b.text("#try-body").await?;
    let answer: Value = serde_json::from_str(&body)
        .with_context(|| format!("the try-it body is not JSON: {body}"))?;
    let expected = golden(&json!(["facebook"]))?;
    ensure!(
        answer == expected,
        "facebook top 10 differs from the golden answer:\n got {answer}\nwant {expected}"
    );
    ensure!(
        answer.as_array().map(Vec::len) == Some(10),
        "not a top 10: {answer}"
    );
    let called = b.text("#try-called-url").await?;
    let shown = b.text("#try-url").await?;
    ensure!(
        called == shown,
        "the relay called {called}, the page shows {shown}"
    );
    ensure!(
        b.text("#try-version").await? == "v1",
        "the answer is not from version 1"
    );
    b.shot("try-it").await?;

    // The other pages: APIs, jobs, tokens.
    b.click("#nav-apis").await?;
    b.wait_for(
        "the API list's serving version",
        &format!("#apis-table tr[data-api=\"{API}\"] .pill.ok"),
    )
    .await?;
    b.shot("apis").await?;

    b.click("#nav-jobs").await?;
    b.wait_for("the jobs table", "#jobs-table .pill.succeeded")
        .await?;
    b.shot("jobs").await?;

    b.click("#nav-tokens").await?;
    let analyst = b.create_token("analyst-token", "ana", "tcu_").await?;
    b.shot("tokens").await?;

    // The published API's page, as the README shows it.
    b.client
        .goto(&format!("{}/#/apis/{API}", stack.base))
        .await?;
    b.wait_for("the serving version", "#serving-version")
        .await?;
    b.until(
        "the last publish replayed",
        WAIT,
        "document.querySelector('#publish-progress').dataset.phase === 'committed'",
    )
    .await?;
    b.try_key("facebook", 200).await?;
    b.shot("api-page").await?;
    // The README's picture of the dashboard (docs/dashboard.png is a copy of it).
    b.eval("document.querySelectorAll('.toast').forEach(t => t.remove())")
        .await?;
    let picture = b.shot_window("dashboard", 1280, 1180).await?;
    eprintln!("dashboard picture: {}", picture.display());

    // Traffic: lookups of known statuses at the lookup service show up in the API page's charts
    // (the dashboard scrapes the service every 500 ms here) and in the Traffic overview.
    let http = reqwest::Client::new();
    for i in 0..120 {
        let key = if i % 4 == 0 { "nobody" } else { "facebook" };
        http.get(format!("{}/v1/{API}/{key}", stack.lookup_base))
            .send()
            .await?;
        if i % 30 == 29 {
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
    }
    // The page reads the history when it loads: reload until the last round is in.
    let mut counted = false;
    for _ in 0..20 {
        b.client
            .goto(&format!("{}/#/apis/{API}", stack.base))
            .await?;
        b.client.refresh().await?;
        b.until(
            "the traffic charts",
            WAIT,
            "document.querySelectorAll('#traffic-charts canvas').length === 4",
        )
        .await?;
        // The try-it box's lookups earlier count too: at least these.
        let summary = b.text("#traffic-summary").await?;
        let numbers: Vec<u64> = summary
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        if numbers.len() >= 2 && numbers[0] >= 120 && numbers[1] >= 30 {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ensure!(
        counted,
        "the traffic summary never counted the 120 lookups (30 of them 404): {}",
        b.text("#traffic-summary").await?
    );
    b.wait_for(
        "each lookup service's view",
        "#traffic-lookups-table .pill.ok",
    )
    .await?;
    let traffic = b.shot_element("traffic", "#traffic-card").await?;
    eprintln!("traffic picture: {}", traffic.display());
    b.click("#nav-traffic").await?;
    b.wait_for(
        "the traffic overview",
        &format!("#traffic-table tr[data-api=\"{API}\"]"),
    )
    .await?;
    b.click("#rank-staleness").await?;
    ensure!(
        b.eval("return document.querySelector('#rank-staleness').getAttribute('aria-pressed')")
            .await?
            == json!("true"),
        "ranking by staleness did not take"
    );
    b.shot("traffic-overview").await?;
    b.client
        .goto(&format!("{}/#/apis/{API}", stack.base))
        .await?;
    b.wait_for("the serving version", "#serving-version")
        .await?;

    // Publish again, then roll back to version 1 from the versions list.
    b.click("#publish-button").await?;
    b.until(
        "the second publish to commit",
        Duration::from_secs(180),
        "document.querySelector('#publish-status').textContent.includes('Committed version 2')",
    )
    .await?;
    b.until(
        "version 2 serving",
        WAIT,
        "document.querySelector('#serving-version')?.textContent === 'v2'",
    )
    .await?;
    b.click("[data-test='rollback-1']").await?;
    b.until(
        "the confirmation",
        WAIT,
        "document.querySelector('#confirm-dialog').open",
    )
    .await?;
    b.shot("rollback-confirm").await?;
    b.click("#confirm-ok").await?;
    let phase = b
        .final_phase(
            "the rollback to finish",
            Duration::from_secs(120),
            "#rollback-progress",
        )
        .await?;
    ensure!(
        phase == json!("committed"),
        "the rollback ended {phase}: {}",
        b.text("#rollback-error").await.unwrap_or_default()
    );
    b.until(
        "version 1 serving again",
        WAIT,
        "document.querySelector('#serving-version')?.textContent === 'v1'",
    )
    .await?;

    // An API read token, shown once.
    b.create_token("api-token", "checkout-service", "tca_")
        .await?;
    b.shot("rolled-back").await?;

    // The rollback's job page: its events, replayed.
    b.click("#nav-jobs").await?;
    b.click("#jobs-table tbody tr:first-child td:first-child a")
        .await?;
    b.until(
        "the job's final event",
        WAIT,
        "[...document.querySelectorAll('#job-events li strong')].some(s => s.textContent === 'finished')",
    )
    .await?;
    ensure!(
        b.text("#page-title").await? == format!("rollback of {API}"),
        "the newest job is not the rollback"
    );
    b.shot("job").await?;

    // Keeping it fresh: set triggers and an objective in the form, then see them, the next
    // firing and the data's age (weeks past the 26 h objective: stale) on the API's page and
    // in the list.
    b.client
        .goto(&format!("{}/#/apis/{API}/edit", stack.base))
        .await?;
    b.wait_for("the form's freshness section", "#refresh-card")
        .await?;
    b.click("#f-refresh-on_table_change").await?;
    b.fill("#f-refresh-schedule", "30 4 * * *").await?;
    b.fill("#f-refresh-timezone", "Europe/Prague").await?;
    b.fill("#f-refresh-freshness_objective_h", "26").await?;
    b.wait_for("the form to be valid", "[data-test='validation-valid']")
        .await?;
    b.shot("refresh-form").await?;
    b.click("#save-api").await?;
    b.wait_for("the API page's freshness", "#freshness-card")
        .await?;
    // The server computes the schedule's next firing within a tick: look again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    b.client.refresh().await?;
    b.wait_for("the next firing", "#freshness-next").await?;
    let triggers = b.text("#freshness-triggers").await?;
    ensure!(
        triggers.contains("on table change") && triggers.contains("30 4 * * * (Europe/Prague)"),
        "the triggers read {triggers:?}"
    );
    b.wait_for("the stale badge", "#freshness-age [data-test='stale']")
        .await?;
    b.shot("freshness").await?;
    b.click("#nav-apis").await?;
    b.wait_for(
        "the list's stale badge",
        &format!("#apis-table tr[data-api=\"{API}\"] [data-test='stale']"),
    )
    .await?;
    b.click("#sort-by-age").await?;
    ensure!(
        b.eval("return document.querySelector('#sort-by-age').getAttribute('aria-pressed')")
            .await?
            == json!("true"),
        "sorting by data age did not take"
    );
    b.shot("apis-by-age").await?;

    // Another analyst sees the API and its jobs but none of the actions that change them:
    // only its owner, editors and administrators get those.
    b.click("#sign-out").await?;
    b.sign_in(&analyst).await?;
    b.until(
        "the analyst signed in",
        WAIT,
        "document.querySelector('#whoami')?.textContent.startsWith('ana')",
    )
    .await?;
    b.client
        .goto(&format!("{}/#/apis/{API}", stack.base))
        .await?;
    b.until(
        "the read-only API page with its versions",
        WAIT,
        "document.querySelector('#read-only-hint') && document.querySelector('tr[data-version] .pill')",
    )
    .await?;
    let offered: Value = b
        .eval(
            "return ['#publish-button', '#edit-api', '#delete-api', '#api-token-create', \
             '#api-tokens [data-test^=revoke]', 'button[data-test^=rollback]'] \
             .filter(css => document.querySelector(css))",
        )
        .await?;
    ensure!(offered == json!([]), "a reader is offered {offered}");
    ensure!(
        b.text("#read-only-hint").await?.contains("Only admin"),
        "the hint names who may change it"
    );
    b.shot("api-read-only").await?;
    Ok(())
}
