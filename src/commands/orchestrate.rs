//! `tablecast publish --via DASHBOARD_URL [--wait]`: the publish queued on a running
//! `tablecast serve` (its job runner retries transient faults and records the job), for
//! orchestrators that only need a command and an exit code.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use dashboard_api::control::PublishOptions;
use serde_json::{Value, json};

/// How often the job is polled while waiting.
const POLL: Duration = Duration::from_millis(500);

pub async fn publish_via(
    base: &str,
    token: &str,
    api: &str,
    options: PublishOptions,
    wait: bool,
    print_json: bool,
) -> Result<ExitCode> {
    let base = base.trim_end_matches('/');
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = format!("{base}/api/apis/{api}/publish");
    let job = call(
        http.post(&url).bearer_auth(token).json(&json!({
            "route": options.route,
            "if_changed": options.skip_unchanged,
            "force": options.force,
        })),
        &url,
    )
    .await?;
    let id = job["id"]
        .as_str()
        .with_context(|| format!("POST {url}: no job id in {job}"))?
        .to_string();
    eprintln!("queued job {id} for {api} on {base}");
    if !wait {
        println!("{id}");
        return Ok(ExitCode::SUCCESS);
    }
    let url = format!("{base}/api/jobs/{id}");
    let job = loop {
        let job = call(http.get(&url).bearer_auth(token), &url).await?;
        match job["state"].as_str() {
            Some("succeeded" | "failed" | "cancelled") => break job,
            _ => tokio::time::sleep(POLL).await,
        }
    };
    let state = job["state"].as_str().unwrap_or_default();
    if print_json {
        super::print_json(&job)?;
    } else {
        let version = &job["report"]["version"];
        match state {
            "succeeded" if job["report"]["unchanged"] == true => {
                println!(
                    "{api} unchanged since version {} (job {id}): nothing published",
                    job["report"]["previous_version"]
                )
            }
            "succeeded" => println!("published {api} version {version} (job {id})"),
            _ => println!(
                "publish of {api} {state} (job {id}) after {} attempt(s): {}",
                job["attempts"],
                job["error"]["message"]
                    .as_str()
                    .unwrap_or("no error recorded")
            ),
        }
    }
    Ok(if state == "succeeded" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Sends a request; the JSON body on success, else an error quoting the dashboard's error.
async fn call(request: reqwest::RequestBuilder, url: &str) -> Result<Value> {
    let response = request
        .send()
        .await
        .with_context(|| format!("reaching the dashboard at {url}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "{url}: {status}: {}",
            body["error"]["message"].as_str().unwrap_or("no message")
        );
    }
    Ok(body)
}
