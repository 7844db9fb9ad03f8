//! Reopening after a flush, a kill, a torn segment or a stale or damaged checkpoint.

use super::*;
use crate::monitor::series::{is_stale, stale_nan};

#[test]
fn reopening_after_flush_restores_disk_and_checkpointed_open_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(small_chunks(dir.path())).unwrap();
    let (a, b) = (metric("up", "a"), metric("up", "b"));
    fill(&db, &a, 0, 57);
    fill(&db, &b, 0, 3);
    db.append(&b, T0 + 3 * 10_000, stale_nan()).unwrap();
    db.flush().unwrap();
    drop(db);

    let db = Db::open(small_chunks(dir.path())).unwrap();
    let info = db.recovery();
    assert_eq!(
        (info.segments, info.segments_scanned, info.checkpoint_heads),
        (1, 1, 2)
    );
    let all = select_all(&db, "up");
    assert_eq!(all[0].samples, expected(0, 57));
    assert_eq!(&all[1].samples[..3], &expected(0, 3)[..]);
    assert!(
        is_stale(all[1].samples[3].1),
        "the staleness marker survives bit for bit"
    );
    // The restored open chunk keeps growing and the append rules still apply.
    fill(&db, &a, 57, 70);
    assert!(matches!(
        db.append(&a, T0, 1.0),
        Err(AppendError::OutOfOrder { .. })
    ));
    assert_eq!(select_all(&db, "up")[0].samples, expected(0, 70));
}

#[test]
fn a_killed_store_keeps_everything_up_to_the_last_flush() {
    let dir = tempfile::tempdir().unwrap();
    let killed = tempfile::tempdir().unwrap();
    let db = Db::open(small_chunks(dir.path())).unwrap();
    let up = metric("up", "api");
    fill(&db, &up, 0, 45);
    db.flush().unwrap();
    fill(&db, &up, 45, 80);
    // Never flushed: pending chunks and the open chunk exist only in memory.
    copy_dir(dir.path(), killed.path());

    let reopened = Db::open(small_chunks(killed.path())).unwrap();
    assert_eq!(select_all(&reopened, "up")[0].samples, expected(0, 45));
    drop(db);
}

#[test]
fn a_torn_or_corrupt_segment_tail_is_cut_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(small_chunks(dir.path())).unwrap();
    let up = metric("up", "api");
    fill(&db, &up, 0, 25);
    db.flush().unwrap();
    fill(&db, &up, 25, 50);
    db.flush().unwrap();
    let seg = segment::segment_path(dir.path(), 1);
    for (case, damage) in [("torn", 0u8), ("corrupt", 1u8)] {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), copy.path());
        let copied = copy.path().join(seg.file_name().unwrap());
        let mut bytes = std::fs::read(&copied).unwrap();
        let len = bytes.len();
        if damage == 0 {
            bytes.truncate(len - 3);
        } else {
            bytes[len - 3] ^= 0x55;
        }
        std::fs::write(&copied, &bytes).unwrap();

        let reopened = Db::open(small_chunks(copy.path())).unwrap();
        assert!(reopened.recovery().torn_bytes > 0, "{case}");
        // The second flush's group (samples 20..40) is gone whole; the checkpoint's open
        // chunk (40..50) is newer than anything on disk and is restored.
        let mut want = expected(0, 20);
        want.extend(expected(40, 50));
        assert_eq!(select_all(&reopened, "up")[0].samples, want, "{case}");
    }
}

#[test]
fn a_checkpoint_older_than_the_segment_does_not_duplicate_samples() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(small_chunks(dir.path())).unwrap();
    let up = metric("up", "api");
    fill(&db, &up, 0, 15);
    db.flush().unwrap();
    let old_checkpoint = std::fs::read(checkpoint::path(dir.path())).unwrap();
    fill(&db, &up, 15, 27);
    db.flush().unwrap();
    // A crash between the segment fsync and the checkpoint rename of the second flush.
    std::fs::write(checkpoint::path(dir.path()), old_checkpoint).unwrap();
    drop(db);

    let db = Db::open(small_chunks(dir.path())).unwrap();
    assert_eq!(db.recovery().checkpoint_heads_superseded, 1);
    assert_eq!(db.stats().head_samples, 0);
    assert_eq!(select_all(&db, "up")[0].samples, expected(0, 20));
    fill(&db, &up, 20, 22);
    assert_eq!(select_all(&db, "up")[0].samples, expected(0, 22));
}

#[test]
fn a_checkpointed_one_sample_chunk_that_a_segment_holds_is_not_restored_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(small_chunks(dir.path())).unwrap();
    let up = metric("up", "api");
    fill(&db, &up, 0, 1);
    db.flush().unwrap();
    let old_checkpoint = std::fs::read(checkpoint::path(dir.path())).unwrap();
    // The series goes idle: its one-sample chunk is sealed and written.
    db.maintain(T0 + 3 * HOUR).unwrap();
    db.flush().unwrap();
    std::fs::write(checkpoint::path(dir.path()), old_checkpoint).unwrap();
    drop(db);

    let db = Db::open(small_chunks(dir.path())).unwrap();
    assert_eq!(db.recovery().checkpoint_heads_superseded, 1);
    assert_eq!(db.stats().head_chunks, 0);
    assert_eq!(select_all(&db, "up")[0].samples, expected(0, 1));
}

#[test]
fn a_damaged_checkpoint_is_reported_and_segments_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(small_chunks(dir.path())).unwrap();
    fill(&db, &metric("up", "api"), 0, 15);
    db.flush().unwrap();
    drop(db);
    std::fs::write(checkpoint::path(dir.path()), b"garbage").unwrap();
    let db = Db::open(small_chunks(dir.path())).unwrap();
    assert!(db.recovery().checkpoint_error.is_some());
    assert_eq!(select_all(&db, "up")[0].samples, expected(0, 10));
}

#[test]
fn segments_rotate_by_size_and_all_of_them_load_again() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        segment_bytes: 80,
        ..small_chunks(dir.path())
    };
    let db = Db::open(opts.clone()).unwrap();
    let up = metric("up", "api");
    for step in 0..5 {
        fill(&db, &up, step * 20, step * 20 + 20);
        db.flush().unwrap();
    }
    // The first flush writes one chunk with the labels (75 bytes with the file header),
    // which leaves room for the second; every later flush fills a segment of its own.
    assert_eq!(
        db.stats().segments,
        4,
        "a segment closes once past 80 bytes"
    );
    drop(db);
    let db = Db::open(opts).unwrap();
    assert_eq!(
        (db.recovery().segments, db.recovery().segments_scanned),
        (4, 1),
        "only the last lacks a footer"
    );
    assert_eq!(select_all(&db, "up")[0].samples, expected(0, 100));
    // Flush 3 (samples 30..50) is in the second segment, flush 4 (50..70) in the third.
    let across = db.select(&[Matcher::equal("job", "api")], T0 + 450_000, T0 + 520_000);
    assert_eq!(across[0].samples, expected(45, 53));
}
