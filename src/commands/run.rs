//! `tablecast run`: the API's answer as canonical JSONL, sorted by the bytes of each key's JSON.
//! Sorting is external: runs of at most `SORT_BUFFER` bytes are sorted in memory and spilled,
//! then merged, so memory stays bounded whatever the output size.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use async_trait::async_trait;
use clap::Args;
use publisher::canonical::{Entry, write_jsonl_line};
use publisher::engine::EnginePath;
use publisher::publish::{EntrySink, Route};
use publisher::spec::ApiSpec;

use crate::config::Config;

const SORT_BUFFER: usize = 256 << 20;

#[derive(Args)]
pub struct RunArgs {
    /// The API spec; repeat to run several (with `--path fallback` they share one Spark
    /// session; otherwise they run one after the other).
    #[arg(long, required = true)]
    spec: Vec<PathBuf>,
    #[arg(long)]
    metastore: Option<String>,
    /// Output file (canonical JSONL); with several specs, a folder that gets `<api>.jsonl`
    /// for each.
    #[arg(long)]
    out: PathBuf,
    /// auto (follow the guards), fasttrack or fallback.
    #[arg(long, default_value = "auto")]
    path: Route,
    /// Appends this command's own time in seconds (inside the process, from reading the specs
    /// to the output written: no process start) to this file, a line per run; for benchmarks
    /// against engines timed the same way (bench/duckdb_run.py --timing).
    #[arg(long)]
    timing: Option<PathBuf>,
}

pub async fn run(args: RunArgs, config: &Config) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let specs = args
        .spec
        .iter()
        .map(|p| ApiSpec::from_path(p))
        .collect::<Result<Vec<_>, _>>()?;
    let outs: Vec<PathBuf> = match specs.as_slice() {
        [_] => vec![args.out.clone()],
        many => {
            std::fs::create_dir_all(&args.out)
                .with_context(|| format!("creating {}", args.out.display()))?;
            many.iter()
                .map(|s| args.out.join(format!("{}.jsonl", s.name)))
                .collect()
        }
    };
    let uri = config.metastore(args.metastore.as_deref())?;
    let publisher = crate::stack::publisher(config, uri).await?;
    let mut plans = Vec::with_capacity(specs.len());
    for spec in &specs {
        let plan = publisher.plan(spec, args.path).await?;
        tracing::info!(api = %spec.name, path = %plan.path, reason = %plan.reason, "running");
        plans.push(plan);
    }
    let progress: publisher::publish::ProgressFn = Arc::new(|p| tracing::debug!(?p, "progress"));
    // The sorters of a batch are all alive until it ends: they share the memory budget.
    let mut sorters = plans
        .iter()
        .map(|_| ExternalSort::new(SORT_BUFFER / plans.len()))
        .collect::<Result<Vec<_>>>()?;
    let stats = if args.path == Route::Fallback && plans.len() > 1 {
        let mut sinks: Vec<&mut dyn EntrySink> = sorters
            .iter_mut()
            .map(|s| s as &mut dyn EntrySink)
            .collect();
        publisher
            .run_all(&plans, EnginePath::Fallback, &mut sinks, &progress)
            .await?
    } else {
        let mut all = Vec::with_capacity(plans.len());
        for (plan, sorter) in plans.iter().zip(sorters.iter_mut()) {
            all.push(publisher.run(plan, args.path, sorter, &progress).await?);
        }
        all
    };
    for ((sorter, stats), out) in sorters.into_iter().zip(stats).zip(&outs) {
        let lines = sorter.write_jsonl(out)?;
        let path = stats.path.map(|p| p.to_string()).unwrap_or_default();
        eprintln!(
            "{}: {lines} keys, {} rows in, path {path}, {} ms{}",
            out.display(),
            stats.rows_in,
            stats.attempts.iter().map(|a| a.ms).sum::<u64>(),
            if stats.attempts.len() > 1 {
                " (re-routed)"
            } else {
                ""
            }
        );
    }
    if let Some(path) = &args.timing {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(file, "{}", started.elapsed().as_secs_f64())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Collects entries and produces them sorted by key bytes, spilling sorted runs to disk.
pub struct ExternalSort {
    /// The buffered entries' keys and values back to back: one allocation rather than two per
    /// entry, whose freeing at the end took 15 ms of a 0.4 s `run recent_activity`. The
    /// engine's buffers are freed as they arrive instead, while the engine still runs.
    data: Vec<u8>,
    spans: Vec<Span>,
    limit: usize,
    dir: tempfile::TempDir,
    runs: Vec<PathBuf>,
}

/// Where one buffered entry's key and value are in [`ExternalSort::data`].
#[derive(Debug, Clone, Copy)]
struct Span {
    at: usize,
    key: usize,
    value: usize,
}

impl Span {
    fn key<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        &data[self.at..self.at + self.key]
    }
    fn value<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        let from = self.at + self.key;
        &data[from..from + self.value]
    }
}

impl ExternalSort {
    pub fn new(limit: usize) -> Result<Self> {
        Ok(ExternalSort {
            data: Vec::new(),
            spans: Vec::new(),
            limit,
            dir: tempfile::tempdir()?,
            runs: Vec::new(),
        })
    }

    fn buffered_bytes(&self) -> usize {
        self.data.len() + self.spans.len() * std::mem::size_of::<Span>()
    }

    /// The buffered entries' spans in key order.
    fn sorted(&self) -> Vec<Span> {
        key_order(&self.spans, &self.data)
            .into_iter()
            .map(|i| self.spans[i])
            .collect()
    }

    fn spill(&mut self) -> Result<()> {
        let path = self.dir.path().join(format!("run-{}", self.runs.len()));
        let mut w = BufWriter::new(File::create(&path)?);
        for span in self.sorted() {
            for part in [span.key(&self.data), span.value(&self.data)] {
                w.write_all(&(part.len() as u32).to_le_bytes())?;
                w.write_all(part)?;
            }
        }
        w.flush()?;
        self.runs.push(path);
        self.data.clear();
        self.spans.clear();
        Ok(())
    }

    /// Writes every entry as a `{"key":…,"value":…}` line, sorted; returns the line count.
    ///
    /// Written under a temporary name and moved into place, so a reader never sees half a file;
    /// not synced, since this is a result to read (a golden to compare, a file to inspect), not
    /// state to survive a power cut: the sync was 27 ms of a 0.43 s `run recent_activity`.
    pub fn write_jsonl(mut self, out: &Path) -> Result<u64> {
        let tmp = out.with_extension("jsonl.tmp");
        let mut w = BufWriter::with_capacity(
            1 << 20,
            File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
        );
        let mut count = 0u64;
        let mut emit = |key: &[u8], value: &[u8], w: &mut BufWriter<File>| -> Result<()> {
            write_jsonl_line(w, key, value)?;
            count += 1;
            Ok(())
        };
        if self.runs.is_empty() {
            for span in self.sorted() {
                emit(span.key(&self.data), span.value(&self.data), &mut w)?;
            }
        } else {
            self.spill()?;
            let mut readers: Vec<BufReader<File>> = self
                .runs
                .iter()
                .map(|p| File::open(p).map(BufReader::new))
                .collect::<std::io::Result<_>>()?;
            let mut heap = BinaryHeap::new();
            for (i, r) in readers.iter_mut().enumerate() {
                if let Some(e) = read_entry(r)? {
                    heap.push(Reverse((e.key, e.value, i)));
                }
            }
            while let Some(Reverse((key, value, i))) = heap.pop() {
                emit(&key, &value, &mut w)?;
                if let Some(next) = read_entry(&mut readers[i])? {
                    heap.push(Reverse((next.key, next.value, i)));
                }
            }
        }
        w.flush()?;
        drop(w);
        // Renaming over an existing file makes ext4 write the new one out first (its
        // replace-by-rename heuristic): 20-30 ms for the 57 MB of `run recent_activity`, where
        // removing the old file first costs half that. A reader still sees the old file, then
        // none, then the whole new one.
        match std::fs::remove_file(out) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("replacing {}", out.display())),
        }
        std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
        Ok(count)
    }
}

/// The order of the entries `spans` points to in `data`, by key. Comparing keys directly chases
/// a pointer per comparison; sorting (first 8 key bytes, index) pairs keeps the sort in cache
/// and reads the keys themselves only on a tie.
fn key_order(spans: &[Span], data: &[u8]) -> Vec<usize> {
    let prefix = |key: &[u8]| {
        let mut head = [0u8; 8];
        let n = key.len().min(8);
        head[..n].copy_from_slice(&key[..n]);
        u64::from_be_bytes(head)
    };
    let mut order: Vec<(u64, usize)> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (prefix(s.key(data)), i))
        .collect();
    order.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| spans[a.1].key(data).cmp(spans[b.1].key(data)))
    });
    order.into_iter().map(|(_, i)| i).collect()
}

fn read_entry(r: &mut impl Read) -> Result<Option<Entry>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let mut key = vec![0; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut key)?;
    r.read_exact(&mut len)?;
    let mut value = vec![0; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut value)?;
    Ok(Some(Entry { key, value }))
}

#[async_trait]
impl EntrySink for ExternalSort {
    async fn accept(&mut self, entries: Vec<Entry>) -> publisher::Result<()> {
        for e in entries {
            self.spans.push(Span {
                at: self.data.len(),
                key: e.key.len(),
                value: e.value.len(),
            });
            self.data.extend_from_slice(&e.key);
            self.data.extend_from_slice(&e.value);
        }
        if self.buffered_bytes() > self.limit {
            self.spill().map_err(|e| {
                publisher::Error::io(
                    "spilling sorted output",
                    std::io::Error::other(e.to_string()),
                )
            })?;
        }
        Ok(())
    }

    async fn reset(&mut self) -> publisher::Result<()> {
        self.data.clear();
        self.spans.clear();
        for r in self.runs.drain(..) {
            let _ = std::fs::remove_file(r);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_breaks_ties_past_the_prefix() {
        let keys: [&[u8]; 7] = [
            b"[\"abcdefgh2\"]",
            b"[\"abcdefgh1\"]",
            b"[1]",
            b"[10]",
            b"",
            b"[1]\0",
            b"[\"abcdefgh\"]",
        ];
        let mut data = Vec::new();
        let spans: Vec<Span> = keys
            .iter()
            .map(|k| {
                let span = Span {
                    at: data.len(),
                    key: k.len(),
                    value: 1,
                };
                data.extend_from_slice(k);
                data.push(b'v');
                span
            })
            .collect();
        let ordered: Vec<&[u8]> = key_order(&spans, &data)
            .into_iter()
            .map(|i| spans[i].key(&data))
            .collect();
        let mut expected = keys.to_vec();
        expected.sort();
        assert_eq!(ordered, expected);
    }

    #[tokio::test]
    async fn spilled_runs_merge_in_key_order() {
        let mut sort = ExternalSort::new(64).unwrap();
        let mut expected = Vec::new();
        for i in (0..500u32).rev() {
            let e = Entry {
                key: format!("[{}]", i * 7919 % 1000).into_bytes(),
                value: format!("{i}").into_bytes(),
            };
            expected.push(e.clone());
            sort.accept(vec![e]).await.unwrap();
        }
        assert!(sort.runs.len() > 3);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        assert_eq!(sort.write_jsonl(&out).unwrap(), 500);
        expected.sort_by(|a, b| a.key.cmp(&b.key));
        let mut want = Vec::new();
        expected
            .iter()
            .for_each(|e| write_jsonl_line(&mut want, &e.key, &e.value).expect("into memory"));
        assert_eq!(std::fs::read(&out).unwrap(), want);
    }
}
