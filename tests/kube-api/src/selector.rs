//! Label and field selectors, as the API server parses them: `a=b`, `a==b`, `a!=b`,
//! `a in (x,y)`, `a notin (x)`, `a`, `!a`, joined by commas. Field selectors take the equality
//! forms only, over the field labels a kind supports.

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

#[derive(Clone, Debug, PartialEq)]
struct Requirement {
    key: String,
    op: Op,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Selector {
    reqs: Vec<Requirement>,
}

impl Selector {
    pub fn everything() -> Self {
        Selector::default()
    }

    /// Parses a label selector.
    pub fn labels(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for term in split_top_level(s) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            reqs.push(parse_term(term)?);
        }
        Ok(Selector { reqs })
    }

    /// Parses a field selector over the given field labels.
    pub fn fields(s: &str, supported: &[&str]) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for term in s.split(',') {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let (key, op) = if let Some((k, v)) = term.split_once("!=") {
                (k, Op::NotEq(v.trim().to_string()))
            } else if let Some((k, v)) = term.split_once("==") {
                (k, Op::Eq(v.trim().to_string()))
            } else if let Some((k, v)) = term.split_once('=') {
                (k, Op::Eq(v.trim().to_string()))
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                ));
            };
            let key = key.trim();
            if !supported.contains(&key) {
                return Err(format!("field label not supported: {key}"));
            }
            reqs.push(Requirement {
                key: key.to_string(),
                op,
            });
        }
        Ok(Selector { reqs })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.reqs.iter().all(|r| {
            let value = labels.get(&r.key);
            match &r.op {
                Op::Eq(v) => value == Some(v),
                Op::NotEq(v) => value != Some(v),
                Op::In(vs) => value.is_some_and(|x| vs.contains(x)),
                Op::NotIn(vs) => value.is_none_or(|x| !vs.contains(x)),
                Op::Exists => value.is_some(),
                Op::NotExists => value.is_none(),
            }
        })
    }
}

/// Splits at commas outside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_term(term: &str) -> Result<Requirement, String> {
    let bad = || format!("unable to parse requirement: found '{term}', expected a valid selector");
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement {
            key: valid_key(key.trim()).ok_or_else(bad)?,
            op: Op::NotExists,
        });
    }
    if let Some(open) = term.find('(') {
        let inner = term[open + 1..].strip_suffix(')').ok_or_else(bad)?;
        let lhs: Vec<&str> = term[..open].split_whitespace().collect();
        let [key, op] = lhs[..] else {
            return Err(bad());
        };
        let values = inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        let op = match op {
            "in" => Op::In(values),
            "notin" => Op::NotIn(values),
            _ => return Err(bad()),
        };
        return Ok(Requirement {
            key: valid_key(key).ok_or_else(bad)?,
            op,
        });
    }
    let (key, op) = if let Some((k, v)) = term.split_once("!=") {
        (k, Op::NotEq(v.trim().to_string()))
    } else if let Some((k, v)) = term.split_once("==") {
        (k, Op::Eq(v.trim().to_string()))
    } else if let Some((k, v)) = term.split_once('=') {
        (k, Op::Eq(v.trim().to_string()))
    } else {
        (term, Op::Exists)
    };
    Ok(Requirement {
        key: valid_key(key.trim()).ok_or_else(bad)?,
        op,
    })
}

fn valid_key(key: &str) -> Option<String> {
    (!key.is_empty() && !key.contains(char::is_whitespace)).then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn equality_and_sets() {
        let l = labels(&[("chainr.io/run", "r1"), ("tier", "a")]);
        assert!(Selector::labels("chainr.io/run=r1").unwrap().matches(&l));
        assert!(Selector::labels("chainr.io/run==r1,tier=a")
            .unwrap()
            .matches(&l));
        assert!(!Selector::labels("chainr.io/run=r2").unwrap().matches(&l));
        assert!(Selector::labels("tier in (a, b),x notin (y)")
            .unwrap()
            .matches(&l));
        assert!(!Selector::labels("tier notin (a)").unwrap().matches(&l));
        assert!(Selector::labels("tier,!missing").unwrap().matches(&l));
        assert!(Selector::labels("missing!=x").unwrap().matches(&l));
        assert!(Selector::labels("").unwrap().matches(&l));
        assert!(Selector::labels("a in b").is_err());
    }

    #[test]
    fn fields() {
        let f = labels(&[("metadata.name", "x"), ("status.phase", "Running")]);
        let s = Selector::fields(
            "metadata.name=x,status.phase!=Pending",
            &["metadata.name", "status.phase"],
        );
        assert!(s.unwrap().matches(&f));
        assert!(Selector::fields("spec.foo=x", &["metadata.name"]).is_err());
    }
}
