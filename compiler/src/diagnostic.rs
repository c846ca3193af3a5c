//! Diagnostics: what the compiler found wrong, independent of how it is shown.
//!
//! Each problem is a value with a stable code, a primary label, optional secondary labels, a
//! `help:` and, where a single edit fixes it, a machine-applicable fix (used by editors).
//! [`render`] turns them into the rustc-like text of codespan-reporting.

use crate::syntax::Span;
use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Label {
    pub span: Span,
    pub message: String,
    pub primary: bool,
}

/// One edit that fixes the problem: replace `span` with `replacement`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fix {
    pub span: Span,
    pub replacement: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable code such as `E0100`; listed in docs/language.md.
    pub code: &'static str,
    pub message: String,
    pub labels: Vec<Label>,
    pub help: Option<String>,
    pub notes: Vec<String>,
    pub fix: Option<Fix>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            labels: Vec::new(),
            help: None,
            notes: Vec::new(),
            fix: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn primary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            span,
            message: message.into(),
            primary: true,
        });
        self
    }

    pub fn secondary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            span,
            message: message.into(),
            primary: false,
        });
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    pub fn fix(mut self, span: Span, replacement: impl Into<String>) -> Diagnostic {
        self.fix = Some(Fix {
            span,
            replacement: replacement.into(),
        });
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The span of the primary label, if the diagnostic has one.
    pub fn primary_span(&self) -> Option<Span> {
        self.labels.iter().find(|l| l.primary).map(|l| l.span)
    }

    fn to_codespan(&self) -> cs::Diagnostic<()> {
        let base = match self.severity {
            Severity::Error => cs::Diagnostic::error(),
            Severity::Warning => cs::Diagnostic::warning(),
        };
        let labels = self
            .labels
            .iter()
            .map(|l| {
                let style = if l.primary {
                    cs::LabelStyle::Primary
                } else {
                    cs::LabelStyle::Secondary
                };
                cs::Label::new(style, (), l.span.range()).with_message(&l.message)
            })
            .collect();
        let mut notes: Vec<String> = self.notes.clone();
        if let Some(help) = &self.help {
            notes.push(format!("help: {help}"));
        }
        base.with_code(self.code)
            .with_message(&self.message)
            .with_labels(labels)
            .with_notes(notes)
    }
}

/// Sorts diagnostics by position (errors before warnings at the same place) and drops repeats,
/// which fan-out produces when every instance has the same mistake.
pub fn normalize(diags: &mut Vec<Diagnostic>) {
    diags.sort_by_key(|d| {
        (
            d.primary_span().map(|s| (s.start, s.end)),
            d.severity,
            d.code,
        )
    });
    diags.dedup();
}

/// Renders diagnostics as text, with ANSI colours when `color` is true.
pub fn render(diags: &[Diagnostic], file_name: &str, source: &str, color: bool) -> String {
    let mut out = Vec::new();
    render_to(&mut out, diags, file_name, source, color);
    String::from_utf8_lossy(&out).into_owned()
}

/// Renders diagnostics into a byte sink; see [`render`].
pub fn render_to(
    out: &mut Vec<u8>,
    diags: &[Diagnostic],
    file_name: &str,
    source: &str,
    color: bool,
) {
    let file = SimpleFile::new(file_name, source);
    let config = term::Config::default();
    for d in diags {
        let diagnostic = d.to_codespan();
        // Rendering only fails when a span lies outside the file, which would be a compiler bug;
        // the message itself must still reach the user.
        let ok = if color {
            let mut writer = term::termcolor::Ansi::new(&mut *out);
            term::emit_to_write_style(&mut writer, &config, &file, &diagnostic).is_ok()
        } else {
            term::emit_to_io_write(&mut *out, &config, &file, &diagnostic).is_ok()
        };
        if !ok {
            out.extend_from_slice(format!("{}[{}]: {}\n", level(d), d.code, d.message).as_bytes());
        }
    }
}

fn level(d: &Diagnostic) -> &'static str {
    match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// The closest candidate by edit distance (with transpositions: `jbo` is one edit from `job`), or
/// one that contains the name or is contained in it (`sha` for `git_sha`), if it is close enough
/// to be a likely typo.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = name.to_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        if c == name {
            continue;
        }
        let cl = c.to_lowercase();
        let dist = strsim::osa_distance(&lower, &cl);
        let limit = (name.chars().count().max(c.chars().count()) / 3).max(1);
        // A part of a longer name counts when it is a whole segment of it (`sha` in `git_sha`).
        let segment = (lower.len() >= 3
            && cl.len() > lower.len()
            && cl
                .split(['_', '-'])
                .any(|seg| seg == lower || cl.ends_with(&lower) || cl.starts_with(&lower)))
            || (cl.len() >= 3 && lower.starts_with(&cl));
        // A long shared beginning (`retry` for `retries`).
        let prefix = lower
            .chars()
            .zip(cl.chars())
            .take_while(|(a, b)| a == b)
            .count();
        let stem = prefix >= 4 && prefix * 2 >= lower.chars().count().max(cl.chars().count());
        let score = if dist <= limit {
            dist
        } else if segment || stem {
            limit + 1
        } else {
            continue;
        };
        if best.is_none_or(|(b, _)| score < b) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("jbo", ["job", "param"]), Some("job"));
        assert_eq!(did_you_mean("elt", ["etl", "load"]), Some("etl"));
        assert_eq!(did_you_mean("sha", ["git_sha", "date"]), Some("git_sha"));
        assert_eq!(did_you_mean("imag", ["image", "run"]), Some("image"));
        assert_eq!(did_you_mean("deploy", ["build", "test"]), None);
        assert_eq!(did_you_mean("x", ["y"]), Some("y"));
        assert_eq!(did_you_mean("ab", ["xyz"]), None);
        assert_eq!(
            did_you_mean("integer", ["string", "int", "bool"]),
            Some("int")
        );
    }
}
