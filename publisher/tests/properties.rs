//! Property tests over the hostile-input surfaces: the key URL codec (every key value
//! round-trips through a URL, and no segment makes the decoder panic) and the spec loader and
//! validator (no input makes them panic; whatever validates names only real columns and plain
//! identifiers, so no user string can become SQL text).

use proptest::prelude::*;
use publisher::canonical::{write_f64, write_str};
use publisher::catalog::{StorageFormat, TableMeta, TableStats};
use publisher::keypath::{KeyType, decode_key, encode_key};
use publisher::schema::Column;
use publisher::spec::{ApiSpec, is_api_name, validate};

#[derive(Debug, Clone)]
enum KeyValue {
    Null,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// Strings that lean on what URLs and the codec treat specially.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[~./%?#& a-z0-9\\-_]{0,12}",
        Just(".".to_string()),
        Just("..".to_string()),
        Just("~null".to_string()),
        Just("~empty".to_string()),
        Just("%2F".to_string()),
        "\\PC{0,8}",
    ]
}

fn key_value() -> impl Strategy<Value = (KeyValue, KeyType)> {
    prop_oneof![
        Just((KeyValue::Null, KeyType::Str)),
        Just((KeyValue::Null, KeyType::Int)),
        hostile_string().prop_map(|s| (KeyValue::Str(s), KeyType::Str)),
        any::<i64>().prop_map(|i| (KeyValue::Int(i), KeyType::Int)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| (KeyValue::Float(f), KeyType::Float)),
        any::<bool>().prop_map(|b| (KeyValue::Bool(b), KeyType::Bool)),
    ]
}

/// The canonical key JSON the engines produce for these values.
fn canonical_key(values: &[KeyValue]) -> Vec<u8> {
    let mut out = b"[".to_vec();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match v {
            KeyValue::Null => out.extend_from_slice(b"null"),
            KeyValue::Str(s) => write_str(&mut out, s),
            KeyValue::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
            KeyValue::Float(f) => write_f64(&mut out, *f),
            KeyValue::Bool(b) => out.extend_from_slice(b.to_string().as_bytes()),
        }
    }
    out.push(b']');
    out
}

fn segments(path: &str) -> Vec<&str> {
    if path.is_empty() {
        vec![]
    } else {
        path.split('/').collect()
    }
}

fn column_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("network".to_string()),
        Just("product_id".to_string()),
        Just("product_name".to_string()),
        Just("dt".to_string()),
        Just("no_such_column".to_string()),
        Just("network\"; DROP TABLE x; --".to_string()),
        Just("`network`".to_string()),
        hostile_string(),
    ]
}

fn referrals() -> TableMeta {
    TableMeta {
        name: "social.referrals".parse().unwrap(),
        location: "file:///w/social/referrals".into(),
        format: StorageFormat::Parquet,
        columns: vec![
            Column::from_hive("product_id", "bigint"),
            Column::from_hive("product_name", "string"),
            Column::from_hive("network", "string"),
            Column::from_hive("referrals", "bigint"),
        ],
        partition_keys: vec![Column::from_hive("dt", "string")],
        partitions: vec![],
        stats: TableStats::default(),
        parameters: Default::default(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_key_round_trips_through_its_url(key in prop::collection::vec(key_value(), 0..4)) {
        let (values, types): (Vec<KeyValue>, Vec<KeyType>) = key.into_iter().unzip();
        let json = canonical_key(&values);
        let path = encode_key(&json).expect("a canonical key always encodes");
        // Only URL-safe characters, and no segment a URL parser would resolve away.
        prop_assert!(
            path.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%/".contains(&b)),
            "{}", path
        );
        for s in segments(&path) {
            prop_assert!(s != "." && s != "..", "{}", path);
        }
        let back = decode_key(&segments(&path), &types).expect("decodes");
        prop_assert_eq!(
            String::from_utf8(back).unwrap(),
            String::from_utf8(json).unwrap(),
            "via {}", path
        );
    }

    #[test]
    fn arbitrary_segments_never_panic_the_decoder(
        segs in prop::collection::vec(hostile_string(), 0..4),
        types in prop::collection::vec(prop_oneof![
            Just(KeyType::Str), Just(KeyType::Int), Just(KeyType::Float), Just(KeyType::Bool),
            Just(KeyType::Decimal { scale: 2 }), Just(KeyType::Date), Just(KeyType::Timestamp),
        ], 0..4),
    ) {
        if let Ok(json) = decode_key(&segs, &types) {
            // Whatever decodes is a JSON array of the right arity.
            let v: Vec<serde_json::Value> = serde_json::from_slice(&json).expect("valid JSON");
            prop_assert_eq!(v.len(), types.len());
        }
    }

    #[test]
    fn arbitrary_text_never_panics_the_spec_loaders(text in "\\PC{0,400}") {
        let _ = ApiSpec::from_toml(&text);
        let _ = ApiSpec::from_json(&text);
    }

    #[test]
    fn whatever_validates_names_only_real_columns_and_plain_identifiers(
        name in prop_oneof!["[a-z_]{1,10}", hostile_string()],
        key in prop::collection::vec(column_name(), 0..3),
        value_columns in prop::collection::vec(column_name(), 1..4),
        agg in prop_oneof![
            Just(None), Just(Some("sum")), Just(Some("count")), Just(Some("max")), Just(Some("avg"))
        ],
        alias in prop_oneof!["[a-z_]{1,8}", hostile_string()],
        shape in prop_oneof![Just("object"), Just("list")],
        limit in prop::option::of(0u64..20),
        filter_value in hostile_string(),
    ) {
        let mut values: Vec<serde_json::Value> = value_columns
            .iter()
            .map(|c| serde_json::json!({ "column": c }))
            .collect();
        if let Some(agg) = agg {
            values.push(serde_json::json!({ "agg": agg, "column": "referrals", "as": alias }));
        }
        let mut spec = serde_json::json!({
            "name": name,
            "table": "social.referrals",
            "key": key,
            "values": values,
            "shape": shape,
            "filter": [{ "column": "network", "op": "=", "value": filter_value }],
        });
        if let Some(limit) = limit {
            spec["limit"] = limit.into();
        }
        let Ok(spec) = ApiSpec::from_json(&spec.to_string()) else {
            return Ok(());
        };
        if let Ok(resolved) = validate(&spec, &referrals()) {
            prop_assert!(is_api_name(resolved.name()));
            let table = referrals();
            let known: Vec<&str> = table
                .columns
                .iter()
                .chain(&table.partition_keys)
                .map(|c| c.name.as_str())
                .collect();
            let json = serde_json::to_value(&spec).unwrap();
            for k in json["key"].as_array().unwrap() {
                prop_assert!(known.contains(&k.as_str().unwrap()), "key {} validated", k);
            }
            for v in json["values"].as_array().unwrap() {
                if let Some(c) = v.get("column").and_then(|c| c.as_str()) {
                    prop_assert!(known.contains(&c), "value column {} validated", c);
                }
                if let Some(alias) = v.get("as").and_then(|a| a.as_str()) {
                    prop_assert!(
                        alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "alias {:?} validated", alias
                    );
                }
            }
        }
    }
}
