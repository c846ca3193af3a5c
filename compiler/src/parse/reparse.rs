//! Re-parsing after an edit: only the items around the edit, for the language server.

use super::errors::too_deep;
use super::fast::parse_chunk;
use super::{skip_trivia, Parsed};
use crate::syntax::*;

/// An edit of the text: bytes `start..old_end` were replaced by `start..new_end`.
#[derive(Clone, Copy, Debug)]
pub struct Edit {
    pub start: usize,
    pub old_end: usize,
    pub new_end: usize,
}

/// Parses `src` after `edit`, reusing the items of `old` (the error-free tree of the text
/// before the edit) that the edit did not touch: only the items around the edit are parsed
/// again, the ones after it are shifted. `None` when that is not possible (the edit touches the
/// header or the closing brace, or the new text does not parse): parse the whole file instead.
/// The result is the tree [`parse`](super::parse) would give.
pub fn reparse(old: File, src: &str, edit: Edit) -> Option<Parsed> {
    let name = old.pipeline?;
    let end = old.end?;
    let delta = edit.new_end as i64 - edit.old_end as i64;
    // The header (up to its `{`) must be before the edit, so it is the same text as before.
    if edit.start <= name.span.end as usize {
        return None;
    }
    let header_end = src
        .get(name.span.end as usize..edit.start)?
        .find('{')
        .map(|n| name.span.end as usize + n + 1)?;
    if edit.start < header_end || edit.old_end > end.start as usize {
        return None;
    }
    let mut items = old.items;
    // Items that end before the edit stay; so do those that start after it (shifted).
    let first = items.partition_point(|it| (it.span().end as usize) < edit.start);
    let after = items.partition_point(|it| (it.span().start as usize) <= edit.old_end);
    let region_start = if first == 0 {
        header_end
    } else {
        items[first - 1].span().end as usize
    };
    let region_end_old = if after < items.len() {
        items[after].span().start as usize
    } else {
        end.start as usize
    };
    let region_end = (region_end_old as i64 + delta) as usize;
    if region_end < region_start || region_end > src.len() || too_deep(src).is_some() {
        return None;
    }
    let (mid, _) = parse_chunk(src, region_start, region_end, false)?;
    // The region must end where the next kept item starts: a comment opened in the region that
    // now runs on into that item (a line joined to a `//` line) means the item is not what it was.
    let last_end = mid
        .last()
        .map_or(region_start, |it: &Item| it.span().end as usize);
    if skip_trivia(src, last_end) > region_end {
        return None;
    }
    let mut tail = items.split_off(after);
    items.truncate(first);
    tail.shift(delta);
    items.extend(mid);
    items.extend(tail);
    let mut end = end;
    end.shift(delta);
    Some(Parsed {
        file: File {
            pipeline: Some(name),
            items,
            end: Some(end),
        },
        errors: Vec::new(),
    })
}
