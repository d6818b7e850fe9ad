use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use dashboard_api::store::{TokenKind, TokenRow, new_id, now_ms, rfc3339};

use crate::config::Config;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a read token for an API and protect the API (a token is required from then on).
    /// The token is printed once; only its hash is kept, in the store the dashboard shares.
    Create {
        #[arg(long)]
        api: String,
        /// What the token is for (default: `cli`).
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List an API's tokens (ids and creation times; never secrets).
    List {
        #[arg(long)]
        api: String,
    },
    /// Revoke a token; the API's edges stop accepting it at once.
    Revoke {
        #[arg(long)]
        api: String,
        #[arg(long)]
        id: String,
    },
}

pub async fn run(command: TokenCommand, config: &Config) -> Result<ExitCode> {
    let control = crate::stack::control(config).await?;
    let store = control.store();
    match command {
        TokenCommand::Create { api, name } => {
            store.api(&api).await.with_context(|| {
                format!("{api} is not known to the control plane: publish it first")
            })?;
            let token = dashboard_api::auth::generate_token("tca_");
            let row = TokenRow {
                id: format!("tok_{}", new_id()),
                api: Some(api.clone()),
                kind: TokenKind::Api,
                name,
                created_by: "cli".into(),
                created_at: now_ms(),
                revoked_at: None,
                quota: None,
            };
            store
                .create_token(&row, &dashboard_api::auth::hash_token(&token))
                .await?;
            store.set_protected(&api, true).await?;
            report_pushes(&control.apply_access(&api).await?);
            eprintln!("token {} created for {api}; it is shown only now:", row.id);
            println!("{token}");
        }
        TokenCommand::List { api } => {
            for t in store.tokens(Some(&api)).await? {
                println!(
                    "{}  {}  created {} by {}  {}",
                    t.id,
                    t.name,
                    rfc3339(t.created_at),
                    t.created_by,
                    t.revoked_at
                        .map(|at| format!("revoked {}", rfc3339(at)))
                        .unwrap_or_else(|| "active".into())
                );
            }
        }
        TokenCommand::Revoke { api, id } => {
            let token = store.token(&id).await?;
            if token.api.as_deref() != Some(api.as_str()) || token.kind != TokenKind::Api {
                bail!("token {id} is not a token of {api}");
            }
            store.revoke_token(&id).await?;
            report_pushes(&control.apply_access(&api).await?);
            println!("token {id} of {api} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report_pushes(pushes: &[dashboard_api::control::EdgeOutcome]) {
    for p in pushes {
        eprintln!("{p}");
        if p.error.is_some() {
            eprintln!("  (applied when the edge answers again: tablecast reconcile)");
        }
    }
}
