//! The symbol index of a syntax tree: every definition and reference of jobs, params,
//! templates and local names, and what each place in the text is, for editors (go to
//! definition, references, rename, hover, highlighting). Pure and independent of any protocol.

use crate::notify::Level;
use crate::outcome::OutcomeTest;
use crate::syntax::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SymbolKind {
    Job,
    Param,
    Template,
    /// A template's parameter, seen inside its body.
    TemplateParam,
    /// A fan-out's loop variable, seen inside the job.
    LoopVar,
}

#[derive(Clone, Debug)]
pub struct Symbol {
    pub kind: SymbolKind,
    pub name: String,
    /// The name where it is declared.
    pub def: Span,
    /// The whole declaration (for document symbols and hover).
    pub decl: Span,
    pub refs: Vec<Span>,
    /// Jobs: declared inside `finally`.
    pub finally: bool,
}

/// What is at a place in the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Occurrence {
    /// The name of a symbol where it is declared.
    Def(usize),
    /// A use of a symbol.
    Ref(usize),
    /// A name that resolves to nothing (already reported by the checker).
    Unresolved(String),
    /// A field's key in a job body, `defaults` or a template (`image`, `run`, ...).
    Field(String),
    /// A pipeline setting's key (`fail_fast`, ...).
    Setting(String),
    /// An outcome in a condition (`failed` in `x.failed`), with the job it is about and what it
    /// tests (`None` when the word is not an outcome; the words and their meaning are in
    /// [`crate::outcome`]).
    Outcome {
        job: Option<usize>,
        name: String,
        test: Option<OutcomeTest>,
    },
    /// The keyword `notify` of a notification about the run or about a job.
    Notify(Level),
    /// An event of a `notify` (`failed` in `notify on failed`), where it stands (the word
    /// may be no event; the events and their meaning are in [`crate::notify`]).
    Event { name: String, level: Level },
    /// A key in the block of a `notify` (`to`).
    NotifyKey(String),
}

#[derive(Clone, Debug, Default)]
pub struct Index {
    pub symbols: Vec<Symbol>,
    /// Every occurrence, sorted by position.
    pub occurrences: Vec<(Span, Occurrence)>,
}

impl Index {
    pub fn build(file: &File) -> Index {
        let mut b = Builder::default();
        b.file(file);
        b.index.occurrences.sort_by_key(|(s, _)| (s.start, s.end));
        b.index
    }

    /// The occurrence at a byte offset (the end of a name counts, as editors put the cursor
    /// just after what was typed).
    pub fn at(&self, offset: usize) -> Option<&(Span, Occurrence)> {
        let i = self
            .occurrences
            .partition_point(|(s, _)| (s.end as usize) < offset);
        self.occurrences[i..]
            .iter()
            .take_while(|(s, _)| (s.start as usize) <= offset)
            .find(|(s, _)| s.contains(offset))
    }

    /// The symbol an occurrence is about, if any.
    pub fn symbol_of(&self, occurrence: &Occurrence) -> Option<usize> {
        match occurrence {
            Occurrence::Def(i) | Occurrence::Ref(i) => Some(*i),
            Occurrence::Outcome { job, .. } => *job,
            _ => None,
        }
    }

    pub fn find(&self, kind: SymbolKind, name: &str) -> Option<usize> {
        self.symbols
            .iter()
            .position(|s| s.kind == kind && s.name == name)
    }

    pub fn jobs(&self) -> impl Iterator<Item = &Symbol> {
        self.symbols.iter().filter(|s| s.kind == SymbolKind::Job)
    }
}

#[derive(Default)]
struct Builder {
    index: Index,
    /// Jobs, params and templates by name (each kind has its own names).
    jobs: std::collections::HashMap<String, usize>,
    params: std::collections::HashMap<String, usize>,
    templates: std::collections::HashMap<String, usize>,
    /// Each template's parameters (symbol ids), for the argument names at its uses.
    template_params: std::collections::HashMap<usize, Vec<usize>>,
}

impl Builder {
    fn symbol(&mut self, kind: SymbolKind, name: &Ident, decl: Span, finally: bool) -> usize {
        let id = self.index.symbols.len();
        let names = match kind {
            SymbolKind::Job => Some(&mut self.jobs),
            SymbolKind::Param => Some(&mut self.params),
            SymbolKind::Template => Some(&mut self.templates),
            SymbolKind::TemplateParam | SymbolKind::LoopVar => None,
        };
        if let Some(names) = names {
            names.entry(name.name.clone()).or_insert(id);
        }
        self.index.symbols.push(Symbol {
            kind,
            name: name.name.clone(),
            def: name.span,
            decl,
            refs: Vec::new(),
            finally,
        });
        self.index
            .occurrences
            .push((name.span, Occurrence::Def(id)));
        id
    }

    fn find(&self, kind: SymbolKind, name: &str) -> Option<usize> {
        match kind {
            SymbolKind::Job => self.jobs.get(name).copied(),
            SymbolKind::Param => self.params.get(name).copied(),
            SymbolKind::Template => self.templates.get(name).copied(),
            SymbolKind::TemplateParam | SymbolKind::LoopVar => None,
        }
    }

    fn reference(&mut self, id: usize, span: Span) {
        self.index.symbols[id].refs.push(span);
        self.index.occurrences.push((span, Occurrence::Ref(id)));
    }

    fn file(&mut self, file: &File) {
        // Declarations first, so that uses anywhere resolve.
        let mut jobs: Vec<(&Job, bool)> = Vec::new();
        for item in &file.items {
            match item {
                Item::Param(p) => {
                    self.symbol(SymbolKind::Param, &p.name, p.span, false);
                }
                Item::Template(t) => {
                    self.symbol(SymbolKind::Template, &t.name, t.span, false);
                }
                Item::Job(j) => jobs.push((j, false)),
                Item::Finally(f) => jobs.extend(f.jobs.iter().map(|j| (j, true))),
                _ => {}
            }
        }
        let mut job_ids = Vec::with_capacity(jobs.len());
        for (j, finally) in &jobs {
            job_ids.push(self.symbol(SymbolKind::Job, &j.name, j.span, *finally));
        }
        for item in &file.items {
            match item {
                Item::Param(p) => {
                    if let Some(d) = &p.default {
                        self.expr(d, &[]);
                    }
                }
                Item::Defaults(d) => self.block(&d.body, &[], false),
                Item::Notify(n) => self.notify(n, Level::Run, &[]),
                Item::Setting(e) => {
                    self.index
                        .occurrences
                        .push((e.key.span, Occurrence::Setting(e.key.name.clone())));
                    self.expr(&e.value, &[]);
                }
                Item::Template(t) => {
                    let mut locals = Vec::new();
                    for p in &t.params {
                        if let Some(d) = &p.default {
                            self.expr(d, &[]);
                        }
                        locals.push(self.symbol(SymbolKind::TemplateParam, &p.name, p.span, false));
                    }
                    if let Some(id) = self.find(SymbolKind::Template, &t.name.name) {
                        self.template_params
                            .entry(id)
                            .or_insert_with(|| locals.clone());
                    }
                    self.block(&t.body, &locals, false);
                }
                _ => {}
            }
        }
        for (j, _) in jobs {
            self.job(j);
        }
    }

    fn job(&mut self, j: &Job) {
        let mut locals = Vec::new();
        if let Some(f) = &j.fanout {
            match &f.source {
                FanSource::Range(a, b) => {
                    self.expr(a, &[]);
                    self.expr(b, &[]);
                }
                FanSource::Values(e) => self.expr(e, &[]),
            }
            locals.push(self.symbol(SymbolKind::LoopVar, &f.var, f.span, false));
        }
        if let Some(u) = &j.template {
            let template = self.find(SymbolKind::Template, &u.name.name);
            match template {
                Some(t) => self.reference(t, u.name.span),
                None => self
                    .index
                    .occurrences
                    .push((u.name.span, Occurrence::Unresolved(u.name.name.clone()))),
            }
            let params = template
                .and_then(|t| self.template_params.get(&t))
                .cloned()
                .unwrap_or_default();
            for a in &u.args {
                // The argument's name is a use of the template's parameter (rename changes both).
                if let Some(&p) = params
                    .iter()
                    .find(|&&p| self.index.symbols[p].name == a.name.name)
                {
                    self.reference(p, a.name.span);
                }
                self.expr(&a.value, &locals);
            }
        }
        if let Some(a) = &j.after {
            self.cond(&a.cond);
        }
        if let Some(b) = &j.body {
            self.block(b, &locals, false);
        }
    }

    fn cond(&mut self, c: &Cond) {
        match c {
            Cond::Ref { job, outcome, .. } => {
                let id = self.find(SymbolKind::Job, &job.name);
                match id {
                    Some(id) => self.reference(id, job.span),
                    None => self
                        .index
                        .occurrences
                        .push((job.span, Occurrence::Unresolved(job.name.clone()))),
                }
                if let Some(o) = outcome {
                    self.index.occurrences.push((
                        o.span,
                        Occurrence::Outcome {
                            job: id,
                            name: o.name.clone(),
                            test: OutcomeTest::from_word(&o.name),
                        },
                    ));
                }
            }
            Cond::Not(c, _) => self.cond(c),
            Cond::And(cs, _) | Cond::Or(cs, _) => cs.iter().for_each(|c| self.cond(c)),
        }
    }

    fn notify(&mut self, n: &Notify, level: Level, locals: &[usize]) {
        let occurrences = &mut self.index.occurrences;
        occurrences.push((n.keyword, Occurrence::Notify(level)));
        for e in &n.events {
            occurrences.push((
                e.name.span,
                Occurrence::Event {
                    name: e.name.name.clone(),
                    level,
                },
            ));
        }
        for e in n.body.iter().flat_map(|b| &b.entries) {
            self.index
                .occurrences
                .push((e.key.span, Occurrence::NotifyKey(e.key.name.clone())));
            self.expr(&e.value, locals);
        }
    }

    fn block(&mut self, b: &Block, locals: &[usize], nested: bool) {
        for n in &b.notify {
            self.notify(n, Level::Job, locals);
        }
        for e in &b.entries {
            if !nested {
                self.index
                    .occurrences
                    .push((e.key.span, Occurrence::Field(e.key.name.clone())));
            }
            match &e.value.kind {
                ExprKind::Map(m) => self.block(m, locals, true),
                _ => self.expr(&e.value, locals),
            }
        }
    }

    fn name(&mut self, name: &str, span: Span, locals: &[usize]) {
        let local = locals
            .iter()
            .rev()
            .copied()
            .find(|&l| self.index.symbols[l].name == name);
        match local.or_else(|| self.find(SymbolKind::Param, name)) {
            Some(id) => self.reference(id, span),
            None => self
                .index
                .occurrences
                .push((span, Occurrence::Unresolved(name.to_string()))),
        }
    }

    fn expr(&mut self, e: &Expr, locals: &[usize]) {
        match &e.kind {
            ExprKind::Name(n) => self.name(n, e.span, locals),
            ExprKind::Str(parts) => {
                for p in parts {
                    if let StrPart::Interp(id, _) = p {
                        self.name(&id.name, id.span, locals);
                    }
                }
            }
            ExprKind::List(items) => items.iter().for_each(|i| self.expr(i, locals)),
            ExprKind::Map(b) => self.block(b, locals, true),
            ExprKind::Number(_) | ExprKind::Bool(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;

    #[test]
    fn definitions_and_references() {
        let src = "pipeline p {\n  param n: int = 2\n  template t(x: string) { run = \"${x} ${n}\" }\n  job a for i in 0..n { image = \"b\" run = \"${i}\" }\n  job b = t(x = \"v\") after a.failed\n}\n";
        let file = parse(src).file;
        let index = Index::build(&file);
        let n = index.find(SymbolKind::Param, "n").unwrap();
        assert_eq!(index.symbols[n].refs.len(), 2);
        let a = index.find(SymbolKind::Job, "a").unwrap();
        let at = src.find("a.failed").unwrap();
        assert_eq!(index.at(at).unwrap().1, Occurrence::Ref(a));
        let outcome = index.at(at + 3).unwrap();
        assert_eq!(
            outcome.1,
            Occurrence::Outcome {
                job: Some(a),
                name: "failed".into(),
                test: Some(OutcomeTest::Failed),
            }
        );
        // `${x}` in the body and `x = ...` where the template is used.
        let x = index.find(SymbolKind::TemplateParam, "x").unwrap();
        assert_eq!(index.symbols[x].refs.len(), 2);
        let i = index.find(SymbolKind::LoopVar, "i").unwrap();
        assert_eq!(index.symbols[i].refs.len(), 1);
        let t = index.find(SymbolKind::Template, "t").unwrap();
        assert_eq!(index.symbols[t].refs.len(), 1);
        assert!(matches!(
            index.at(src.find("image").unwrap()).unwrap().1,
            Occurrence::Field(_)
        ));
    }

    #[test]
    fn notifications() {
        let src = "pipeline p {\n  param m: string = \"x\"\n  notify on failed { to = [\"${m}\"] }\n  job a { image = \"b\" run = \"c\" notify on errored }\n}\n";
        let index = Index::build(&parse(src).file);
        let at = |needle: &str| index.at(src.find(needle).unwrap()).unwrap().1.clone();
        assert_eq!(at("notify on failed"), Occurrence::Notify(Level::Run));
        assert_eq!(
            at("failed"),
            Occurrence::Event {
                name: "failed".into(),
                level: Level::Run
            }
        );
        assert_eq!(at("to ="), Occurrence::NotifyKey("to".into()));
        assert_eq!(at("notify on errored"), Occurrence::Notify(Level::Job));
        assert_eq!(
            at("errored"),
            Occurrence::Event {
                name: "errored".into(),
                level: Level::Job
            }
        );
        // `${m}` in `to` uses the param.
        let m = index.find(SymbolKind::Param, "m").unwrap();
        assert_eq!(index.symbols[m].refs.len(), 1);
    }
}
