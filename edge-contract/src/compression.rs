//! Compressed versions: every value of a version compressed with zstd and a dictionary trained
//! on a sample of that version's own values (as Venice stores its versions). Values of one API
//! look alike (the same field names, the same shapes), so a dictionary of a few KB takes most of
//! what a value repeats of its neighbours, which per-value compression alone cannot.
//!
//! The publisher decides per version ([`Trainer`]) and records the dictionary in the version's
//! manifest; edges store the compressed bytes as they store any value; lookups decompress with
//! the manifest's dictionary ([`Decoder`]).

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// How a version's values are stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compression {
    /// Always `zstd-dictionary` for now.
    pub codec: String,
    /// The dictionary, hex.
    pub dictionary: String,
    /// Value bytes before and after compression, over the whole version.
    pub raw_bytes: u64,
    pub stored_bytes: u64,
}

pub const CODEC: &str = "zstd-dictionary";

/// Compression settings (the `[publish.compression]` section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompressionConfig {
    pub enabled: bool,
    /// Value bytes sampled (the first values of the version) to train the dictionary on.
    /// Training time grows with the sample: 1 MiB (about 64 times the dictionary) stored within
    /// 1 % of what 4 MiB did for the sample specs, and trained 0.25 s faster (bench/history.md).
    pub sample_bytes: usize,
    pub dictionary_bytes: usize,
    /// The least fraction of the sample's bytes compression must save to be used.
    pub min_saving: f64,
    pub level: i32,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            enabled: true,
            sample_bytes: 1 << 20,
            dictionary_bytes: 16 << 10,
            min_saving: 0.25,
            level: 3,
        }
    }
}

/// Compresses values with a dictionary; one per version being written. It has a compressor
/// per lane, so that as many threads as lanes can compress at once (a zstd context is used by
/// one thread at a time).
pub struct Encoder {
    lanes: Vec<Mutex<zstd::bulk::Compressor<'static>>>,
    dictionary: Vec<u8>,
}

impl Encoder {
    /// Compresses with the compressor of `lane` (below [`Encoder::lanes`]); threads that use
    /// different lanes never wait for each other.
    pub fn compress(&self, lane: usize, value: &[u8]) -> std::io::Result<Vec<u8>> {
        self.lanes[lane % self.lanes.len()]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .compress(value)
    }

    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// The same encoder with `lanes` compressors (at least one).
    pub fn with_lanes(mut self, lanes: usize, level: i32) -> std::io::Result<Self> {
        while self.lanes.len() < lanes {
            let compressor = zstd::bulk::Compressor::with_dictionary(level, &self.dictionary)?;
            self.lanes.push(Mutex::new(compressor));
        }
        Ok(self)
    }

    pub fn dictionary(&self) -> &[u8] {
        &self.dictionary
    }
}

/// Trains a dictionary on a sample of values and says whether it pays.
pub struct Trainer<'a> {
    pub config: &'a CompressionConfig,
}

impl Trainer<'_> {
    /// An encoder when compression saves at least `min_saving` of the sample, else why not:
    /// it does not save enough, or the sample is too small or too uniform to train on.
    pub fn train(&self, sample: &[&[u8]]) -> Result<Encoder, String> {
        if !self.config.enabled {
            return Err("disabled".into());
        }
        if sample.len() < 16 {
            return Err(format!("{} values are too few to train on", sample.len()));
        }
        let dictionary = zstd::dict::from_samples(sample, self.config.dictionary_bytes)
            .map_err(|e| format!("training a dictionary: {e}"))?;
        let mut compressor =
            zstd::bulk::Compressor::with_dictionary(self.config.level, &dictionary)
                .map_err(|e| format!("loading the dictionary: {e}"))?;
        let raw: usize = sample.iter().map(|v| v.len()).sum();
        let mut stored = 0usize;
        for value in sample {
            stored += compressor
                .compress(value)
                .map_err(|e| format!("compressing: {e}"))?
                .len();
        }
        let saving = 1.0 - stored as f64 / raw.max(1) as f64;
        if saving < self.config.min_saving {
            return Err(format!(
                "saves {:.0} % of the sample, under the {:.0} % asked",
                saving * 100.0,
                self.config.min_saving * 100.0
            ));
        }
        Ok(Encoder {
            lanes: vec![Mutex::new(compressor)],
            dictionary,
        })
    }
}

/// Decompresses the values of one compressed version; cheap to share between threads.
pub struct Decoder {
    dictionary: zstd::dict::DecoderDictionary<'static>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decoder")
    }
}

impl Decoder {
    /// The decoder of a manifest's compression; an error names what is wrong with it.
    pub fn new(compression: &Compression) -> Result<Decoder, String> {
        if compression.codec != CODEC {
            return Err(format!("unknown value codec `{}`", compression.codec));
        }
        let bytes = hex::decode(&compression.dictionary)
            .map_err(|e| format!("the dictionary is not hex: {e}"))?;
        Ok(Decoder {
            dictionary: zstd::dict::DecoderDictionary::copy(&bytes),
        })
    }

    pub fn decompress(&self, stored: &[u8]) -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let mut decoder =
            zstd::stream::read::Decoder::with_prepared_dictionary(stored, &self.dictionary)?;
        let mut value = Vec::with_capacity(stored.len() * 4);
        decoder.read_to_end(&mut value)?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                format!(
                    r#"[{{"ts":"2026-11-0{}T10:{:02}:00Z","action":"{}","item_id":{}}}]"#,
                    i % 9 + 1,
                    i % 60,
                    ["view", "click", "purchase"][i % 3],
                    1000 + i * 7
                )
                .into_bytes()
            })
            .collect()
    }

    #[test]
    fn values_round_trip_through_a_trained_dictionary() {
        let config = CompressionConfig::default();
        let values = values(2000);
        let sample: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let encoder = Trainer { config: &config }
            .train(&sample)
            .expect("alike values compress")
            .with_lanes(2, config.level)
            .unwrap();
        let compression = Compression {
            codec: CODEC.into(),
            dictionary: hex::encode(encoder.dictionary()),
            raw_bytes: 0,
            stored_bytes: 0,
        };
        let decoder = Decoder::new(&compression).unwrap();
        let (mut raw, mut stored) = (0, 0);
        for (i, v) in values.iter().enumerate() {
            let c = encoder.compress(i, v).unwrap();
            raw += v.len();
            stored += c.len();
            assert_eq!(&decoder.decompress(&c).unwrap(), v);
        }
        assert!(stored * 2 < raw, "{stored} of {raw} bytes");
    }

    #[test]
    fn too_few_or_disabled_or_not_worth_it_stays_raw() {
        let values = values(10);
        let sample: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let config = CompressionConfig::default();
        assert!(Trainer { config: &config }.train(&sample).is_err());
        let values = values_of_noise(500);
        let sample: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        assert!(Trainer { config: &config }.train(&sample).is_err());
        let off = CompressionConfig {
            enabled: false,
            ..Default::default()
        };
        let values = super::tests::values(2000);
        let sample: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        assert!(Trainer { config: &off }.train(&sample).is_err());
    }

    fn values_of_noise(n: usize) -> Vec<Vec<u8>> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..n)
            .map(|_| {
                (0..64)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_bad_manifest_is_named() {
        let bad = Compression {
            codec: "lz9".into(),
            dictionary: String::new(),
            raw_bytes: 0,
            stored_bytes: 0,
        };
        assert!(Decoder::new(&bad).unwrap_err().contains("lz9"));
        let bad = Compression {
            codec: CODEC.into(),
            dictionary: "zz".into(),
            raw_bytes: 0,
            stored_bytes: 0,
        };
        assert!(Decoder::new(&bad).unwrap_err().contains("hex"));
    }
}
