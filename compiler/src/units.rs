//! Durations, quantities and image references: parsing, validation and canonical text.

use std::fmt;

/// A length of time, to the millisecond. Written `30s`, `10m`, `1h30m`, `500ms`, `2d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    pub millis: u64,
}

impl Duration {
    pub const fn from_secs(s: u64) -> Duration {
        Duration { millis: s * 1000 }
    }

    pub const fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.millis)
    }

    /// Parses `1h30m`-style text. The error says what is wrong in words.
    pub fn parse(text: &str) -> Result<Duration, String> {
        if text.is_empty() {
            return Err("a duration cannot be empty".into());
        }
        let bytes = text.as_bytes();
        let mut i = 0;
        let mut total: f64 = 0.0;
        let mut last_rank = usize::MAX;
        while i < bytes.len() {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                i += 1;
            }
            if start == i {
                return Err(format!("expected a number at `{}`", &text[start..]));
            }
            let number: f64 = text[start..i]
                .parse()
                .map_err(|_| format!("`{}` is not a number", &text[start..i]))?;
            let ustart = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            let unit = &text[ustart..i];
            let (rank, millis) = match unit {
                "d" => (0, 86_400_000.0),
                "h" => (1, 3_600_000.0),
                "m" => (2, 60_000.0),
                "s" => (3, 1_000.0),
                "ms" => (4, 1.0),
                "" => return Err("a duration needs a unit: ms, s, m, h or d (e.g. `30s`)".into()),
                other => {
                    return Err(format!(
                        "`{other}` is not a unit of time; use ms, s, m, h or d"
                    ))
                }
            };
            if rank <= last_rank && last_rank != usize::MAX {
                return Err(
                    "units must go from largest to smallest, each once (e.g. `1h30m`)".into(),
                );
            }
            last_rank = rank;
            total += number * millis;
        }
        if total > crate::limits::MAX_DURATION.millis as f64 {
            return Err("a duration longer than a year is surely a mistake".into());
        }
        Ok(Duration {
            millis: total.round() as u64,
        })
    }
}

impl fmt::Display for Duration {
    /// Canonical text: hours, minutes, seconds, milliseconds, each only when non-zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.millis;
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

const QUANTITY_SUFFIXES: [&str; 14] = [
    "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
];

/// Checks a Kubernetes quantity (`500m`, `2`, `1.5`, `256Mi`, `1Gi`); the error suggests a fix.
pub fn check_quantity(text: &str) -> Result<(), (String, Option<String>)> {
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits_end);
    if number.is_empty() || number.parse::<f64>().is_err() || number.starts_with('.') {
        return Err((format!("`{text}` does not start with a number"), None));
    }
    if QUANTITY_SUFFIXES.contains(&suffix) {
        return Ok(());
    }
    let suggestion = match suffix {
        "KB" | "kB" | "KiB" | "K" => Some("Ki"),
        "MB" | "MiB" => Some("Mi"),
        "GB" | "GiB" | "g" => Some("Gi"),
        "TB" | "TiB" => Some("Ti"),
        "mi" => Some("Mi"),
        "gi" => Some("Gi"),
        _ => None,
    };
    Err((
        format!("`{suffix}` is not a quantity suffix"),
        suggestion.map(|s| format!("{number}{s}")),
    ))
}

/// Checks an OCI image reference: `[registry[:port]/]path[:tag][@digest]`, path in lower case.
pub fn check_image(image: &str) -> Result<(), String> {
    if image.is_empty() {
        return Err("an image cannot be empty".into());
    }
    if image.chars().any(|c| c.is_whitespace()) {
        if let Some((n, t)) = image.split_once(' ') {
            if !t.contains(' ') && !n.contains(':') {
                return Err(format!(
                    "an image reference cannot contain spaces; did you mean `{n}:{t}`?"
                ));
            }
        }
        return Err("an image reference cannot contain spaces".into());
    }
    let (name_tag, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let ok = d.split_once(':').is_some_and(|(algo, hex)| {
            !algo.is_empty()
                && algo
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
                && hex.len() >= 32
                && hex.chars().all(|c| c.is_ascii_hexdigit())
        });
        if !ok {
            return Err(format!(
                "`@{d}` is not a digest such as `@sha256:<64 hex digits>`"
            ));
        }
    }
    // A tag follows the last `:` that comes after the last `/` (a registry port comes before it).
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_tag[..last_slash + i],
            Some(&name_tag[last_slash + i + 1..]),
        ),
        None => (name_tag, None),
    };
    if let Some(tag) = tag {
        if tag.is_empty() {
            return Err(format!(
                "the tag after `:` is empty: write `{name}` or `{name}:TAG`"
            ));
        }
        let valid = !tag.is_empty()
            && tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !valid {
            return Err(format!(
                "`{tag}` is not a valid tag (letters, digits, `_`, `.`, `-`)"
            ));
        }
    }
    let mut components: Vec<&str> = name.split('/').collect();
    // The first component is a registry when it has a `.` or `:` or is `localhost`.
    if components.len() > 1 {
        let first = components[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            let host = first.split(':').next().unwrap_or("");
            if host.is_empty()
                || !host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            {
                return Err(format!("`{first}` is not a registry host"));
            }
            components.remove(0);
        }
    }
    for c in components {
        if c.is_empty() {
            return Err("an image path cannot have an empty part (`//` or a trailing `/`)".into());
        }
        if c.chars().any(|ch| ch.is_ascii_uppercase()) {
            return Err("image names must be lower case".into());
        }
        let valid = c.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
            && c.ends_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
            && c.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch));
        if !valid {
            return Err(format!(
                "`{c}` is not a valid image name part (lower-case letters, digits, `.`, `_`, `-`)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for (text, ms, canon) in [
            ("30s", 30_000, "30s"),
            ("1h30m", 5_400_000, "1h30m"),
            ("90m", 5_400_000, "1h30m"),
            ("500ms", 500, "500ms"),
            ("2d", 172_800_000, "48h"),
            ("1.5h", 5_400_000, "1h30m"),
        ] {
            let d = Duration::parse(text).unwrap();
            assert_eq!(d.millis, ms, "{text}");
            assert_eq!(d.to_string(), canon);
            assert_eq!(Duration::parse(canon).unwrap(), d);
        }
        for bad in ["10", "10x", "m", "30m1h", "1h1h", "", "400d"] {
            assert!(Duration::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn quantities() {
        for ok in ["500m", "2", "1.5", "256Mi", "1Gi", "100k"] {
            assert!(check_quantity(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            check_quantity("256MB").unwrap_err().1.as_deref(),
            Some("256Mi")
        );
        assert!(check_quantity("Mi").is_err());
        assert!(check_quantity("1x").is_err());
    }

    #[test]
    fn images() {
        for ok in [
            "busybox",
            "busybox:1.36",
            "ghcr.io/acme/etl:1.4",
            "localhost:5000/a/b",
            "registry.example.com:443/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(check_image(ok).is_ok(), "{ok}: {:?}", check_image(ok));
        }
        for bad in ["Busybox", "busy box", "a//b", "a:", "-a", "a@sha256:xyz"] {
            assert!(check_image(bad).is_err(), "{bad}");
        }
    }
}
