//! The outcomes of jobs and what a condition asks of them: one home for the words
//! (`succeeded`, `failed`, `errored`, `skipped`, `cancelled`, `done`), what each means, and what
//! a bare `after x` (in the IR, `"dependsOn": [{"job": "x"}]`) accepts. The checker, the symbol
//! index, editors and the runtime's scheduler all read them from here.

/// How a job ended. Every job that ends has exactly one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Exit code 0.
    Succeeded,
    /// Non-zero exit code, or killed by its timeout.
    Failed,
    /// Could not run (executor error, image pull failure, ...).
    Errored,
    /// Its condition was false.
    Skipped,
    /// The run was cancelled before it finished.
    Cancelled,
}

impl Outcome {
    /// Every outcome, in the order users read them.
    pub const ALL: [Outcome; 5] = [
        Outcome::Succeeded,
        Outcome::Failed,
        Outcome::Errored,
        Outcome::Skipped,
        Outcome::Cancelled,
    ];

    /// The word for it, as conditions and run documents write it.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Errored => "errored",
            Outcome::Skipped => "skipped",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// What a reference to a job in a condition asks of that job's outcome: `x` (bare) or
/// `x.WORD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutcomeTest {
    /// A bare `after x`, or `{"job": "x"}` in `dependsOn`: see [`bare_after_accepts`].
    Bare,
    /// `x.succeeded`: x succeeded, whether or not it has `allow_failure`.
    Succeeded,
    /// `x.failed`.
    Failed,
    /// `x.errored`.
    Errored,
    /// `x.skipped`.
    Skipped,
    /// `x.cancelled`.
    Cancelled,
    /// `x.done`: x ended, whatever its outcome.
    Done,
}

/// The words a condition can write after `job.`, in the order users read them.
pub const WORDS: [&str; 6] = [
    "succeeded",
    "failed",
    "errored",
    "skipped",
    "cancelled",
    "done",
];

impl OutcomeTest {
    /// The tests that are written with a word (all but [`OutcomeTest::Bare`]), in the order of
    /// [`WORDS`].
    pub const NAMED: [OutcomeTest; 6] = [
        OutcomeTest::Succeeded,
        OutcomeTest::Failed,
        OutcomeTest::Errored,
        OutcomeTest::Skipped,
        OutcomeTest::Cancelled,
        OutcomeTest::Done,
    ];

    /// The test written `x.word`; `None` when the word is not an outcome.
    pub fn from_word(word: &str) -> Option<OutcomeTest> {
        WORDS
            .iter()
            .position(|w| *w == word)
            .map(|i| OutcomeTest::NAMED[i])
    }

    /// The test of a reference `x` (no word) or `x.word`; `None` when the word is not an outcome.
    pub fn of(word: Option<&str>) -> Option<OutcomeTest> {
        match word {
            None => Some(OutcomeTest::Bare),
            Some(w) => OutcomeTest::from_word(w),
        }
    }

    /// The word after `job.`; `None` for a bare reference.
    pub fn word(self) -> Option<&'static str> {
        OutcomeTest::NAMED
            .iter()
            .position(|t| *t == self)
            .map(|i| WORDS[i])
    }

    /// Whether a job that ended with `outcome` passes this test. `allow_failure` is that job's
    /// `allow_failure`; only a bare reference looks at it.
    pub fn holds(self, outcome: Outcome, allow_failure: bool) -> bool {
        match self {
            OutcomeTest::Bare => bare_after_accepts(outcome, allow_failure),
            OutcomeTest::Succeeded => outcome == Outcome::Succeeded,
            OutcomeTest::Failed => outcome == Outcome::Failed,
            OutcomeTest::Errored => outcome == Outcome::Errored,
            OutcomeTest::Skipped => outcome == Outcome::Skipped,
            OutcomeTest::Cancelled => outcome == Outcome::Cancelled,
            OutcomeTest::Done => true,
        }
    }

    /// What the test means, for hover and completion.
    pub fn doc(self) -> &'static str {
        match self {
            OutcomeTest::Bare => "The job succeeded or, when it has `allow_failure`, failed or errored. For a fan-out job: every instance did.",
            OutcomeTest::Succeeded => "The job exited 0. For a fan-out job: every instance succeeded.",
            OutcomeTest::Failed => "The job exited non-zero or ran past its timeout (after its retries). For a fan-out job: some instance failed.",
            OutcomeTest::Errored => "The job could not run: image pull failure, unschedulable, evicted, executor error.",
            OutcomeTest::Skipped => "The job's own condition was false, so it did not run.",
            OutcomeTest::Cancelled => "The run was cancelled (or stopped by fail_fast) before the job finished.",
            OutcomeTest::Done => "The job has ended, whatever its outcome: any of the others.",
        }
    }

    /// The outcome a word that is not one most likely means (`failure` → `failed`), for
    /// "did you mean" help.
    pub fn suggest(word: &str) -> Option<&'static str> {
        match word {
            "success" | "succeed" | "successful" | "ok" | "passed" => Some("succeeded"),
            "failure" | "fail" => Some("failed"),
            "error" | "err" => Some("errored"),
            "canceled" | "cancel" => Some("cancelled"),
            "skip" => Some("skipped"),
            "finished" | "completed" | "complete" | "always" | "any" => Some("done"),
            other => crate::diagnostic::did_you_mean(other, WORDS),
        }
    }
}

/// What a bare `after x` (and `{"job": "x"}` in `dependsOn`) accepts: x succeeded or, when x
/// has `allow_failure`, failed or errored. Never skipped or cancelled.
pub fn bare_after_accepts(outcome: Outcome, allow_failure: bool) -> bool {
    outcome == Outcome::Succeeded
        || (allow_failure && matches!(outcome, Outcome::Failed | Outcome::Errored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for (word, test) in WORDS.iter().zip(OutcomeTest::NAMED) {
            assert_eq!(OutcomeTest::from_word(word), Some(test));
            assert_eq!(test.word(), Some(*word));
        }
        assert_eq!(OutcomeTest::Bare.word(), None);
        assert_eq!(OutcomeTest::of(None), Some(OutcomeTest::Bare));
        assert_eq!(OutcomeTest::from_word("failure"), None);
        for o in Outcome::ALL {
            assert_eq!(
                OutcomeTest::from_word(o.name()).map(|t| t.holds(o, false)),
                Some(true)
            );
        }
    }

    #[test]
    fn each_outcome_passes_exactly_its_own_test_and_done() {
        for o in Outcome::ALL {
            let passing: Vec<&str> = OutcomeTest::NAMED
                .into_iter()
                .filter(|t| t.holds(o, false))
                .filter_map(OutcomeTest::word)
                .collect();
            assert_eq!(passing, [o.name(), "done"]);
        }
    }

    #[test]
    fn a_bare_after_accepts_failures_only_with_allow_failure() {
        let accepted = |allow_failure| -> Vec<Outcome> {
            Outcome::ALL
                .into_iter()
                .filter(|&o| OutcomeTest::Bare.holds(o, allow_failure))
                .collect()
        };
        assert_eq!(accepted(false), [Outcome::Succeeded]);
        assert_eq!(
            accepted(true),
            [Outcome::Succeeded, Outcome::Failed, Outcome::Errored]
        );
        // `x.succeeded` stays strict.
        assert!(!OutcomeTest::Succeeded.holds(Outcome::Failed, true));
    }

    #[test]
    fn suggestions_are_outcomes() {
        assert_eq!(OutcomeTest::suggest("failure"), Some("failed"));
        assert_eq!(OutcomeTest::suggest("error"), Some("errored"));
        assert_eq!(OutcomeTest::suggest("canceled"), Some("cancelled"));
        assert_eq!(OutcomeTest::suggest("sucseeded"), Some("succeeded"));
        for w in ["success", "fail", "err", "skip", "always", "erored"] {
            let s = OutcomeTest::suggest(w).unwrap();
            assert!(OutcomeTest::from_word(s).is_some(), "{w} → {s}");
        }
    }

    /// docs/language.md lists the same outcomes and words.
    #[test]
    fn the_docs_name_every_outcome() {
        let docs = include_str!("../../docs/language.md");
        for o in Outcome::ALL {
            assert!(docs.contains(&format!("| `{}` |", o.name())), "{o:?}");
        }
        for w in WORDS {
            assert!(docs.contains(&format!("| `x.{w}` |")), "{w}");
        }
    }
}
