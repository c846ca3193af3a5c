//! The end of an attempt's output, read in pieces of any size, is what reading it whole gives.

use chainr_runtime::log::{tail, LogKey, LogSink, MemoryLogs, Tail, TailReader};
use proptest::prelude::*;

fn whole(bytes: &[u8], n: usize) -> Tail {
    Tail::read(bytes, n).unwrap()
}

proptest! {
    #[test]
    fn pieces_of_any_size_give_the_same_tail(
        bytes in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'a'), any::<u8>()], 0..400),
        cuts in proptest::collection::vec(1usize..50, 1..20),
        n in 0usize..6,
    ) {
        let mut reader = TailReader::new(n);
        let mut rest = &bytes[..];
        let mut i = 0;
        while !rest.is_empty() {
            let k = cuts[i % cuts.len()].min(rest.len());
            reader.push(&rest[..k]);
            rest = &rest[k..];
            i += 1;
        }
        prop_assert_eq!(reader.finish(), whole(&bytes, n));
    }
}

#[test]
fn lines_are_cut_as_str_lines_cuts_them() {
    let t = whole(b"one\r\ntwo\n\nthree", 2);
    assert_eq!(t.lines, ["", "three"]);
    assert_eq!(t.total, 4);
    assert_eq!(whole(b"a\n", 5).total, 1);
    assert_eq!(whole(b"", 5), Tail::default());
}

#[tokio::test]
async fn a_sink_is_read_to_its_end_in_chunks() {
    let logs = MemoryLogs::new();
    let key = LogKey {
        run: "r".into(),
        job: "j".into(),
        attempt: 1,
    };
    let text: String = (0..50_000).map(|i| format!("line {i}\n")).collect();
    logs.append(&key, text.as_bytes()).await.unwrap();
    logs.finish(&key).await.unwrap();
    let t = tail(&logs, &key, 3).await.unwrap();
    assert_eq!(t.lines, ["line 49997", "line 49998", "line 49999"]);
    assert_eq!(t.total, 50_000);
}
