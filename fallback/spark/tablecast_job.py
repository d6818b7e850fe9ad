#!/usr/bin/env python3
"""Tablecast fallback job: computes APIs over tables with Spark and stages the results.

Shipped inside the `fallback` crate and written next to its job description at run time.
Its arguments are the paths or URLs of one or more job JSONs that `fallback::JobDescription`
serializes (see that type for the schema): a batch runs its jobs one after the other in one
Spark session, so that the session starts once; each job writes only its own output. The first
job that fails stops the batch (the ones after it do not run), and is named in the error line. User input never becomes code here: identifiers are
checked against `[A-Za-z_][A-Za-z0-9_]*`, types against a fixed list, literals arrive typed, and
the query is built with the DataFrame API only (no SQL text).

What it writes (the engine output contract of `publisher::engine`):
- Parquet part files in the job's output directory, globally sorted: rows clustered by key
  (ascending, nulls last) and, within a key, ordered by the spec's full order (nulls last);
  part files in name order continue each other. Columns `__k0..` (keys) then `__v0..`
  (outputs), cast to the spec's types.
- `_tablecast_stats.json` beside them: `{"rows_in": N}`, the rows read before filtering, as an
  observation of the input (re-executed stages, like the sampling of a global sort directly
  over the scan, can count rows twice; the engine prefers Parquet footers when it has files).

Semantics chosen to match the DataFusion fast track byte for byte after canonical encoding:
- ANSI mode off: integer `sum` wraps on overflow as DataFusion's does.
- `avg` over DECIMAL(p,s) truncates toward zero at scale s+4 (DataFusion's integer division),
  where Spark's own `avg` rounds half up; so it is computed here from sum and count, exactly.
- Session time zone UTC; timestamps written as INT64 microseconds; dates and timestamps read
  and written proleptic Gregorian (no rebasing), as Arrow does.

On failure it prints the traceback, then one line
`tablecast-job: ERROR job=<job id> step=<step>: <message>` (with the innermost Java cause) to
stderr, last, where a log tail sees it; and exits with status 2.
"""

import json
import re
import sys
import traceback
from decimal import Decimal
from functools import reduce

FORMAT_VERSION = 1
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
SIMPLE_TYPES = {"boolean", "tinyint", "smallint", "int", "bigint", "float", "double", "string", "date", "timestamp"}
DECIMAL_TYPE = re.compile(r"^decimal\((\d{1,2}),(\d{1,2})\)$")
FILTER_OPS = {"=", "!=", "<", "<=", ">", ">=", "in", "is_null", "not_null"}
AGGREGATES = {"count", "sum", "min", "max", "avg", "count_distinct"}
HIVE_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"

# Session settings that fix the semantics above; runtime SQL confs, set after the session starts.
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "false",
    "spark.sql.caseSensitive": "false",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.datetimeRebaseModeInRead": "CORRECTED",
    "spark.sql.parquet.datetimeRebaseModeInWrite": "CORRECTED",
    "spark.sql.parquet.int96RebaseModeInRead": "CORRECTED",
    "spark.sql.parquet.int96RebaseModeInWrite": "CORRECTED",
    "spark.sql.parquet.compression.codec": "snappy",
}


class JobError(Exception):
    pass


def ident(name, what):
    if not isinstance(name, str) or not IDENT.match(name):
        raise JobError(f"{what}: {name!r} is not a plain identifier")
    return name


def spark_type(t, what):
    if not isinstance(t, str):
        raise JobError(f"{what}: type {t!r} is not a string")
    if t in SIMPLE_TYPES:
        return t
    m = DECIMAL_TYPE.match(t)
    if m and 1 <= int(m.group(1)) <= 38 and int(m.group(2)) <= int(m.group(1)):
        return t
    raise JobError(f"{what}: unsupported type {t!r}")


def decimal_ps(t):
    m = DECIMAL_TYPE.match(t)
    return (int(m.group(1)), int(m.group(2))) if m else None


def read_text(spark, path):
    """The job file: a local path, or any URL Hadoop can open (hdfs://, file://)."""
    if "://" not in path:
        with open(path, "r", encoding="utf-8") as f:
            return f.read()
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    p = jvm.org.apache.hadoop.fs.Path(path)
    stream = p.getFileSystem(conf).open(p)
    try:
        return jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()


def write_text(spark, url, text):
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    p = jvm.org.apache.hadoop.fs.Path(url)
    out = p.getFileSystem(conf).create(p, True)
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()


def literal(F, lit, column_type, what):
    """A typed literal of the job JSON as a Spark column of the filtered column's type."""
    kind = lit.get("type")
    v = lit.get("value")
    if kind == "boolean" and isinstance(v, bool):
        return F.lit(v)
    if kind == "bigint" and isinstance(v, int) and not isinstance(v, bool):
        return F.lit(v).cast("bigint")
    if kind == "double" and isinstance(v, str):
        return F.lit(float(v)).cast("double")
    if kind == "string" and isinstance(v, str):
        return F.lit(v)
    if kind == "decimal" and isinstance(v, str):
        p, s = int(lit["precision"]), int(lit["scale"])
        return F.lit(Decimal(v)).cast(f"decimal({p},{s})")
    if kind == "date" and isinstance(v, int):
        return F.date_from_unix_date(F.lit(v))
    if kind == "timestamp" and isinstance(v, int):
        return F.timestamp_micros(F.lit(v).cast("bigint"))
    raise JobError(f"{what}: bad literal {lit!r} for a {column_type} column")


def filter_condition(F, f, types, what):
    col = F.col(ident(f["column"], what + ".column"))
    op = f["op"]
    if op not in FILTER_OPS:
        raise JobError(f"{what}: unknown operator {op!r}")
    t = types[f["column"]]
    lits = [literal(F, l, t, f"{what}.literals[{i}]") for i, l in enumerate(f.get("literals", []))]
    if op == "is_null":
        return col.isNull()
    if op == "not_null":
        return col.isNotNull()
    if op == "in":
        if not lits:
            raise JobError(f"{what}: `in` needs literals")
        return col.isin(*lits)
    if len(lits) != 1:
        raise JobError(f"{what}: {op} needs exactly one literal")
    lit = lits[0]
    return {
        "=": lambda: col == lit,
        "!=": lambda: col != lit,
        "<": lambda: col < lit,
        "<=": lambda: col <= lit,
        ">": lambda: col > lit,
        ">=": lambda: col >= lit,
    }[op]()


def read_input(spark, F, T, job):
    """The table's used columns, typed as the catalog says."""
    inp = job["input"]
    columns = job["columns"]
    kind = inp.get("kind")
    if kind == "catalog":
        db = ident(inp["db"], "input.db")
        table = ident(inp["table"], "input.table")
        if spark.conf.get("spark.sql.catalogImplementation", "in-memory") != "hive":
            raise JobError("input is a metastore table but the session has no Hive support "
                           "(spark.sql.catalogImplementation=hive was not passed)")
        df = spark.read.table(f"{db}.{table}")
        return df.select(*[F.col(c["name"]).cast(c["type"]).alias(c["name"]) for c in columns])
    if kind != "files":
        raise JobError(f"input: unknown kind {kind!r}")
    file_format = inp.get("format", "parquet")
    if file_format not in ("parquet", "orc"):
        raise JobError(f"input: unsupported file format {file_format!r}")

    data_cols = [c for c in columns if not c.get("partition_key")]
    part_keys = inp.get("partition_keys", [])
    for pk in part_keys:
        ident(pk["name"], "input.partition_keys.name")
        spark_type(pk["type"], "input.partition_keys.type")
    schema = T.StructType([T.StructField(c["name"], T._parse_datatype_string(c["type"]), True) for c in data_cols])

    def with_partition_values(df, values):
        for pk in part_keys:
            v = values[pk["index"]]
            if v == HIVE_NULL_PARTITION:
                v = None
            df = df.withColumn(pk["name"], F.lit(v).cast("string").cast(pk["type"]))
        return df

    groups = inp.get("groups", [])
    frames = []
    for g in groups:
        files = g["files"]
        if not files:
            continue
        reader = spark.read.schema(schema)
        # `orc(path, mergeSchema, …)` takes one argument for all paths; `parquet(*paths)` many.
        df = reader.orc(files) if file_format == "orc" else reader.parquet(*files)
        frames.append(with_partition_values(df, g.get("partition_values", [])))
    if not frames:
        # Nothing to read: an empty relation of the right schema, so that aggregates still answer.
        empty = spark.createDataFrame([], schema)
        for pk in part_keys:
            empty = empty.withColumn(pk["name"], F.lit(None).cast(pk["type"]))
        return empty
    return reduce(lambda a, b: a.unionByName(b), frames)


def decimal_avg_udf(F, T, in_scale, out_precision, out_scale):
    """DataFusion's decimal avg: trunc(sum * 10^(out_scale - in_scale) / count) at out_scale."""
    mul = 10 ** (out_scale - in_scale)

    def avg(total, count):
        if total is None or not count:
            return None
        sign, digits, exponent = total.as_tuple()
        unscaled = int("".join(map(str, digits)) or "0")
        shift = exponent + in_scale
        unscaled = unscaled * 10 ** shift if shift >= 0 else unscaled // 10 ** (-shift)
        q = (unscaled * mul) // count
        return Decimal(f"{'-' if sign and q else ''}{q}E-{out_scale}")

    return F.udf(avg, T.DecimalType(out_precision, out_scale))


def compute(spark, F, T, W, job, df):
    types = {c["name"]: spark_type(c["type"], f"columns[{c['name']}]") for c in job["columns"]}
    for i, f in enumerate(job.get("filters", [])):
        df = df.where(filter_condition(F, f, types, f"filters[{i}]"))

    keys = job["keys"]
    outputs = job["outputs"]
    for i, k in enumerate(keys):
        ident(k["name"], f"keys[{i}].name")
        spark_type(k["type"], f"keys[{i}].type")
    key_cols = [F.col(k["name"]).cast(k["type"]).alias(f"__k{i}") for i, k in enumerate(keys)]

    grouping = job.get("grouping")
    value_cols = []
    if grouping is not None:
        group_cols = [F.col(ident(g, "grouping")) for g in grouping]
        aggs = []
        finals = {}
        for i, o in enumerate(outputs):
            src = o["source"]
            out_type = spark_type(o["type"], f"outputs[{i}].type")
            if "agg" not in src:
                continue
            func = src["agg"]
            if func not in AGGREGATES:
                raise JobError(f"outputs[{i}]: unknown aggregate {func!r}")
            column = src.get("column")
            c = F.col(ident(column, f"outputs[{i}].source.column")) if column is not None else None
            if c is None and func != "count":
                raise JobError(f"outputs[{i}]: {func} needs a column")
            if func == "count":
                aggs.append((F.count(F.lit(1)) if c is None else F.count(c)).alias(f"__a{i}"))
            elif func == "count_distinct":
                aggs.append(F.countDistinct(c).alias(f"__a{i}"))
            elif func == "sum":
                aggs.append(F.sum(c).alias(f"__a{i}"))
            elif func == "min":
                aggs.append(F.min(c).alias(f"__a{i}"))
            elif func == "max":
                aggs.append(F.max(c).alias(f"__a{i}"))
            elif func == "avg":
                in_ps = decimal_ps(types[column])
                out_ps = decimal_ps(out_type)
                if in_ps and out_ps:
                    # Sum at the widest precision (DataFusion accumulates in DECIMAL(38, s)).
                    aggs.append(F.sum(c.cast(f"decimal(38,{in_ps[1]})")).alias(f"__s{i}"))
                    aggs.append(F.count(c).alias(f"__c{i}"))
                    udf = decimal_avg_udf(F, T, in_ps[1], out_ps[0], out_ps[1])
                    finals[i] = udf(F.col(f"__s{i}"), F.col(f"__c{i}"))
                else:
                    aggs.append(F.avg(c.cast("double")).alias(f"__a{i}"))
        if aggs:
            df = df.groupBy(*group_cols).agg(*aggs)
        else:
            df = df.select(*group_cols).distinct()
        for i, o in enumerate(outputs):
            src = o["source"]
            if "agg" in src:
                expr = finals[i] if i in finals else F.col(f"__a{i}")
            else:
                expr = F.col(ident(src["column"], f"outputs[{i}].source.column"))
            value_cols.append(expr.cast(o["type"]).alias(f"__v{i}"))
    else:
        for i, o in enumerate(outputs):
            src = o["source"]
            if "agg" in src:
                raise JobError(f"outputs[{i}]: an aggregate in a job that does not aggregate")
            spark_type(o["type"], f"outputs[{i}].type")
            value_cols.append(F.col(ident(src["column"], f"outputs[{i}].source.column")).cast(o["type"]).alias(f"__v{i}"))

    df = df.select(*key_cols, *value_cols)

    within = []
    for s in job["order"]:
        n = int(s["output"])
        if not 0 <= n < len(outputs):
            raise JobError(f"order: output {n} out of range")
        c = F.col(f"__v{n}")
        within.append(c.desc_nulls_last() if s.get("descending") else c.asc_nulls_last())
    key_order = [F.col(f"__k{i}").asc_nulls_last() for i in range(len(keys))]

    limit = job.get("limit")
    if limit is not None:
        limit = int(limit)
        if limit < 1:
            raise JobError(f"limit {limit} must be at least 1")
        if keys:
            w = W.partitionBy(*[F.col(f"__k{i}") for i in range(len(keys))]).orderBy(*within)
            df = df.withColumn("__rn", F.row_number().over(w)).where(F.col("__rn") <= F.lit(limit)).drop("__rn")
        else:
            df = df.orderBy(*within).limit(limit)
    # A global sort: range-partitioned part files, each in order, continuing each other.
    return df.orderBy(*key_order, *within)


def root_cause(e):
    """The innermost Java exception behind a Py4J or captured Spark error, as one line."""
    j = getattr(e, "java_exception", None) or getattr(e, "_origin", None)
    if j is None:
        return None
    try:
        for _ in range(20):
            cause = j.getCause()
            if cause is None or cause.equals(j):
                break
            j = cause
        text = str(j.toString()).strip()
        return text.splitlines()[0] if text else None
    except Exception:  # noqa: BLE001 - best effort
        return None


def run_job(spark, path, mark):
    """Computes one job of the batch; `mark(step, job_id)` records where it is, for errors."""
    from pyspark.sql import Observation, Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    mark("read job", path)
    job = json.loads(read_text(spark, path))
    if job.get("format") != FORMAT_VERSION:
        raise JobError(f"job format {job.get('format')!r}, this program reads {FORMAT_VERSION}")
    job_id = job.get("job_id")
    for c in job["columns"]:
        ident(c["name"], "columns.name")
        spark_type(c["type"], f"columns[{c['name']}].type")
    out = job["output"]["path"]
    print(f"tablecast-job: job {job_id} api {job.get('api')} table {job.get('table')}", file=sys.stderr)

    mark("read input", job_id)
    df = read_input(spark, F, T, job)
    observed = Observation(f"tablecast_input_{re.sub(r'[^A-Za-z0-9_]', '_', str(job_id))}")
    df = df.observe(observed, F.count(F.lit(1)).alias("rows"))

    mark("plan", job_id)
    result = compute(spark, F, T, Window, job, df)

    mark("write", job_id)
    result.write.mode("errorifexists").parquet(out)

    mark("stats", job_id)
    try:
        rows_in = int(observed.get.get("rows", 0))
    except Exception:  # noqa: BLE001 - statistics are best effort
        rows_in = None
    write_text(spark, out.rstrip("/") + "/_tablecast_stats.json", json.dumps({"rows_in": rows_in}))
    print(f"tablecast-job: job {job_id} done, {rows_in} rows in", file=sys.stderr)


def main(argv):
    if len(argv) < 2:
        print("usage: tablecast_job.py JOB_JSON [JOB_JSON ...]", file=sys.stderr)
        return 64
    where = {"step": "start", "job": argv[1]}

    def mark(step, job):
        where["step"], where["job"] = step, job

    try:
        from pyspark.sql import SparkSession

        mark("session", argv[1])
        spark = SparkSession.builder.getOrCreate()
        for k, v in SESSION_CONF.items():
            spark.conf.set(k, v)
        for path in argv[1:]:
            run_job(spark, path, mark)
        spark.stop()
        return 0
    except Exception as e:  # noqa: BLE001 - every failure is reported with its job and step
        # The traceback (with any Java stack) first; the summary last, where a log tail sees it.
        traceback.print_exc()
        text = str(e).strip()
        message = text.splitlines()[0] if text else type(e).__name__
        cause = root_cause(e)
        prefix = f"tablecast-job: ERROR job={where['job']} step={where['step']}"
        if cause and type(e).__name__ == "Py4JJavaError":
            # "An error occurred while calling o145.parquet" says nothing; the Java cause does.
            line = f"{prefix}: {cause}"
        else:
            line = f"{prefix}: {type(e).__name__}: {message}"
            if cause and cause not in line:
                line += f"; cause: {cause}"
        print(line[:2000], file=sys.stderr)
        return 2

if __name__ == "__main__":
    sys.exit(main(sys.argv))
