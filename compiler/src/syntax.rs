//! The syntax tree of a `.chainr` file: what the parser produces, with a byte span on every node.

use std::fmt;

/// A byte range in the source text, `start..end`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// The span of the one character at `offset` (empty at the end of the text).
    pub fn char_at(src: &str, offset: usize) -> Span {
        let mut start = offset.min(src.len());
        while !src.is_char_boundary(start) {
            start -= 1;
        }
        let len = src[start..].chars().next().map_or(0, char::len_utf8);
        Span::new(start, start + len)
    }

    pub fn contains(self, offset: usize) -> bool {
        (self.start as usize) <= offset && offset <= (self.end as usize)
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// A name written in the source, with where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A parsed file: the pipeline header and every item that parsed.
#[derive(Clone, Debug, Default)]
pub struct File {
    pub pipeline: Option<Ident>,
    pub items: Vec<Item>,
    /// Where the pipeline's closing brace is, when it was found.
    pub end: Option<Span>,
}

// Nearly every item is a job, so boxing the large variant would cost an allocation per item.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Item {
    Param(Param),
    Defaults(Defaults),
    Template(Template),
    Job(Job),
    Finally(Finally),
    /// `notify on ...` at the pipeline's level: notifications about the run.
    Notify(Notify),
    Setting(Entry),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Param(p) => p.span,
            Item::Defaults(d) => d.span,
            Item::Template(t) => t.span,
            Item::Job(j) => j.span,
            Item::Finally(f) => f.span,
            Item::Notify(n) => n.span,
            Item::Setting(e) => e.span,
        }
    }
}

/// `param NAME: TYPE = DEFAULT`, also a template's parameter.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: Ident,
    pub ty: TypeExpr,
    pub default: Option<Expr>,
    pub span: Span,
}

/// `string`, `int`, `list<string>`: checked against the known types by the checker.
#[derive(Clone, Debug)]
pub struct TypeExpr {
    pub name: Ident,
    pub arg: Option<Box<TypeExpr>>,
    pub span: Span,
}

/// `defaults { ... }`: fields every job gets unless it sets them itself.
#[derive(Clone, Debug)]
pub struct Defaults {
    pub body: Block,
    /// From the keyword to the closing brace.
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Template {
    pub name: Ident,
    pub params: Vec<Param>,
    pub body: Block,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Finally {
    pub jobs: Vec<Job>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Job {
    pub name: Ident,
    pub template: Option<TemplateUse>,
    pub fanout: Option<ForClause>,
    pub after: Option<After>,
    pub body: Option<Block>,
    pub span: Span,
}

/// `= NAME(ARG = VALUE, ...)` in `job X = NAME(...)`.
#[derive(Clone, Debug)]
pub struct TemplateUse {
    pub name: Ident,
    pub args: Vec<Arg>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Arg {
    pub name: Ident,
    pub value: Expr,
}

/// `for VAR in 0..n` or `for VAR in [a, b]`.
#[derive(Clone, Debug)]
pub struct ForClause {
    pub var: Ident,
    pub source: FanSource,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum FanSource {
    Range(Expr, Expr),
    Values(Expr),
}

/// The condition after `after`, with the span of the whole clause.
#[derive(Clone, Debug)]
pub struct After {
    pub cond: Cond,
    pub span: Span,
    /// Written with top-level commas (`after a, b`) rather than `&&`; kept by the formatter.
    pub commas: bool,
}

/// A condition: a boolean expression over job outcomes.
#[derive(Clone, Debug)]
pub enum Cond {
    /// `x` or `x.failed`.
    Ref {
        job: Ident,
        outcome: Option<Ident>,
        span: Span,
    },
    Not(Box<Cond>, Span),
    And(Vec<Cond>, Span),
    Or(Vec<Cond>, Span),
}

impl Cond {
    pub fn span(&self) -> Span {
        match self {
            Cond::Ref { span, .. }
            | Cond::Not(_, span)
            | Cond::And(_, span)
            | Cond::Or(_, span) => *span,
        }
    }

    /// Every `x` or `x.outcome` in the condition, left to right.
    pub fn refs<'a>(&'a self, out: &mut Vec<(&'a Ident, Option<&'a Ident>)>) {
        match self {
            Cond::Ref { job, outcome, .. } => out.push((job, outcome.as_ref())),
            Cond::Not(c, _) => c.refs(out),
            Cond::And(cs, _) | Cond::Or(cs, _) => cs.iter().for_each(|c| c.refs(out)),
        }
    }
}

/// `{ key = value, key { ... } }`: a job body, `defaults`, a template's body, a map value.
#[derive(Clone, Debug)]
pub struct Block {
    pub entries: Vec<Entry>,
    /// The `notify` statements of a body (a job's, a template's or `defaults`'), in order; a map
    /// has none. Entries and statements may alternate: their spans give the order.
    pub notify: Vec<Notify>,
    pub span: Span,
}

/// `notify on EVENT, EVENT DURATION { to = [...] }`: at the pipeline's level (about the run)
/// or in a body (about the job). The block is optional.
#[derive(Clone, Debug)]
pub struct Notify {
    /// The keyword `notify`.
    pub keyword: Span,
    /// The keyword `on`.
    pub on: Span,
    pub events: Vec<Event>,
    /// `{ to = [...] }`, when given.
    pub body: Option<Block>,
    /// From `notify` to the block's `}`, or to the last event without a block.
    pub span: Span,
}

/// One event of a `notify`: its name and the duration written after it
/// (`running_longer_than 2h`).
#[derive(Clone, Debug)]
pub struct Event {
    pub name: Ident,
    pub after: Option<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub key: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum ExprKind {
    Str(Vec<StrPart>),
    /// An integer, a duration or a quantity: typed by where it stands.
    Number(String),
    Bool(bool),
    List(Vec<Expr>),
    Map(Block),
    /// A reference to a param, a template parameter or a loop variable.
    Name(String),
}

impl ExprKind {
    /// How users call this kind of value in messages.
    pub fn describe(&self) -> &'static str {
        match self {
            ExprKind::Str(_) => "a string",
            ExprKind::Number(_) => "a number",
            ExprKind::Bool(_) => "a boolean",
            ExprKind::List(_) => "a list",
            ExprKind::Map(_) => "a map",
            ExprKind::Name(_) => "a name",
        }
    }
}

#[derive(Clone, Debug)]
pub enum StrPart {
    Text(String),
    /// `${name}`; the span covers the whole `${...}`.
    Interp(Ident, Span),
    /// A backslash escape that is not one of the known ones, kept so the checker can point at it.
    BadEscape(Span),
}

/// Moves every span of a node by `delta` bytes: an item after an edit keeps its tree, shifted.
pub trait Shift {
    fn shift(&mut self, delta: i64);
}

impl Shift for Span {
    fn shift(&mut self, delta: i64) {
        self.start = (self.start as i64 + delta) as u32;
        self.end = (self.end as i64 + delta) as u32;
    }
}

impl Shift for Ident {
    fn shift(&mut self, delta: i64) {
        self.span.shift(delta);
    }
}

impl<T: Shift> Shift for Option<T> {
    fn shift(&mut self, delta: i64) {
        if let Some(t) = self {
            t.shift(delta);
        }
    }
}

impl<T: Shift> Shift for Vec<T> {
    fn shift(&mut self, delta: i64) {
        self.iter_mut().for_each(|t| t.shift(delta));
    }
}

impl<T: Shift> Shift for Box<T> {
    fn shift(&mut self, delta: i64) {
        (**self).shift(delta);
    }
}

impl Shift for Item {
    fn shift(&mut self, delta: i64) {
        match self {
            Item::Param(p) => p.shift(delta),
            Item::Defaults(d) => {
                d.body.shift(delta);
                d.span.shift(delta);
            }
            Item::Template(t) => {
                t.name.shift(delta);
                t.params.shift(delta);
                t.body.shift(delta);
                t.span.shift(delta);
            }
            Item::Job(j) => j.shift(delta),
            Item::Finally(f) => {
                f.jobs.shift(delta);
                f.span.shift(delta);
            }
            Item::Notify(n) => n.shift(delta),
            Item::Setting(e) => e.shift(delta),
        }
    }
}

impl Shift for Notify {
    fn shift(&mut self, delta: i64) {
        self.keyword.shift(delta);
        self.on.shift(delta);
        for e in &mut self.events {
            e.name.shift(delta);
            e.after.shift(delta);
            e.span.shift(delta);
        }
        self.body.shift(delta);
        self.span.shift(delta);
    }
}

impl Shift for Param {
    fn shift(&mut self, delta: i64) {
        self.name.shift(delta);
        self.ty.shift(delta);
        self.default.shift(delta);
        self.span.shift(delta);
    }
}

impl Shift for TypeExpr {
    fn shift(&mut self, delta: i64) {
        self.name.shift(delta);
        self.arg.shift(delta);
        self.span.shift(delta);
    }
}

impl Shift for Job {
    fn shift(&mut self, delta: i64) {
        self.name.shift(delta);
        if let Some(t) = &mut self.template {
            t.name.shift(delta);
            for a in &mut t.args {
                a.name.shift(delta);
                a.value.shift(delta);
            }
            t.span.shift(delta);
        }
        if let Some(f) = &mut self.fanout {
            f.var.shift(delta);
            match &mut f.source {
                FanSource::Range(a, b) => {
                    a.shift(delta);
                    b.shift(delta);
                }
                FanSource::Values(e) => e.shift(delta),
            }
            f.span.shift(delta);
        }
        if let Some(a) = &mut self.after {
            a.cond.shift(delta);
            a.span.shift(delta);
        }
        self.body.shift(delta);
        self.span.shift(delta);
    }
}

impl Shift for Cond {
    fn shift(&mut self, delta: i64) {
        match self {
            Cond::Ref { job, outcome, span } => {
                job.shift(delta);
                outcome.shift(delta);
                span.shift(delta);
            }
            Cond::Not(c, span) => {
                c.shift(delta);
                span.shift(delta);
            }
            Cond::And(cs, span) | Cond::Or(cs, span) => {
                cs.shift(delta);
                span.shift(delta);
            }
        }
    }
}

impl Shift for Block {
    fn shift(&mut self, delta: i64) {
        self.entries.shift(delta);
        self.notify.shift(delta);
        self.span.shift(delta);
    }
}

impl Shift for Entry {
    fn shift(&mut self, delta: i64) {
        self.key.shift(delta);
        self.value.shift(delta);
        self.span.shift(delta);
    }
}

impl Shift for Expr {
    fn shift(&mut self, delta: i64) {
        match &mut self.kind {
            ExprKind::Str(parts) => {
                for p in parts {
                    match p {
                        StrPart::Text(_) => {}
                        StrPart::Interp(id, span) => {
                            id.shift(delta);
                            span.shift(delta);
                        }
                        StrPart::BadEscape(span) => span.shift(delta),
                    }
                }
            }
            ExprKind::List(items) => items.shift(delta),
            ExprKind::Map(b) => b.shift(delta),
            ExprKind::Number(_) | ExprKind::Bool(_) | ExprKind::Name(_) => {}
        }
        self.span.shift(delta);
    }
}
