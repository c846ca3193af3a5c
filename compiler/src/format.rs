//! The formatter: one canonical layout for `.chainr` files, like gofmt. Comments are kept,
//! blank lines between items are kept (one at most), literals are printed as written, and
//! formatting twice changes nothing.
//!
//! Layout: two spaces of indentation; one item or field per line; a block written on one line
//! stays on one line when it fits in 100 columns and holds no comment (`{ a = 1, b = 2 }`);
//! conditions with the fewest parentheses that keep their meaning; `after a, b` keeps its commas;
//! a `notify` on one line when it fits and holds no comment
//! (`notify on failed, cancelled { to = ["team-slack"] }`), and last when its body is on one line.

use crate::diagnostic::Diagnostic;
use crate::lex;
use crate::parse::parse;
use crate::syntax::*;

const WIDTH: usize = 100;
const INDENT: &str = "  ";

/// Formats a file; a file with syntax errors is not formatted (its errors are returned).
pub fn format(src: &str) -> Result<String, Vec<Diagnostic>> {
    let parsed = parse(src);
    if !parsed.errors.is_empty() {
        return Err(parsed.errors);
    }
    let mut f = Formatter {
        src,
        out: String::with_capacity(src.len() + src.len() / 8),
        comments: comments(src),
        next: 0,
        last: 0,
        depth: 0,
    };
    f.file(&parsed.file);
    Ok(f.out)
}

/// Every comment of the file, outside strings, in order.
pub fn comments(src: &str) -> Vec<Span> {
    lex::tokens(src)
        .filter(|t| t.kind.is_comment())
        .map(|t| t.span())
        .collect()
}

struct Formatter<'a> {
    src: &'a str,
    out: String,
    comments: Vec<Span>,
    /// The first comment not printed yet.
    next: usize,
    /// The end of the last thing printed, in the source.
    last: usize,
    depth: usize,
}

impl<'a> Formatter<'a> {
    fn text(&self, span: Span) -> &'a str {
        &self.src[span.range()]
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str(INDENT);
        }
    }

    /// Prints the comments before `pos` on lines of their own (and a blank line where the
    /// source had one), then indents for the line that starts at `pos`.
    fn line_start(&mut self, pos: usize, first_in_block: bool) {
        let first = self.comment_lines_before(pos, first_in_block);
        self.blank_line_before(pos, first);
        self.indent();
    }

    /// Prints the comments before `pos` on lines of their own, at the current depth. Returns
    /// whether the line at `pos` is still the first of its block.
    fn comment_lines_before(&mut self, pos: usize, first_in_block: bool) -> bool {
        let mut first = first_in_block;
        while self.next < self.comments.len() && (self.comments[self.next].start as usize) < pos {
            let c = self.comments[self.next];
            self.blank_line_before(c.start as usize, first);
            self.indent();
            self.out.push_str(self.text(c));
            self.out.push('\n');
            self.last = c.end as usize;
            self.next += 1;
            first = false;
        }
        first
    }

    fn blank_line_before(&mut self, pos: usize, first_in_block: bool) {
        if first_in_block || self.out.is_empty() {
            return;
        }
        let gap = &self.src[self.last.min(pos)..pos];
        if gap.matches('\n').count() >= 2 && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }

    /// Ends a line whose last element ends at `end`, with the comment that follows on the same
    /// source line, if any.
    fn line_end(&mut self, end: usize) {
        self.last = end;
        if let Some(c) = self.comments.get(self.next).copied() {
            // Trailing: only blanks or separators between the element and the comment.
            let between = &self.src[end.min(c.start as usize)..c.start as usize];
            if c.start as usize >= end
                && between
                    .chars()
                    .all(|ch| matches!(ch, ' ' | '\t' | ',' | ';'))
            {
                self.out.push_str("  ");
                self.out.push_str(self.text(c));
                self.last = c.end as usize;
                self.next += 1;
            }
        }
        self.out.push('\n');
    }

    fn has_comment_in(&self, span: Span) -> bool {
        self.comments[self.next..]
            .iter()
            .take_while(|c| c.start < span.end)
            .any(|c| c.start >= span.start)
    }

    fn file(&mut self, file: &File) {
        let Some(name) = &file.pipeline else { return };
        let header_start = self.src[..name.span.start as usize]
            .rfind("pipeline")
            .unwrap_or(0);
        self.line_start(header_start, false);
        self.out.push_str("pipeline ");
        self.out.push_str(&name.name);
        self.out.push_str(" {");
        let brace = self.src[name.span.end as usize..]
            .find('{')
            .map_or(name.span.end as usize, |n| name.span.end as usize + n);
        self.line_end(brace + 1);
        self.depth = 1;
        for (i, item) in file.items.iter().enumerate() {
            self.item(item, i == 0);
        }
        self.depth = 0;
        let end = file.end.map_or(self.src.len(), |s| s.start as usize);
        self.close(end, file.items.is_empty());
        // Comments after the pipeline.
        let rest: Vec<Span> = self.comments[self.next..].to_vec();
        for c in rest {
            self.blank_line_before(c.start as usize, false);
            self.out.push_str(self.text(c));
            self.out.push('\n');
            self.last = c.end as usize;
        }
        self.next = self.comments.len();
    }

    /// The closing brace of a multi-line block, at `pos` in the source.
    fn close(&mut self, pos: usize, empty: bool) {
        // Comments inside the block, before its brace, stay inside it.
        self.depth += 1;
        self.comment_lines_before(pos, empty);
        self.depth -= 1;
        self.indent();
        self.out.push('}');
        self.line_end(pos + 1);
    }

    fn item(&mut self, item: &Item, first: bool) {
        let span = item.span();
        self.line_start(span.start as usize, first);
        match item {
            Item::Setting(e) => {
                self.entry_inline(e);
                self.line_end(e.span.end as usize);
            }
            Item::Param(p) => {
                self.out.push_str("param ");
                self.param(p);
                self.line_end(p.span.end as usize);
            }
            Item::Defaults(d) => {
                self.out.push_str("defaults ");
                self.block(&d.body);
            }
            Item::Template(t) => {
                self.out.push_str("template ");
                self.out.push_str(&t.name.name);
                self.out.push('(');
                for (i, p) in t.params.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.param(p);
                }
                self.out.push_str(") ");
                self.block(&t.body);
            }
            Item::Job(j) => self.job(j),
            Item::Notify(n) => self.notify(n),
            Item::Finally(f) => {
                self.out.push_str("finally {");
                let brace = self.src[f.span.range()]
                    .find('{')
                    .map_or(f.span.start as usize, |n| f.span.start as usize + n);
                self.line_end(brace + 1);
                self.depth += 1;
                for (i, j) in f.jobs.iter().enumerate() {
                    self.line_start(j.span.start as usize, i == 0);
                    self.job(j);
                }
                self.depth -= 1;
                self.close(f.span.end as usize - 1, f.jobs.is_empty());
            }
        }
    }

    fn param(&mut self, p: &Param) {
        self.out.push_str(&p.name.name);
        self.out.push_str(": ");
        self.type_expr(&p.ty);
        if let Some(d) = &p.default {
            self.out.push_str(" = ");
            self.expr_inline(d);
        }
    }

    fn type_expr(&mut self, t: &TypeExpr) {
        self.out.push_str(&t.name.name);
        if let Some(arg) = &t.arg {
            self.out.push('<');
            self.type_expr(arg);
            self.out.push('>');
        }
    }

    fn job(&mut self, j: &Job) {
        self.out.push_str("job ");
        self.out.push_str(&j.name.name);
        if let Some(u) = &j.template {
            self.out.push_str(" = ");
            self.out.push_str(&u.name.name);
            self.out.push('(');
            for (i, a) in u.args.iter().enumerate() {
                if i > 0 {
                    self.out.push_str(", ");
                }
                self.out.push_str(&a.name.name);
                self.out.push_str(" = ");
                self.expr_inline(&a.value);
            }
            self.out.push(')');
        }
        if let Some(f) = &j.fanout {
            self.out.push_str(" for ");
            self.out.push_str(&f.var.name);
            self.out.push_str(" in ");
            match &f.source {
                FanSource::Range(lo, hi) => {
                    self.expr_inline(lo);
                    self.out.push_str("..");
                    self.expr_inline(hi);
                }
                FanSource::Values(e) => self.expr_inline(e),
            }
        }
        if let Some(a) = &j.after {
            self.out.push_str(" after ");
            match (&a.cond, a.commas) {
                (Cond::And(cs, _), true) => {
                    for (i, c) in cs.iter().enumerate() {
                        if i > 0 {
                            self.out.push_str(", ");
                        }
                        self.cond(c, Level::Or);
                    }
                }
                (c, _) => self.cond(c, Level::Or),
            }
        }
        match &j.body {
            Some(b) => {
                self.out.push(' ');
                self.block(b);
            }
            None => self.line_end(j.span.end as usize),
        }
    }

    fn cond(&mut self, c: &Cond, level: Level) {
        match c {
            Cond::Ref { job, outcome, .. } => {
                self.out.push_str(&job.name);
                if let Some(o) = outcome {
                    self.out.push('.');
                    self.out.push_str(&o.name);
                }
            }
            Cond::Not(inner, _) => {
                self.out.push('!');
                self.cond(inner, Level::Unary);
            }
            Cond::And(cs, _) => self.operands(cs, " && ", level == Level::Unary),
            Cond::Or(cs, _) => self.operands(cs, " || ", level != Level::Or),
        }
    }

    /// The operands of `&&` or `||` (each an operand of `&&`: an `||` inside gets parentheses).
    fn operands(&mut self, cs: &[Cond], op: &str, parens: bool) {
        if parens {
            self.out.push('(');
        }
        for (i, c) in cs.iter().enumerate() {
            if i > 0 {
                self.out.push_str(op);
            }
            self.cond(c, Level::And);
        }
        if parens {
            self.out.push(')');
        }
    }

    /// Whether a block stays on one line: it was written on one, holds no comment, and fits.
    /// A `notify` must be its last element: after `notify on failed, `, a word and a block would
    /// read as one more event.
    fn one_line(&self, b: &Block) -> Option<String> {
        if self.text(b.span).contains('\n') || self.has_comment_in(b.span) {
            return None;
        }
        let elements = elements(b);
        let mut inner = String::new();
        for (i, e) in elements.iter().enumerate() {
            if i > 0 {
                inner.push_str(", ");
            }
            match e {
                Element::Entry(e) => inner.push_str(&self.entry_text(e)?),
                Element::Notify(n) if i + 1 == elements.len() => {
                    inner.push_str(&self.notify_text(n)?)
                }
                Element::Notify(_) => return None,
            }
        }
        let text = if inner.is_empty() {
            "{}".to_string()
        } else {
            format!("{{ {inner} }}")
        };
        let line_len = self.out.len() - self.out.rfind('\n').map_or(0, |i| i + 1);
        (line_len + text.len() <= WIDTH).then_some(text)
    }

    fn entry_text(&self, e: &Entry) -> Option<String> {
        let key = self.text(e.key.span);
        Some(match &e.value.kind {
            ExprKind::Map(b) => {
                let inner: Option<Vec<String>> =
                    b.entries.iter().map(|e| self.entry_text(e)).collect();
                let inner = inner?;
                if inner.is_empty() {
                    format!("{key} {{}}")
                } else {
                    format!("{key} {{ {} }}", inner.join(", "))
                }
            }
            _ => format!("{key} = {}", self.expr_text(&e.value)?),
        })
    }

    /// An expression on one line, or `None` when it spans lines.
    fn expr_text(&self, e: &Expr) -> Option<String> {
        match &e.kind {
            ExprKind::List(items) => {
                let parts: Option<Vec<String>> = items.iter().map(|i| self.expr_text(i)).collect();
                Some(format!("[{}]", parts?.join(", ")))
            }
            ExprKind::Map(b) => {
                let inner: Option<Vec<String>> =
                    b.entries.iter().map(|e| self.entry_text(e)).collect();
                let inner = inner?;
                Some(if inner.is_empty() {
                    "{}".into()
                } else {
                    format!("{{ {} }}", inner.join(", "))
                })
            }
            _ => {
                let t = self.text(e.span);
                (!t.contains('\n')).then(|| t.to_string())
            }
        }
    }

    fn expr_inline(&mut self, e: &Expr) {
        match self.expr_text(e) {
            Some(t) => self.out.push_str(&t),
            // A `"""` block or a multi-line list: as written, comments inside included.
            None => self.verbatim(e.span),
        }
    }

    /// Prints source text as written; the comments inside it are printed with it, not again.
    fn verbatim(&mut self, span: Span) {
        self.out.push_str(self.text(span));
        while self.next < self.comments.len() && self.comments[self.next].start < span.end {
            self.next += 1;
        }
    }

    fn entry_inline(&mut self, e: &Entry) {
        match self.entry_text(e) {
            Some(t) => self.out.push_str(&t),
            None => {
                self.out.push_str(self.text(e.key.span));
                match &e.value.kind {
                    ExprKind::Map(b) => {
                        self.out.push(' ');
                        self.block_lines(b);
                    }
                    _ => {
                        self.out.push_str(" = ");
                        self.expr_inline(&e.value);
                    }
                }
            }
        }
    }

    /// A block, then the end of its line.
    fn block(&mut self, b: &Block) {
        if let Some(t) = self.one_line(b) {
            self.out.push_str(&t);
            self.line_end(b.span.end as usize);
            return;
        }
        self.block_lines(b);
    }

    fn block_lines(&mut self, b: &Block) {
        self.out.push('{');
        self.line_end(b.span.start as usize + 1);
        self.depth += 1;
        for (i, element) in elements(b).into_iter().enumerate() {
            let e = match element {
                Element::Entry(e) => e,
                Element::Notify(n) => {
                    self.line_start(n.span.start as usize, i == 0);
                    self.notify(n);
                    continue;
                }
            };
            self.line_start(e.span.start as usize, i == 0);
            match &e.value.kind {
                ExprKind::Map(m) if self.one_line(m).is_none() => {
                    self.out.push_str(self.text(e.key.span));
                    self.out.push(' ');
                    self.block_lines(m);
                }
                _ => {
                    self.entry_inline(e);
                    self.line_end(e.span.end as usize);
                }
            }
        }
        self.depth -= 1;
        self.close(
            b.span.end as usize - 1,
            b.entries.is_empty() && b.notify.is_empty(),
        );
    }

    /// `notify on EVENT, EVENT DURATION`, as written when a comment stands between its words.
    fn notify_head(&mut self, n: &Notify) {
        let end = n.events.last().map_or(n.on, |e| e.span).end as usize;
        let head = Span::new(n.keyword.start as usize, end);
        if self.has_comment_in(head) {
            self.verbatim(head);
        } else {
            let text = self.notify_head_text(n);
            self.out.push_str(&text);
        }
    }

    fn notify_head_text(&self, n: &Notify) -> String {
        let events: Vec<String> = n
            .events
            .iter()
            .map(|e| match &e.after {
                Some(d) => format!("{} {}", e.name.name, self.text(d.span)),
                None => e.name.name.clone(),
            })
            .collect();
        format!("notify on {}", events.join(", "))
    }

    /// A `notify` on one line, or `None` when a comment is in it or a value spans lines.
    fn notify_text(&self, n: &Notify) -> Option<String> {
        if self.has_comment_in(n.span) {
            return None;
        }
        let head = self.notify_head_text(n);
        let Some(b) = &n.body else {
            return Some(head);
        };
        let inner: Option<Vec<String>> = b.entries.iter().map(|e| self.entry_text(e)).collect();
        let inner = inner?;
        Some(if inner.is_empty() {
            format!("{head} {{}}")
        } else {
            format!("{head} {{ {} }}", inner.join(", "))
        })
    }

    /// A `notify`, then the end of its line: on one line when it fits, however it was written.
    fn notify(&mut self, n: &Notify) {
        if let Some(text) = self.notify_text(n) {
            let line_len = self.out.len() - self.out.rfind('\n').map_or(0, |i| i + 1);
            if line_len + text.len() <= WIDTH {
                self.out.push_str(&text);
                self.line_end(n.span.end as usize);
                return;
            }
        }
        self.notify_head(n);
        match &n.body {
            Some(b) => {
                self.out.push(' ');
                self.block_lines(b);
            }
            None => self.line_end(n.span.end as usize),
        }
    }
}

/// An element of a body: a field or a `notify`.
enum Element<'b> {
    Entry(&'b Entry),
    Notify(&'b Notify),
}

/// The fields and `notify` statements of a block, in the order they are written.
fn elements(b: &Block) -> Vec<Element<'_>> {
    let mut out: Vec<Element> = b.entries.iter().map(Element::Entry).collect();
    if !b.notify.is_empty() {
        out.extend(b.notify.iter().map(Element::Notify));
        out.sort_by_key(|e| match e {
            Element::Entry(e) => e.span.start,
            Element::Notify(n) => n.span.start,
        });
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Level {
    /// Anything goes: `a || b`.
    Or,
    /// An operand of `&&`: an `||` needs parentheses.
    And,
    /// An operand of `!`: any binary operator needs parentheses.
    Unary,
}
