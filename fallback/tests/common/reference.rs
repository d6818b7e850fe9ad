//! The test specs over `social.sales` and their answers, computed independently of any engine
//! from [`rows`](super::rows) in plain Rust.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::*;

pub const TOP_PRODUCTS: &str = r#"
    name = "top_products"
    table = "social.sales"
    key = ["network"]
    group_by = ["product_id"]
    limit = 3
    values = [
        { column = "product_id" },
        { agg = "sum", column = "referrals", as = "refs" },
    ]
    order_by = [{ field = "refs", dir = "desc" }]
    filter = [{ column = "ts", op = ">=", value = "2025-11-01T05:00:00Z" }]
"#;

pub const RECENT: &str = r#"
    name = "recent"
    table = "social.sales"
    key = ["product_id"]
    limit = 2
    values = [{ column = "ts" }, { column = "network" }, { column = "revenue" }, { column = "dt" }]
    order_by = [{ field = "ts", dir = "desc" }]
"#;

pub const NETWORK_STATS: &str = r#"
    name = "network_stats"
    table = "social.sales"
    key = ["network"]
    shape = "object"
    values = [
        { agg = "count", as = "n" },
        { agg = "count", column = "referrals", as = "n_refs" },
        { agg = "sum", column = "revenue", as = "revenue" },
        { agg = "count_distinct", column = "product_id", as = "products" },
        { agg = "max", column = "ts", as = "last_ts" },
        { agg = "avg", column = "revenue", as = "avg_revenue" },
        { agg = "avg", column = "referrals", as = "avg_refs" },
        { agg = "min", column = "product_id", as = "first_product" },
    ]
"#;

pub const GLOBAL_TOP: &str = r#"
    name = "global_top"
    table = "social.sales"
    limit = 5
    values = [{ column = "product_id" }, { column = "network" }, { column = "referrals" }, { column = "revenue" }]
    order_by = [{ field = "referrals", dir = "desc" }]
    filter = [
        { column = "referrals", op = ">=", value = 10 },
        { column = "network", op = "in", value = ["twitter", "日本", "a/b"] },
        { column = "ts", op = "<", value = "2025-11-03T00:00:00Z" },
        { column = "revenue", op = ">", value = "-50.00" },
        { column = "dt", op = "!=", value = "2025-11-01" },
    ]
"#;

fn sorted_keys<K: Clone + Ord>(keys: impl Iterator<Item = Option<K>>) -> Vec<Option<K>> {
    let mut keys: Vec<Option<K>> = keys.collect::<BTreeSet<_>>().into_iter().collect();
    keys.sort_by(|a, b| cmp_nulls_last(a, b, false));
    keys
}

pub fn expect_top_products(rows: &[Row]) -> Vec<String> {
    let min_ts = BASE_MICROS + 5 * 3_600_000_000;
    let mut sums: BTreeMap<(Option<String>, Option<i64>), Option<i64>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.ts.is_some_and(|t| t >= min_ts)) {
        let e = sums
            .entry((r.network.clone(), r.product_id))
            .or_insert(None);
        if let Some(x) = r.referrals {
            *e = Some(e.unwrap_or(0) + x);
        }
    }
    // network → [(product_id, refs)]
    type Items = Vec<(Option<i64>, Option<i64>)>;
    let mut by_net: HashMap<Option<String>, Items> = HashMap::new();
    for ((net, pid), refs) in sums {
        by_net.entry(net).or_default().push((pid, refs));
    }
    sorted_keys(by_net.keys().cloned())
        .into_iter()
        .map(|net| {
            let mut items = by_net[&net].clone();
            items.sort_by(|a, b| {
                cmp_nulls_last(&a.1, &b.1, true).then(cmp_nulls_last(&a.0, &b.0, false))
            });
            let value: Vec<String> = items
                .iter()
                .take(3)
                .map(|(p, s)| format!("{{\"product_id\":{},\"refs\":{}}}", j_int(*p), j_int(*s)))
                .collect();
            format!("[{}] [{}]", j_str(&net), value.join(","))
        })
        .collect()
}

pub fn expect_recent(rows: &[Row]) -> Vec<String> {
    let mut by_pid: HashMap<Option<i64>, Vec<&Row>> = HashMap::new();
    for r in rows {
        by_pid.entry(r.product_id).or_default().push(r);
    }
    sorted_keys(by_pid.keys().cloned())
        .into_iter()
        .map(|pid| {
            let mut items = by_pid[&pid].clone();
            items.sort_by(|a, b| {
                cmp_nulls_last(&a.ts, &b.ts, true)
                    .then(cmp_nulls_last(&a.network, &b.network, false))
                    .then(cmp_nulls_last(&a.revenue, &b.revenue, false))
                    .then(a.dt.cmp(&b.dt))
            });
            let value: Vec<String> = items
                .iter()
                .take(2)
                .map(|r| {
                    format!(
                        "{{\"ts\":{},\"network\":{},\"revenue\":{},\"dt\":{}}}",
                        j_ts(r.ts),
                        j_str(&r.network),
                        j_dec(r.revenue, 2),
                        j_str(&Some(r.dt.clone()))
                    )
                })
                .collect();
            format!("[{}] [{}]", j_int(pid), value.join(","))
        })
        .collect()
}

pub fn expect_network_stats(rows: &[Row]) -> Vec<String> {
    let mut by_net: HashMap<Option<String>, Vec<&Row>> = HashMap::new();
    for r in rows {
        by_net.entry(r.network.clone()).or_default().push(r);
    }
    sorted_keys(by_net.keys().cloned())
        .into_iter()
        .map(|net| {
            let g = &by_net[&net];
            let refs: Vec<i64> = g.iter().filter_map(|r| r.referrals).collect();
            let revs: Vec<i128> = g.iter().filter_map(|r| r.revenue).collect();
            let rev_sum = (!revs.is_empty()).then(|| revs.iter().sum::<i128>());
            // DECIMAL(12,2) avg → DECIMAL(16,6), truncated toward zero.
            let avg_rev = rev_sum.map(|s| s * 10_000 / revs.len() as i128);
            let avg_refs = (!refs.is_empty()).then(|| refs.iter().sum::<i64>() as f64 / refs.len() as f64);
            let products: BTreeSet<i64> = g.iter().filter_map(|r| r.product_id).collect();
            let value = format!(
                "{{\"n\":{},\"n_refs\":{},\"revenue\":{},\"products\":{},\"last_ts\":{},\"avg_revenue\":{},\"avg_refs\":{},\"first_product\":{}}}",
                g.len(),
                refs.len(),
                j_dec(rev_sum, 2),
                products.len(),
                j_ts(g.iter().filter_map(|r| r.ts).max()),
                j_dec(avg_rev, 6),
                j_f64(avg_refs),
                j_int(g.iter().filter_map(|r| r.product_id).min()),
            );
            format!("[{}] {value}", j_str(&net))
        })
        .collect()
}

pub fn expect_global_top(rows: &[Row]) -> Vec<String> {
    let nets = ["twitter", "日本", "a/b"];
    let max_ts = BASE_MICROS + 48 * 3_600_000_000;
    let mut items: Vec<&Row> = rows
        .iter()
        .filter(|r| r.referrals.is_some_and(|x| x >= 10))
        .filter(|r| r.network.as_deref().is_some_and(|n| nets.contains(&n)))
        .filter(|r| r.ts.is_some_and(|t| t < max_ts))
        .filter(|r| r.revenue.is_some_and(|v| v > -5000))
        .filter(|r| r.dt != "2025-11-01")
        .collect();
    items.sort_by(|a, b| {
        cmp_nulls_last(&a.referrals, &b.referrals, true)
            .then(cmp_nulls_last(&a.product_id, &b.product_id, false))
            .then(cmp_nulls_last(&a.network, &b.network, false))
            .then(cmp_nulls_last(&a.revenue, &b.revenue, false))
    });
    let value: Vec<String> = items
        .iter()
        .take(5)
        .map(|r| {
            format!(
                "{{\"product_id\":{},\"network\":{},\"referrals\":{},\"revenue\":{}}}",
                j_int(r.product_id),
                j_str(&r.network),
                j_int(r.referrals),
                j_dec(r.revenue, 2)
            )
        })
        .collect();
    vec![format!("[] [{}]", value.join(","))]
}
