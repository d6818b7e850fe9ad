//! Table names, columns and the mapping of Hive type strings onto Arrow types.

use std::fmt;
use std::str::FromStr;

use arrow::datatypes::{DataType, Field, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// `db.table`, both parts lower-cased as the metastore stores them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TableName {
    pub db: String,
    pub table: String,
}

impl TableName {
    pub fn new(db: &str, table: &str) -> Self {
        TableName {
            db: db.to_ascii_lowercase(),
            table: table.to_ascii_lowercase(),
        }
    }
}

impl FromStr for TableName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let (db, table) = s
            .split_once('.')
            .ok_or_else(|| Error::BadTableName(s.to_string()))?;
        if !is_identifier(db) || !is_identifier(table) {
            return Err(Error::BadTableName(s.to_string()));
        }
        Ok(TableName::new(db, table))
    }
}

impl TryFrom<String> for TableName {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<TableName> for String {
    fn from(t: TableName) -> String {
        t.to_string()
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.db, self.table)
    }
}

/// Hive and Spark identifiers: a letter or `_`, then letters, digits or `_`, at most 128 bytes.
/// Names that pass this check are safe as identifiers in any engine without quoting tricks.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 128
}

/// One column as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// The type as the catalog spells it (`bigint`, `decimal(12,2)`, `array<string>`).
    pub hive_type: String,
    /// The Arrow type, when Tablecast can read the column at all.
    #[serde(skip)]
    pub data_type: Option<DataType>,
}

/// `(name, Hive type)` of each column: a schema as the metastore spells it, for comparing
/// what different writers registered.
pub fn spelled(columns: &[Column]) -> Vec<(&str, &str)> {
    columns
        .iter()
        .map(|c| (c.name.as_str(), c.hive_type.as_str()))
        .collect()
}

impl Column {
    pub fn from_hive(name: &str, hive_type: &str) -> Self {
        Column {
            name: name.to_ascii_lowercase(),
            hive_type: hive_type.trim().to_ascii_lowercase(),
            data_type: hive_to_arrow(hive_type),
        }
    }

    pub fn from_arrow(field: &Field) -> Self {
        Column {
            name: field.name().to_ascii_lowercase(),
            hive_type: arrow_to_hive(field.data_type()),
            data_type: Some(normalize_arrow(field.data_type())),
        }
    }

    /// Scalar types the fast track and the canonical encoder handle; nested types are refused.
    pub fn is_scalar(&self) -> bool {
        self.data_type.as_ref().is_some_and(is_scalar_type)
    }
}

pub fn is_scalar_type(t: &DataType) -> bool {
    use DataType::*;
    matches!(
        t,
        Boolean
            | Int8
            | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Float32
            | Float64
            | Utf8
            | LargeUtf8
            | Utf8View
            | Decimal128(_, _)
            | Date32
            | Timestamp(_, _)
    )
}

/// Types that are the same value to an API user collapse to one: strings to `Utf8`, any
/// timestamp to microseconds (Hive's precision; Spark's INT96 nanoseconds included).
pub fn normalize_arrow(t: &DataType) -> DataType {
    match t {
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
        DataType::Dictionary(_, v) => normalize_arrow(v),
        other => other.clone(),
    }
}

/// Maps a Hive type string onto Arrow. `None` for what Tablecast cannot read; nested types map
/// (so that guards can name them) but are not scalar.
pub fn hive_to_arrow(hive: &str) -> Option<DataType> {
    let t = hive.trim().to_ascii_lowercase();
    let simple = match t.as_str() {
        "boolean" => Some(DataType::Boolean),
        "tinyint" => Some(DataType::Int8),
        "smallint" => Some(DataType::Int16),
        "int" | "integer" => Some(DataType::Int32),
        "bigint" => Some(DataType::Int64),
        "float" => Some(DataType::Float32),
        "double" | "double precision" => Some(DataType::Float64),
        "string" => Some(DataType::Utf8),
        "date" => Some(DataType::Date32),
        "timestamp" => Some(DataType::Timestamp(TimeUnit::Microsecond, None)),
        "decimal" => Some(DataType::Decimal128(10, 0)),
        _ => None,
    };
    if simple.is_some() {
        return simple;
    }
    if let Some(args) = t.strip_prefix("decimal(").and_then(|r| r.strip_suffix(')')) {
        let (p, s) = args.split_once(',').unwrap_or((args, "0"));
        let (p, s): (u8, i8) = (p.trim().parse().ok()?, s.trim().parse().ok()?);
        return (1..=38).contains(&p).then_some(DataType::Decimal128(p, s));
    }
    if t.starts_with("varchar(") || t.starts_with("char(") {
        return Some(DataType::Utf8);
    }
    if let Some(inner) = t.strip_prefix("array<").and_then(|r| r.strip_suffix('>')) {
        let item = hive_to_arrow(inner).unwrap_or(DataType::Null);
        return Some(DataType::List(Field::new("element", item, true).into()));
    }
    if t.starts_with("struct<") || t.starts_with("map<") || t.starts_with("uniontype<") {
        // Nested: represented, never read. The exact layout does not matter to a guard.
        return Some(DataType::Struct(Default::default()));
    }
    None
}

/// The Hive spelling of an Arrow type, for listing tables and registering them in a metastore.
pub fn arrow_to_hive(t: &DataType) -> String {
    use DataType::*;
    match t {
        Boolean => "boolean".into(),
        Int8 => "tinyint".into(),
        Int16 => "smallint".into(),
        Int32 => "int".into(),
        Int64 => "bigint".into(),
        UInt8 | UInt16 | UInt32 => "bigint".into(),
        UInt64 => "decimal(20,0)".into(),
        Float32 => "float".into(),
        Float64 => "double".into(),
        Utf8 | LargeUtf8 | Utf8View => "string".into(),
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => "binary".into(),
        Date32 | Date64 => "date".into(),
        Timestamp(_, _) => "timestamp".into(),
        Decimal128(p, s) => format!("decimal({p},{s})"),
        List(f) | LargeList(f) | ListView(f) | FixedSizeList(f, _) => {
            format!("array<{}>", arrow_to_hive(f.data_type()))
        }
        Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| format!("{}:{}", f.name(), arrow_to_hive(f.data_type())))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Dictionary(_, v) => arrow_to_hive(v),
        other => format!("{other}").to_ascii_lowercase(),
    }
}

/// Bytes a value of this type takes in memory, roughly; strings count as 32 bytes. Used by the
/// row-width guard, which only needs the order of magnitude.
pub fn estimated_width(t: &DataType) -> u64 {
    use DataType::*;
    match t {
        Boolean | Int8 | UInt8 => 1,
        Int16 | UInt16 => 2,
        Int32 | UInt32 | Float32 | Date32 => 4,
        Int64 | UInt64 | Float64 | Timestamp(_, _) | Date64 => 8,
        Decimal128(_, _) => 16,
        Utf8 | LargeUtf8 | Utf8View | Binary | LargeBinary => 32,
        _ => 64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_table_names() {
        let t: TableName = "Social.Referrals".parse().unwrap();
        assert_eq!(t.to_string(), "social.referrals");
        for bad in [
            "nodot",
            "a.b.c",
            ".t",
            "d.",
            "d.t; drop",
            "d.`t`",
            "../etc.passwd",
            "d.t/../../x",
            "d.t\\..",
            "..",
        ] {
            assert!(bad.parse::<TableName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn maps_hive_types() {
        assert_eq!(hive_to_arrow("BIGINT"), Some(DataType::Int64));
        assert_eq!(
            hive_to_arrow("decimal(12,2)"),
            Some(DataType::Decimal128(12, 2))
        );
        assert_eq!(
            hive_to_arrow("decimal( 38 , 10 )"),
            Some(DataType::Decimal128(38, 10))
        );
        assert_eq!(hive_to_arrow("varchar(20)"), Some(DataType::Utf8));
        assert!(matches!(
            hive_to_arrow("array<string>"),
            Some(DataType::List(_))
        ));
        assert!(matches!(
            hive_to_arrow("map<string,int>"),
            Some(DataType::Struct(_))
        ));
        assert_eq!(hive_to_arrow("interval_day_time"), None);
        assert_eq!(hive_to_arrow("decimal(99,2)"), None);
        assert!(!Column::from_hive("tags", "array<string>").is_scalar());
        assert!(Column::from_hive("ts", "timestamp").is_scalar());
    }

    #[test]
    fn hive_spelling_round_trips() {
        for h in [
            "bigint",
            "string",
            "decimal(12,2)",
            "timestamp",
            "double",
            "array<string>",
        ] {
            assert_eq!(arrow_to_hive(&hive_to_arrow(h).unwrap()), h);
        }
    }
}
