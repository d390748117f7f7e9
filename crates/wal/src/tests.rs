use super::*;
use proptest::prelude::*;

fn entry(index: u64, term: u64, data: &str) -> EntryRecord {
    EntryRecord {
        index,
        term,
        data: Bytes::from(data.to_owned()),
    }
}

/// Tests use small segments: a default one is 64 MiB of preallocated zeros.
fn open_small(dir: &Path) -> Result<(Wal, Recovered)> {
    Wal::open_with_segment_size(dir, 64 << 10)
}

/// The segment's salt (from its header).
fn salt_of(data: &[u8]) -> u64 {
    format::SegmentHeader::decode(data).unwrap().salt
}

/// Offsets of the verified batches of a segment, and the offset just past the last of them
/// (the preallocated zeros follow).
fn batches(data: &[u8]) -> (Vec<usize>, usize) {
    let salt = salt_of(data);
    let mut starts = Vec::new();
    let mut off = format::SEGMENT_HEADER_LEN;
    while let Some(f) = format::Frame::decode(&data[off..], salt, off as u64) {
        let end = off + format::FRAME_LEN + f.body_len as usize;
        if !f.body_matches(&data[off + format::FRAME_LEN..end]) {
            break;
        }
        starts.push(off);
        off = end;
    }
    (starts, off)
}

fn data_end(data: &[u8]) -> usize {
    batches(data).1
}

fn write_n(dir: &Path, n: u64) -> Vec<EntryRecord> {
    let (mut wal, _) = open_small(dir).unwrap();
    let entries: Vec<_> = (1..=n)
        .map(|i| entry(i, 1, &format!("value-{i}")))
        .collect();
    for e in &entries {
        wal.append_entries(std::slice::from_ref(e)).unwrap();
        wal.set_hard_state(&e.index.to_le_bytes());
        wal.sync().unwrap();
    }
    entries
}

fn only_segment(dir: &Path) -> PathBuf {
    let (wal, _) = open_small(dir).unwrap();
    let paths = wal.segment_paths();
    assert_eq!(paths.len(), 1);
    paths[0].clone()
}

#[test]
fn roundtrip_entries_and_hard_state() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_n(dir.path(), 10);
    let (_, rec) = open_small(dir.path()).unwrap();
    assert_eq!(rec.entries, written);
    assert_eq!(rec.hard_state.as_deref(), Some(&10u64.to_le_bytes()[..]));
    assert_eq!(rec.repaired_bytes, 0);
}

#[test]
fn unsynced_appends_are_not_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut wal, _) = open_small(dir.path()).unwrap();
        wal.append_entries(&[entry(1, 1, "a")]).unwrap();
        wal.sync().unwrap();
        wal.append_entries(&[entry(2, 1, "b")]).unwrap();
        assert!(wal.has_pending());
    }
    let (_, rec) = open_small(dir.path()).unwrap();
    assert_eq!(rec.entries, vec![entry(1, 1, "a")]);
}

#[test]
fn segments_are_preallocated_and_zero_tailed_records_survive() {
    let dir = tempfile::tempdir().unwrap();
    let zeros = EntryRecord {
        index: 1,
        term: 1,
        data: Bytes::from(vec![0u8; 300]),
    };
    {
        let (mut wal, _) = open_small(dir.path()).unwrap();
        wal.append_entries(std::slice::from_ref(&zeros)).unwrap();
        wal.set_hard_state(&[0u8; 24]);
        wal.sync().unwrap();
    }
    let seg = only_segment(dir.path());
    assert_eq!(fs::metadata(&seg).unwrap().len(), 64 << 10);
    // Records ending in zeros are not mistaken for the preallocated tail, and later appends land
    // right after them.
    {
        let (mut wal, rec) = open_small(dir.path()).unwrap();
        assert_eq!(rec.entries, vec![zeros.clone()]);
        assert_eq!(rec.hard_state.as_deref(), Some(&[0u8; 24][..]));
        assert_eq!(rec.repaired_bytes, 0);
        wal.append_entries(&[entry(2, 1, "two")]).unwrap();
        wal.sync().unwrap();
    }
    let (_, rec) = open_small(dir.path()).unwrap();
    assert_eq!(rec.entries, vec![zeros, entry(2, 1, "two")]);
    assert_eq!(fs::metadata(&seg).unwrap().len(), 64 << 10);
}

#[test]
fn a_segment_without_preallocation_is_continued() {
    // A file system without fallocate, or a copy that dropped the zeros, ends at the last batch.
    let dir = tempfile::tempdir().unwrap();
    write_n(dir.path(), 3);
    let seg = only_segment(dir.path());
    let data = fs::read(&seg).unwrap();
    fs::write(&seg, &data[..data_end(&data)]).unwrap();
    {
        let (mut wal, rec) = open_small(dir.path()).unwrap();
        assert_eq!(rec.entries.len(), 3);
        wal.append_entries(&[entry(4, 1, "four")]).unwrap();
        wal.sync().unwrap();
    }
    let (_, rec) = open_small(dir.path()).unwrap();
    assert_eq!(rec.entries.len(), 4);
    assert_eq!(rec.repaired_bytes, 0);
}

#[test]
fn reappended_index_overwrites_suffix() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut wal, _) = open_small(dir.path()).unwrap();
        wal.append_entries(&[entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c")])
            .unwrap();
        wal.append_entries(&[entry(2, 2, "B")]).unwrap();
        wal.sync().unwrap();
    }
    let (_, rec) = open_small(dir.path()).unwrap();
    assert_eq!(rec.entries, vec![entry(1, 1, "a"), entry(2, 2, "B")]);
}

#[test]
fn truncated_tail_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_n(dir.path(), 5);
    let seg = only_segment(dir.path());
    let len = data_end(&fs::read(&seg).unwrap()) as u64;
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let (mut wal, rec) = open_small(dir.path()).unwrap();
    assert!(rec.repaired_bytes > 0);
    // The last batch (entry 5 and its hard state) is gone as a whole.
    assert_eq!(rec.entries, written[..4]);
    assert_eq!(rec.hard_state.as_deref(), Some(&4u64.to_le_bytes()[..]));
    // The repaired log accepts appends and replays them.
    wal.append_entries(&[entry(5, 1, "five")]).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, rec) = open_small(dir.path()).unwrap();
    assert_eq!(rec.entries.last(), Some(&entry(5, 1, "five")));
    assert_eq!(rec.repaired_bytes, 0);
}

#[test]
fn bit_flip_in_last_record_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    write_n(dir.path(), 5);
    let seg = only_segment(dir.path());
    let mut data = fs::read(&seg).unwrap();
    let last = data_end(&data) - 1;
    data[last] ^= 0x40;
    fs::write(&seg, &data).unwrap();
    let (_, rec) = open_small(dir.path()).unwrap();
    assert_eq!(rec.entries.len(), 4);
    assert!(rec.repaired_bytes > 0);
}

#[test]
fn corruption_in_the_middle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_n(dir.path(), 20);
    let seg = only_segment(dir.path());
    let mut data = fs::read(&seg).unwrap();
    let mid = data_end(&data) / 2;
    data[mid] ^= 0x01;
    fs::write(&seg, &data).unwrap();
    let err = open_small(dir.path()).unwrap_err();
    assert!(matches!(err, WalError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("Refusing to start"));
    // Nothing was truncated by the failed open.
    assert_eq!(fs::read(&seg).unwrap(), data);
}

#[test]
fn segments_roll_over_and_replay_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let written: Vec<_> = (1..=200).map(|i| entry(i, 1, &"x".repeat(100))).collect();
    {
        let (mut wal, _) = Wal::open_with_segment_size(dir.path(), 2048).unwrap();
        for chunk in written.chunks(7) {
            wal.append_entries(chunk).unwrap();
            wal.sync().unwrap();
        }
        assert!(wal.segment_paths().len() > 5);
    }
    let (_, rec) = open_small(dir.path()).unwrap();
    assert_eq!(rec.entries, written);
}

#[test]
fn corruption_in_an_older_segment_is_refused_even_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let paths = {
        let (mut wal, _) = Wal::open_with_segment_size(dir.path(), 1024).unwrap();
        for i in 1..=50 {
            wal.append_entries(&[entry(i, 1, &"y".repeat(64))]).unwrap();
            wal.sync().unwrap();
        }
        wal.segment_paths()
    };
    let first = &paths[0];
    let mut data = fs::read(first).unwrap();
    let last = data_end(&data) - 1;
    data[last] ^= 0x01;
    fs::write(first, &data).unwrap();
    assert!(matches!(
        open_small(dir.path()),
        Err(WalError::Corrupt { .. })
    ));
}

#[test]
fn snapshot_drops_old_segments_and_keeps_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut wal, _) = Wal::open_with_segment_size(dir.path(), 1024).unwrap();
        for i in 1..=40 {
            wal.append_entries(&[entry(i, 1, &"z".repeat(64))]).unwrap();
            wal.sync().unwrap();
        }
        let snap = SnapshotRecord {
            index: 30,
            term: 1,
            data: Bytes::from_static(b"conf"),
        };
        let tail: Vec<_> = (31..=40).map(|i| entry(i, 1, &"z".repeat(64))).collect();
        wal.snapshot(&snap, b"hs", &tail).unwrap();
        assert_eq!(wal.segment_paths().len(), 1);
        wal.append_entries(&[entry(41, 2, "after")]).unwrap();
        wal.sync().unwrap();
    }
    let (wal, rec) = open_small(dir.path()).unwrap();
    assert_eq!(rec.snapshot.as_ref().map(|s| s.index), Some(30));
    assert_eq!(rec.hard_state.as_deref(), Some(&b"hs"[..]));
    let idx: Vec<u64> = rec.entries.iter().map(|e| e.index).collect();
    assert_eq!(idx, (31..=41).collect::<Vec<_>>());
    assert_eq!(wal.last_index(), 41);
}

#[test]
fn leftover_temp_segment_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    write_n(dir.path(), 3);
    fs::write(
        dir.path().join("0000000000000009-0000000000000004.wal.tmp"),
        b"junk",
    )
    .unwrap();
    let (_, rec) = open_small(dir.path()).unwrap();
    assert_eq!(rec.entries.len(), 3);
}

#[test]
fn foreign_wal_file_name_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("garbage.wal"), b"").unwrap();
    assert!(matches!(
        open_small(dir.path()),
        Err(WalError::BadSegmentName(_))
    ));
}

#[derive(Debug, Clone)]
enum Op {
    Append(u8, Vec<u8>),
    Sync,
    Snapshot,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..4, proptest::collection::vec(any::<u8>(), 0..200)).prop_map(|(n, d)| Op::Append(n, d)),
        2 => Just(Op::Sync),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the interleaving of appends, syncs, snapshots and reopens, a reopened WAL holds
    /// exactly the synced entries above the last snapshot, in order.
    #[test]
    fn replay_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open_with_segment_size(dir.path(), 512).unwrap();
        let mut durable: Vec<EntryRecord> = Vec::new();
        let mut pending: Vec<EntryRecord> = Vec::new();
        let mut snap_index = 0u64;
        let mut next = 1u64;
        for op in ops {
            match op {
                Op::Append(n, data) => {
                    for _ in 0..n {
                        let e = EntryRecord { index: next, term: 1, data: Bytes::from(data.clone()) };
                        next += 1;
                        wal.append_entries(std::slice::from_ref(&e)).unwrap();
                        pending.push(e);
                    }
                }
                Op::Sync => {
                    wal.sync().unwrap();
                    durable.append(&mut pending);
                }
                Op::Snapshot => {
                    wal.sync().unwrap();
                    durable.append(&mut pending);
                    if let Some(last) = durable.last().map(|e| e.index) {
                        let at = snap_index + (last - snap_index).div_ceil(2);
                        let tail: Vec<_> = durable.iter().filter(|e| e.index > at).cloned().collect();
                        wal.snapshot(&SnapshotRecord { index: at, term: 1, data: Bytes::new() }, b"hs", &tail).unwrap();
                        snap_index = at;
                        durable = tail;
                    }
                }
                Op::Reopen => {
                    drop(wal);
                    let (w, rec) = Wal::open_with_segment_size(dir.path(), 512).unwrap();
                    wal = w;
                    prop_assert_eq!(&rec.entries, &durable);
                    pending.clear();
                    next = durable.last().map_or(snap_index + 1, |e| e.index + 1);
                }
            }
        }
        drop(wal);
        let (_, rec) = open_small(dir.path()).unwrap();
        prop_assert_eq!(rec.entries, durable);
        prop_assert_eq!(rec.snapshot.map_or(0, |s| s.index), snap_index);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever bytes follow the last synced batch, opening the WAL never panics, keeps every
    /// synced entry, and treats the bytes as a torn tail (random bytes cannot form a frame of
    /// this segment's salt); the repair is stable.
    #[test]
    fn arbitrary_segment_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), valid in 0usize..6) {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = open_small(dir.path()).unwrap();
            for i in 1..=valid as u64 {
                wal.append_entries(&[entry(i, 1, "ok")]).unwrap();
            }
            wal.sync().unwrap();
        }
        let seg = only_segment(dir.path());
        let mut data = fs::read(&seg).unwrap();
        // Garbage right after the last record, as a torn or corrupt write would leave it.
        let end = data_end(&data);
        data.truncate(end);
        data.extend_from_slice(&bytes);
        fs::write(&seg, &data).unwrap();
        let synced: Vec<EntryRecord> = (1..=valid as u64).map(|i| entry(i, 1, "ok")).collect();
        let (_, first) = open_small(dir.path()).unwrap();
        prop_assert_eq!(&first.entries, &synced);
        prop_assert_eq!(first.repaired_bytes > 0, bytes.iter().any(|b| *b != 0));
        let (_, second) = open_small(dir.path()).unwrap();
        prop_assert_eq!(&second.entries, &synced);
        prop_assert_eq!(second.repaired_bytes, 0);
    }
}

#[test]
fn an_entry_too_large_for_a_record_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open_small(dir.path()).unwrap();
    let big = EntryRecord {
        index: 2,
        term: 1,
        data: Bytes::from(vec![0u8; MAX_ENTRY_DATA_LEN + 1]),
    };
    let err = wal
        .append_entries(&[entry(1, 1, "small"), big])
        .unwrap_err();
    assert!(
        matches!(err, WalError::EntryTooLarge { index: 2, .. }),
        "{err}"
    );
    assert!(!wal.has_pending(), "part of a refused batch was buffered");
    wal.append_entries(&[entry(1, 1, "small")]).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, rec) = open_small(dir.path()).unwrap();
    assert_eq!(rec.entries, vec![entry(1, 1, "small")]);
}

/// Writes five synced batches, then a sixth of several pages that plays the unsynced write a
/// power loss interrupts; returns the segment, its bytes and where the sixth batch starts.
fn five_synced_and_a_large_sixth(dir: &Path, sixth_data: &[u8]) -> (PathBuf, Vec<u8>, usize) {
    write_n(dir, 5);
    {
        let (mut wal, _) = open_small(dir).unwrap();
        wal.append_entries(&[
            EntryRecord {
                index: 6,
                term: 1,
                data: Bytes::copy_from_slice(sixth_data),
            },
            entry(7, 1, &"p".repeat(5000)),
        ])
        .unwrap();
        wal.set_hard_state(&7u64.to_le_bytes());
        wal.sync().unwrap();
    }
    let seg = only_segment(dir);
    let data = fs::read(&seg).unwrap();
    let (starts, end) = batches(&data);
    assert_eq!(starts.len(), 6);
    assert!(end - starts[5] > 5000);
    (seg, data, starts[5])
}

#[test]
fn pages_of_the_last_batch_landing_out_of_order_are_a_torn_tail() {
    // Power loss mid-write: the first page of the last batch never reached the disk, later
    // pages did. Nothing of that batch was acknowledged; the five before it were.
    let dir = tempfile::tempdir().unwrap();
    let (seg, mut data, sixth) = five_synced_and_a_large_sixth(dir.path(), &[7u8; 6000]);
    let page_end = (sixth / 4096 + 1) * 4096;
    data[sixth..page_end].fill(0);
    fs::write(&seg, &data).unwrap();
    let (mut wal, rec) = open_small(dir.path()).unwrap();
    assert!(rec.repaired_bytes > 0);
    let idx: Vec<u64> = rec.entries.iter().map(|e| e.index).collect();
    assert_eq!(idx, vec![1, 2, 3, 4, 5]);
    // The repaired log goes on, and the stray pages are gone for good.
    wal.append_entries(&[entry(6, 2, "again")]).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, rec) = open_small(dir.path()).unwrap();
    assert_eq!(rec.entries.last(), Some(&entry(6, 2, "again")));
    assert_eq!(rec.repaired_bytes, 0);

    // The same with only a middle page of the batch lost.
    let dir = tempfile::tempdir().unwrap();
    let (seg, mut data, sixth) = five_synced_and_a_large_sixth(dir.path(), &[7u8; 6000]);
    let page = (sixth / 4096 + 1) * 4096;
    data[page..page + 4096].fill(0);
    fs::write(&seg, &data).unwrap();
    let (_, rec) = open_small(dir.path()).unwrap();
    assert_eq!(rec.entries.len(), 5);
}

#[test]
fn a_frame_inside_a_payload_is_not_taken_for_a_later_batch() {
    // A client's value that holds a complete, valid batch of another WAL (frame and body),
    // followed by the torn frame of the batch that carries it: still a torn tail.
    let other = tempfile::tempdir().unwrap();
    write_n(other.path(), 3);
    let foreign = fs::read(only_segment(other.path())).unwrap();
    let (starts, end) = batches(&foreign);
    let mut value = foreign[starts[0]..end].to_vec();
    value.extend_from_slice(&foreign[..format::SEGMENT_HEADER_LEN]);

    let dir = tempfile::tempdir().unwrap();
    let (seg, mut data, sixth) = five_synced_and_a_large_sixth(dir.path(), &value);
    data[sixth..sixth + 8].fill(0);
    fs::write(&seg, &data).unwrap();
    let (_, rec) = open_small(dir.path()).unwrap();
    assert_eq!(rec.entries.len(), 5);
    assert!(rec.repaired_bytes > 0);
}

#[test]
fn a_damaged_batch_followed_by_a_later_one_is_corruption() {
    // The third batch lost its frame, yet batches four and five were written after it: it
    // had been synced and acknowledged, so this is no torn write.
    let dir = tempfile::tempdir().unwrap();
    write_n(dir.path(), 5);
    let seg = only_segment(dir.path());
    let mut data = fs::read(&seg).unwrap();
    let (starts, _) = batches(&data);
    data[starts[2]..starts[2] + format::FRAME_LEN].fill(0);
    fs::write(&seg, &data).unwrap();
    let err = open_small(dir.path()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, WalError::Corrupt { .. }), "{text}");
    assert!(text.contains("batch 4"), "{text}");
    assert!(text.contains("not a torn write"), "{text}");
    assert_eq!(
        fs::read(&seg).unwrap(),
        data,
        "a refused open changed the WAL"
    );
}

#[test]
fn a_segment_without_a_header_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    write_n(dir.path(), 2);
    let seg = only_segment(dir.path());
    let mut data = fs::read(&seg).unwrap();
    data[..4].copy_from_slice(&0x4341_574Cu32.to_le_bytes());
    fs::write(&seg, &data).unwrap();
    let err = open_small(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no segment header"), "{err}");
}
