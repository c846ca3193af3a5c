//! Parsing large `.chainr` files on two threads. The compiler runs on the calling thread only:
//! it cuts a file into parts at item boundaries (`chainr_compiler::parse::split`), parses a part
//! and joins the parts' trees; the threads are started here.

use chainr_compiler::parse::{self, Parsed};

/// Files at least this large are parsed on two threads: below it, a thread costs more than it
/// saves.
const PARALLEL_MIN: usize = 128 * 1024;

/// Parses `.chainr` source: on two threads when the file is large and the machine has two cores,
/// on this one otherwise. The result is what [`parse::parse`] gives.
pub fn parse(src: &str) -> Parsed {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if src.len() < PARALLEL_MIN || cores < 2 {
        return parse::parse(src);
    }
    let split = parse::split(src, 2);
    let parts = std::thread::scope(|scope| {
        let rest: Vec<_> = (1..split.len())
            .map(|i| {
                let split = &split;
                scope.spawn(move || split.parse_part(i))
            })
            .collect();
        let mut parts = vec![split.parse_part(0)];
        for part in rest {
            parts.push(part.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        parts
    });
    split.join(parts)
}
