//! Cycle finding on the dependency graph, shared by source checking and IR validation.

/// One cycle per strongly connected component of more than one node, as the node indices along
/// the cycle (`a → b → c → a` is `[a, b, c]`), starting at the component's smallest index.
/// `edges[i]` lists the nodes that `i` depends on. Iterative: deep chains cannot overflow the stack.
pub fn find_cycles(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = edges.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0usize;
    let mut components: Vec<Vec<usize>> = Vec::new();
    // (node, position in its edge list)
    let mut work: Vec<(usize, usize)> = Vec::new();
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        work.push((root, 0));
        while let Some(&mut (v, ref mut pos)) = work.last_mut() {
            if *pos == 0 && index[v] == usize::MAX {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if *pos < edges[v].len() {
                let w = edges[v][*pos];
                *pos += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut comp = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    components.push(comp);
                }
            }
        }
    }
    let mut cycles: Vec<Vec<usize>> = components.iter().map(|c| cycle_in(edges, c)).collect();
    cycles.sort();
    cycles
}

/// A shortest cycle through the smallest node of a strongly connected component (BFS).
fn cycle_in(edges: &[Vec<usize>], comp: &[usize]) -> Vec<usize> {
    let start = *comp.iter().min().expect("a component has nodes");
    let members: std::collections::HashSet<usize> = comp.iter().copied().collect();
    let inside = |x: usize| members.contains(&x);
    let mut parent: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &w in &edges[v] {
            if !inside(w) {
                continue;
            }
            if w == start {
                let mut path = vec![v];
                let mut x = v;
                while x != start {
                    x = parent[&x];
                    path.push(x);
                }
                path.reverse();
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(w) {
                e.insert(v);
                queue.push_back(w);
            }
        }
    }
    comp.to_vec()
}

#[cfg(test)]
mod tests {
    use super::find_cycles;

    #[test]
    fn finds_one_cycle_per_component() {
        // 0 → 1 → 2 → 0, 3 → 4 → 3, 5 alone, 6 → 0 (not in a cycle)
        let edges = vec![vec![1], vec![2], vec![0], vec![4], vec![3], vec![], vec![0]];
        assert_eq!(find_cycles(&edges), vec![vec![0, 1, 2], vec![3, 4]]);
    }

    #[test]
    fn long_chain_has_no_cycle_and_no_overflow() {
        let edges: Vec<Vec<usize>> = (0..200_000)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect();
        assert!(find_cycles(&edges).is_empty());
    }
}
