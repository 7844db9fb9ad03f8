//! Retention by age and size, and sealing the chunks of idle series.

use super::*;

/// A store whose segments close every 100 s of data: segment 1 holds `gone` (samples
/// 0..10) and `up` 0..10, then one flush per 10 minutes of `up` data, each closing a
/// segment whose newest sample is 1290 s, 1890 s, ... after `T0`.
fn aged_store(dir: &Path, retention_bytes: u64) -> (Db, Labels) {
    let opts = Options {
        segment_span: Duration::from_secs(100),
        retention: Duration::from_secs(3600),
        retention_bytes,
        ..small_chunks(dir)
    };
    let db = Db::open(opts).unwrap();
    let (gone, live) = (metric("gone", "api"), metric("up", "api"));
    fill(&db, &gone, 0, 10);
    fill(&db, &live, 0, 20);
    // `gone` stopped at 90 s: 2 h later its open chunk is sealed; `up`'s (190 s) is not.
    assert_eq!(
        db.maintain(T0 + 2 * HOUR + 100_000)
            .unwrap()
            .idle_chunks_sealed,
        1
    );
    db.flush().unwrap();
    for step in 1..6 {
        fill(&db, &live, step * 60, step * 60 + 20);
        db.flush().unwrap();
    }
    (db, live)
}

fn segment_files(dir: &Path) -> usize {
    let files = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path());
    files
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .count()
}

#[test]
fn retention_deletes_segments_older_than_the_retention_and_drops_empty_series() {
    let dir = tempfile::tempdir().unwrap();
    let (db, live) = aged_store(dir.path(), 0);
    assert_eq!((db.stats().segments, segment_files(dir.path())), (6, 6));
    // Cutoff 1350 s: the segments ending at 90 s, 690 s and 1290 s expire; the one from
    // 1300 s to 1890 s does not.
    let summary = db.maintain(T0 + 1_350_000 + HOUR).unwrap();
    assert_eq!((summary.segments_deleted, summary.series_dropped), (3, 1));
    assert_eq!((db.stats().segments, segment_files(dir.path())), (3, 3));
    assert!(select_all(&db, "gone").is_empty());
    assert_eq!(db.series(&[], i64::MIN, i64::MAX), vec![live]);
    let samples = &select_all(&db, "up")[0].samples;
    assert_eq!(samples.first().map(|s| s.0), Some(T0 + 1_300_000));
    assert_eq!(samples.len(), 70);
    // Metadata reads no longer see the deleted range.
    assert!(
        db.label_values("__name__", &[], i64::MIN, T0 + 1_000_000)
            .is_empty()
    );
}

#[test]
fn retention_by_size_deletes_oldest_segments_until_under_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = aged_store(dir.path(), 0);
    let limit = db.stats().bytes_on_disk - 1;
    drop(db);
    let dir2 = tempfile::tempdir().unwrap();
    let (db, _) = aged_store(dir2.path(), limit);
    let summary = db.maintain(T0).unwrap();
    assert_eq!(
        summary.segments_deleted, 1,
        "one segment brings the total under the limit"
    );
    assert!(db.stats().bytes_on_disk <= limit);
    assert!(
        select_all(&db, "gone").is_empty(),
        "the oldest segment held the old series"
    );
    assert_eq!(select_all(&db, "up")[0].samples[0].0, T0 + 100_000);
}

#[test]
fn idle_series_are_sealed_by_maintain_and_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(small_chunks(dir.path())).unwrap();
    fill(&db, &metric("up", "api"), 0, 5);
    assert_eq!(db.maintain(T0 + HOUR).unwrap().idle_chunks_sealed, 0);
    assert_eq!(db.maintain(T0 + 3 * HOUR).unwrap().idle_chunks_sealed, 1);
    db.flush().unwrap();
    let stats = db.stats();
    assert_eq!(
        (
            stats.head_chunks,
            stats.pending_chunks,
            stats.samples_on_disk
        ),
        (0, 0, 5)
    );
    assert_eq!(select_all(&db, "up")[0].samples, expected(0, 5));
}
