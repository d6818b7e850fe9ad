//! One module per subcommand.

pub mod demo;
pub mod edge;
pub mod fixtures;
pub mod orchestrate;
pub mod plan;
pub mod publish;
pub mod run;
pub mod serve;
pub mod tables;
pub mod token;
pub mod versions;

/// Prints a JSON value, pretty, to stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `1.2 GB`-style sizes for people.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
