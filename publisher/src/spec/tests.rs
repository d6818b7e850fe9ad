use super::*;
use crate::catalog::{StorageFormat, TableStats};
use crate::schema::Column;

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
            Column::from_hive("revenue", "decimal(12,2)"),
            Column::from_hive("ts", "timestamp"),
            Column::from_hive("tags", "array<string>"),
        ],
        partition_keys: vec![Column::from_hive("dt", "string")],
        partitions: vec![],
        stats: TableStats::default(),
        parameters: Default::default(),
    }
}

/// The sample spec `top_products_by_network` (top 10 products by referrals per network).
const TOP: &str = include_str!("../../../fixtures/specs/top_products_by_network.toml");

fn problems(spec: &ApiSpec) -> Vec<String> {
    match validate(spec, &referrals()) {
        Ok(_) => vec![],
        Err(Error::SpecInvalid { problems, .. }) => {
            problems.iter().map(|p| p.to_string()).collect()
        }
        Err(e) => panic!("unexpected {e}"),
    }
}

#[test]
fn resolves_top_products() {
    let spec = ApiSpec::from_toml(TOP).unwrap();
    let r = validate(&spec, &referrals()).unwrap();
    assert_eq!(r.keys[0].name, "network");
    assert_eq!(r.outputs.len(), 3);
    assert_eq!(r.outputs[2].data_type, DataType::Int64);
    assert_eq!(
        r.grouping.as_deref(),
        Some(
            &[
                "network".to_string(),
                "product_id".into(),
                "product_name".into()
            ][..]
        )
    );
    // referrals desc, then product_id and product_name ascending as tie-breakers.
    assert_eq!(
        r.order,
        vec![
            SortField {
                output: 2,
                descending: true
            },
            SortField {
                output: 0,
                descending: false
            },
            SortField {
                output: 1,
                descending: false
            }
        ]
    );
    assert_eq!(
        r.columns,
        vec!["network", "product_id", "product_name", "referrals"]
    );
}

#[test]
fn json_and_toml_are_the_same_model() {
    let spec = ApiSpec::from_toml(TOP).unwrap();
    let json = serde_json::to_string(&spec).unwrap();
    assert_eq!(ApiSpec::from_json(&json).unwrap(), spec);
    assert_eq!(ApiSpec::from_toml(&spec.to_toml()).unwrap(), spec);
}

#[test]
fn unknown_fields_are_refused() {
    let err = ApiSpec::from_toml(&format!("{TOP}\nlimt = 3"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("limt"), "{err}");
}

#[test]
fn reports_every_problem_by_field() {
    let mut spec = ApiSpec::from_toml(TOP).unwrap();
    spec.name = "bad name!".into();
    spec.key = vec!["netwrk".into()];
    spec.values.push(ValueSpec {
        agg: Some(AggFn::Sum),
        column: Some("product_name".into()),
        alias: Some("s".into()),
    });
    spec.values.push(ValueSpec {
        agg: None,
        column: Some("ts".into()),
        alias: None,
    });
    spec.values.push(ValueSpec {
        agg: None,
        column: Some("tags".into()),
        alias: None,
    });
    spec.order_by[0].field = "nope".into();
    let p = problems(&spec);
    let all = p.join("\n");
    for expected in [
        "name:",
        "key[0]: unknown column `netwrk`",
        "values[3].agg: sum needs a numeric column, not string",
        "values[4].column: value column `ts` is neither grouped",
        "values[5].column: column `tags` has nested type array<string>",
        "order_by[0].field: `nope` is not an output field",
    ] {
        assert!(all.contains(expected), "no {expected:?} in:\n{all}");
    }
}

#[test]
fn object_shape_needs_one_row_per_key() {
    let mut spec = ApiSpec::from_toml(TOP).unwrap();
    spec.shape = Shape::Object;
    assert!(problems(&spec).iter().any(|p| p.starts_with("shape:")));
    spec.limit = Some(1);
    assert!(problems(&spec).is_empty());
    spec.limit = None;
    spec.group_by.clear();
    spec.values.drain(0..2);
    assert!(problems(&spec).is_empty(), "{:?}", problems(&spec));
}

fn filter(column: &str, op: FilterOp, value: Option<serde_json::Value>) -> Filter {
    Filter {
        column: column.into(),
        op,
        value,
    }
}

#[test]
fn filters_are_typed_literals_and_prune_partitions() {
    let mut spec = ApiSpec::from_toml(TOP).unwrap();
    spec.filter = vec![
        filter("dt", FilterOp::GtEq, Some("2026-11-05".into())),
        filter("revenue", FilterOp::Gt, Some("10.5".into())),
        filter(
            "network",
            FilterOp::In,
            Some(serde_json::json!(["facebook", "x'; DROP TABLE t; --"])),
        ),
        filter("ts", FilterOp::NotNull, None),
    ];
    let table = referrals();
    let r = validate(&spec, &table).unwrap();
    assert_eq!(
        r.filters[1].literals,
        vec![Literal::Decimal {
            unscaled: 1050,
            precision: 12,
            scale: 2
        }]
    );
    assert_eq!(
        r.filters[2].literals[1],
        Literal::Str("x'; DROP TABLE t; --".into())
    );
    assert!(r.keeps_partition(&table, &["2026-11-05".into()]));
    assert!(!r.keeps_partition(&table, &["2026-11-04".into()]));

    spec.filter = vec![
        filter("referrals", FilterOp::Eq, Some("ten".into())),
        filter("revenue", FilterOp::Eq, Some("1.234".into())),
        filter("network", FilterOp::In, Some(serde_json::json!([]))),
        filter("ts", FilterOp::IsNull, Some(1.into())),
    ];
    let p = problems(&spec);
    assert_eq!(p.len(), 4, "{p:?}");
}

#[test]
fn sql_looking_names_are_refused() {
    let mut spec = ApiSpec::from_toml(TOP).unwrap();
    spec.values[2].alias = Some("x\"; DROP TABLE t".into());
    spec.key = vec!["network`; --".into()];
    let p = problems(&spec);
    assert!(p.iter().any(|p| p.starts_with("values[2].as")), "{p:?}");
    assert!(p.iter().any(|p| p.starts_with("key[0]")), "{p:?}");
}

#[test]
fn decimal_literals_keep_exact_digits() {
    assert_eq!(parse_decimal("-0.05", 12, 2), Ok(-5));
    assert_eq!(parse_decimal("1234.5", 12, 2), Ok(123450));
    assert_eq!(parse_decimal("007", 3, 0), Ok(7));
    assert!(parse_decimal("1.001", 12, 2).is_err());
    assert!(parse_decimal("1e5", 12, 2).is_err());
    assert!(parse_decimal("12345678901", 12, 2).is_err());
    assert!(parse_decimal(".", 12, 2).is_err());
}

#[test]
fn latest_partitions_become_a_filter_on_the_newest_values_the_other_filters_keep() {
    let mut table = referrals();
    for dt in [
        "2026-11-01",
        "2026-11-03",
        HIVE_NULL_PARTITION,
        "2026-11-02",
        "2026-11-04",
    ] {
        table.partitions.push(crate::catalog::Partition {
            values: vec![dt.into()],
            location: format!("file:///w/social/referrals/dt={dt}"),
            num_rows: None,
        });
    }
    let mut spec = ApiSpec::from_toml(TOP).unwrap();
    spec.latest_partitions = Some(2);
    spec.filter = vec![filter("dt", FilterOp::Lt, Some("2026-11-04".into()))];
    let resolved = validate(&spec, &table).unwrap();
    let (concrete, newest) = with_latest_partitions(&spec, &table, &resolved).unwrap();
    assert_eq!(newest, ["2026-11-03", "2026-11-02"]);
    let last = concrete.filter.last().unwrap();
    assert_eq!((last.column.as_str(), last.op), ("dt", FilterOp::In));
    let r = validate(&concrete, &table).unwrap();
    assert!(!r.keeps_partition(&table, &["2026-11-01".into()]));
    assert!(r.keeps_partition(&table, &["2026-11-02".into()]));

    // Numbers order as numbers: 10 is newer than 9.
    let mut hours = referrals();
    for h in ["9", "10", "8"] {
        hours.partitions.push(crate::catalog::Partition {
            values: vec![h.into()],
            location: format!("file:///w/h={h}"),
            num_rows: None,
        });
    }
    spec.filter.clear();
    spec.latest_partitions = Some(1);
    let resolved = validate(&spec, &hours).unwrap();
    assert_eq!(
        with_latest_partitions(&spec, &hours, &resolved).unwrap().1,
        ["10"]
    );

    // Nothing to read, or no partitions at all: errors naming the field.
    let err = with_latest_partitions(&spec, &referrals(), &resolved).unwrap_err();
    assert!(err.to_string().contains("latest_partitions"), "{err}");
    let mut flat = referrals();
    flat.partition_keys.clear();
    spec.latest_partitions = Some(1);
    assert_eq!(
        problems_of(&spec, &flat),
        ["latest_partitions: social.referrals is not partitioned"]
    );
    spec.latest_partitions = Some(0);
    assert!(
        problems(&spec)
            .iter()
            .any(|p| p.starts_with("latest_partitions"))
    );
}

fn problems_of(spec: &ApiSpec, table: &TableMeta) -> Vec<String> {
    match validate(spec, table) {
        Ok(_) => vec![],
        Err(Error::SpecInvalid { problems, .. }) => {
            problems.iter().map(|p| p.to_string()).collect()
        }
        Err(e) => panic!("unexpected {e}"),
    }
}
