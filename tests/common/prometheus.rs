//! A strict reader of the Prometheus text exposition format (version 0.0.4),
//! so tests check `/metrics` as a scraper reads it: every sample belongs to a
//! family declared by `# HELP` and `# TYPE` before it, names and labels have
//! the allowed characters, label values are quoted with the allowed escapes,
//! no sample repeats, counters end in `_total` and never go negative, and a
//! histogram's buckets rise with `le` up to `+Inf`, which equals its `_count`.

use std::collections::{BTreeMap, BTreeSet};

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of `text`, or the first way it breaks the format (with its line).
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = BTreeSet::new();
    let mut samples = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let fail = |why: &str| Err(format!("line {}: {why}: `{line}`", i + 1));
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            if !is_name(name) || !helped.insert(name.to_string()) {
                return fail("bad or repeated HELP");
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (Some(name), Some(kind), None) = (parts.next(), parts.next(), parts.next()) else {
                return fail("TYPE needs a name and a type");
            };
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return fail("unknown type");
            }
            if !is_name(name) || types.insert(name.to_string(), kind.to_string()).is_some() {
                return fail("bad or repeated TYPE");
            }
            if kind == "counter" && !name.ends_with("_total") {
                return fail("a counter's name ends in `_total`");
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let sample = match sample(line) {
            Ok(s) => s,
            Err(why) => return fail(&why),
        };
        let family = family_of(&sample.name, &types);
        let Some(kind) = family.and_then(|f| types.get(f)) else {
            return fail("a sample of no declared family");
        };
        if !helped.contains(family.unwrap_or_default()) {
            return fail("a family without HELP");
        }
        if kind == "counter" && sample.value < 0.0 {
            return fail("a negative counter");
        }
        if !seen.insert((sample.name.clone(), sample.labels.clone())) {
            return fail("a repeated sample");
        }
        samples.push(sample);
    }
    check_histograms(&samples, &types)?;
    Ok(samples)
}

/// The value of the sample `name` with exactly `labels`.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label(s: &str) -> bool {
    is_name(s) && !s.contains(':') && !s.starts_with("__")
}

/// The declared family a sample belongs to (a histogram's `_bucket`, `_sum`
/// and `_count` belong to the histogram).
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .filter_map(|suffix| name.strip_suffix(suffix))
        .find(|base| {
            types
                .get(*base)
                .is_some_and(|k| k == "histogram" || k == "summary")
        })
}

fn sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("a sample needs a value")?;
    let name = &line[..name_end];
    if !is_name(name) {
        return Err("bad metric name".into());
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find('=').ok_or("a label needs `=`")?;
            let label = &rest[..eq];
            if !is_label(label) {
                return Err(format!("bad label name `{label}`"));
            }
            let mut value = String::new();
            let mut chars = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or("a label value is quoted")?
                .char_indices();
            let quoted = &rest[eq + 2..];
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        _ => return Err("a label value escapes only `\\`, `\"` and `n`".into()),
                    },
                    Some((at, '"')) => break at,
                    Some((_, '\n')) | None => return Err("an unterminated label value".into()),
                    Some((_, c)) => value.push(c),
                }
            };
            if labels.insert(label.to_string(), value).is_some() {
                return Err(format!("label `{label}` twice"));
            }
            rest = &quoted[end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    let mut fields = rest
        .strip_prefix(' ')
        .ok_or("a space before the value")?
        .split(' ');
    let value = fields.next().ok_or("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| format!("`{v}` is no number"))?,
    };
    if let Some(ts) = fields.next()
        && ts.parse::<i64>().is_err()
    {
        return Err(format!("`{ts}` is no timestamp"));
    }
    if fields.next().is_some() {
        return Err("more than a value and a timestamp".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn check_histograms(samples: &[Sample], types: &BTreeMap<String, String>) -> Result<(), String> {
    for (family, _) in types.iter().filter(|(_, k)| *k == "histogram") {
        // Buckets grouped by their other labels.
        let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
        for s in samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
        {
            let mut rest = s.labels.clone();
            let le = rest
                .remove("le")
                .ok_or_else(|| format!("`{family}_bucket` without `le`"))?;
            let le: f64 = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse()
                    .map_err(|_| format!("`le=\"{le}\"` is no number"))?
            };
            series.entry(rest).or_default().push((le, s.value));
        }
        if series.is_empty() {
            return Err(format!("histogram `{family}` has no buckets"));
        }
        for (labels, buckets) in series {
            let rising = buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
            if !rising {
                return Err(format!("`{family}` buckets do not rise: {buckets:?}"));
            }
            let Some(&(last, inf)) = buckets.last().filter(|(le, _)| le.is_infinite()) else {
                return Err(format!("`{family}` has no `+Inf` bucket"));
            };
            let count = samples
                .iter()
                .find(|s| s.name == format!("{family}_count") && s.labels == labels)
                .map(|s| s.value);
            let sum = samples
                .iter()
                .any(|s| s.name == format!("{family}_sum") && s.labels == labels);
            if count != Some(inf) || !sum || !last.is_infinite() {
                return Err(format!(
                    "`{family}`: `+Inf` bucket {inf} needs an equal `_count` ({count:?}) and a `_sum`"
                ));
            }
        }
    }
    Ok(())
}
