use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use crate::config::Config;
use crate::tokens::TokenStore;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token for a protected API; it is printed once and only its hash is kept.
    Create {
        #[arg(long)]
        api: String,
        /// Edges to push the API's token hashes to right away.
        #[arg(long = "edge")]
        edges: Vec<String>,
    },
    /// List an API's tokens (ids and creation times; never secrets).
    List {
        #[arg(long)]
        api: String,
    },
    /// Revoke a token; edges stop accepting it once the hashes are pushed.
    Revoke {
        #[arg(long)]
        api: String,
        #[arg(long)]
        id: String,
        #[arg(long = "edge")]
        edges: Vec<String>,
    },
}

pub async fn run(command: TokenCommand, config: &Config) -> Result<ExitCode> {
    let store = TokenStore::new(config.tokens_dir());
    match command {
        TokenCommand::Create { api, edges } => {
            let (record, token) = store.create(&api)?;
            push(&store, &api, &edges, config).await?;
            eprintln!(
                "token {} created for {api}; it is shown only now:",
                record.id
            );
            println!("{token}");
        }
        TokenCommand::List { api } => {
            for r in store.list(&api)? {
                println!(
                    "{}  created {}  {}",
                    r.id,
                    r.created_at,
                    r.revoked_at
                        .map(|t| format!("revoked {t}"))
                        .unwrap_or_else(|| "active".into())
                );
            }
        }
        TokenCommand::Revoke { api, id, edges } => {
            store.revoke(&api, &id)?;
            push(&store, &api, &edges, config).await?;
            println!("token {id} of {api} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Pushes the API's live token hashes to the edges given (or configured), if any.
async fn push(store: &TokenStore, api: &str, flags: &[String], config: &Config) -> Result<()> {
    let addresses = if flags.is_empty() {
        &config.edges[..]
    } else {
        flags
    };
    let hashes = store.active_hashes(api)?;
    for address in addresses {
        let edge = crate::stack::edge(address, config).await?;
        edge.set_token_hashes(api, &hashes, true).await?;
        eprintln!("edge {address}: {} token hash(es) for {api}", hashes.len());
    }
    Ok(())
}
