//! Store-level tests: reads across head, pending chunks, segments and checkpoint; crash
//! recovery; retention; matchers and metadata reads; append rules; concurrency.

mod lab;
mod reads;
mod recovery;
mod retention;

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::monitor::series::{MatchOp, Matcher, Queryable, SeriesData};

const T0: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

fn small_chunks(dir: &Path) -> Options {
    Options {
        dir: dir.to_owned(),
        chunk_max_samples: 10,
        ..Options::default()
    }
}

fn metric(name: &str, job: &str) -> Labels {
    Labels::from_pairs(&[("__name__", name), ("job", job)])
}

fn m(name: &str, op: MatchOp, value: &str) -> Matcher {
    Matcher::new(name, op, value).unwrap()
}

/// Appends samples `from..to` (one every 10 s, value = index) to `labels`.
fn fill(db: &Db, labels: &Labels, from: i64, to: i64) {
    let batch: Vec<(Labels, i64, f64)> = (from..to)
        .map(|i| (labels.clone(), T0 + i * 10_000, i as f64))
        .collect();
    assert_eq!(db.append_batch(&batch).appended, (to - from) as usize);
}

fn expected(from: i64, to: i64) -> Vec<(i64, f64)> {
    (from..to).map(|i| (T0 + i * 10_000, i as f64)).collect()
}

fn select_all(db: &Db, name: &str) -> Vec<SeriesData> {
    db.select(&[Matcher::equal("__name__", name)], i64::MIN, i64::MAX)
}

/// Copies the store's files as a SIGKILL at this instant would leave them.
fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn select_reads_disk_pending_and_open_chunks_in_order_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(small_chunks(dir.path())).unwrap();
    let up = metric("up", "api");
    fill(&db, &up, 0, 45);
    db.flush().unwrap();
    fill(&db, &up, 45, 95);
    db.flush().unwrap();
    fill(&db, &up, 95, 130);
    let stats = db.stats();
    assert_eq!((stats.chunks_on_disk, stats.samples_on_disk), (9, 90));
    assert_eq!(
        (stats.pending_chunks, stats.head_chunks, stats.head_samples),
        (3, 1, 40)
    );

    let all = select_all(&db, "up");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].labels, up);
    assert_eq!(all[0].samples, expected(0, 130));
    // Inclusive bounds that cut chunks on disk and in memory.
    let part = db.select(
        &[Matcher::equal("job", "api")],
        T0 + 15 * 10_000,
        T0 + 101 * 10_000,
    );
    assert_eq!(part[0].samples, expected(15, 102));
    assert!(
        db.select(&[Matcher::equal("job", "api")], T0 + 200 * 10_000, i64::MAX)
            .is_empty()
    );
    assert!(db.select(&[Matcher::equal("job", "api")], 5, 4).is_empty());
    // A recent range reads the newest group on disk only (samples 40..90), not the one
    // before it.
    let reads = db.stats().group_reads_total;
    let recent = db.select(&[Matcher::equal("job", "api")], T0 + 85 * 10_000, i64::MAX);
    assert_eq!(recent[0].samples, expected(85, 130));
    assert_eq!(db.stats().group_reads_total - reads, 1);
    // Also when the range starts in that group's oldest chunk.
    let reads = db.stats().group_reads_total;
    let recent = db.select(&[Matcher::equal("job", "api")], T0 + 45 * 10_000, i64::MAX);
    assert_eq!(recent[0].samples, expected(45, 130));
    assert_eq!(db.stats().group_reads_total - reads, 1);
}

/// Group records in the store's segment files.
fn group_records(dir: &Path) -> usize {
    let mut groups = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "seg") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let mut off = segment::HEADER_LEN as usize;
        while off + segment::FRAME_LEN < bytes.len() {
            let len = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
            groups += usize::from(bytes[off + segment::FRAME_LEN] == group::KIND_GROUP);
            off += segment::FRAME_LEN + len;
        }
    }
    groups
}

#[test]
fn a_query_reads_each_group_once_however_many_of_its_series_match() {
    let dir = tempfile::tempdir().unwrap();
    let (db, groups) = three_flushes(dir.path(), 3000, Options::default().read_cache_bytes);
    assert!(groups > 3, "{groups} groups: several a flush");

    let reads = db.stats().group_reads_total;
    let all = select_all(&db, "load");
    assert_eq!(all.len(), 3000);
    assert!(all.iter().all(|s| s.samples.len() == 35));
    assert_eq!(db.stats().group_reads_total - reads, groups as u64);
    // One series: the one group of each of the three flushes that holds it.
    let reads = db.stats().group_reads_total;
    let one = db.select(
        &[Matcher::equal("job", "a-rather-long-job-name-2999")],
        i64::MIN,
        i64::MAX,
    );
    let want: Vec<(i64, f64)> = (0..35)
        .map(|i| (T0 + i * 10_000, (i * 2999) as f64))
        .collect();
    assert_eq!(one[0].samples, want);
    assert_eq!(db.stats().group_reads_total - reads, 3);
}

/// A store with `series` series of 35 samples in three flushes, and its group count.
fn three_flushes(dir: &Path, series: usize, read_cache_bytes: usize) -> (Db, usize) {
    let db = Db::open(Options {
        read_cache_bytes,
        ..small_chunks(dir)
    })
    .unwrap();
    let labels: Vec<Labels> = (0..series)
        .map(|s| metric("load", &format!("a-rather-long-job-name-{s}")))
        .collect();
    for i in 0..35 {
        let batch: Vec<(Labels, i64, f64)> = labels
            .iter()
            .enumerate()
            .map(|(s, l)| (l.clone(), T0 + i * 10_000, (i * s as i64) as f64))
            .collect();
        db.append_batch(&batch);
        if i % 12 == 11 {
            db.flush().unwrap();
        }
    }
    db.flush().unwrap();
    let groups = group_records(dir);
    (db, groups)
}

#[test]
fn a_repeated_query_takes_its_groups_from_the_read_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = three_flushes(dir.path(), 300, 1 << 20);
    let one = [Matcher::equal("job", "a-rather-long-job-name-299")];
    let first = db.select(&one, i64::MIN, i64::MAX);
    let after_first = db.stats();
    assert_eq!(after_first.group_cache_hits_total, 0);
    let again = db.select(&one, i64::MIN, i64::MAX);
    let after_again = db.stats();
    assert_eq!(again, first);
    assert_eq!(first[0].samples.len(), 35);
    let visited = after_again.group_reads_total - after_first.group_reads_total;
    assert_eq!(visited, 3, "one group of each flush");
    assert_eq!(after_again.group_cache_hits_total, 3, "all from the cache");

    // Without a cache every query reads the file again, with the same answer.
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = three_flushes(dir.path(), 300, 0);
    assert_eq!(db.select(&one, i64::MIN, i64::MAX), first);
    assert_eq!(db.select(&one, i64::MIN, i64::MAX), first);
    assert_eq!(db.stats().group_cache_hits_total, 0);
}

#[test]
fn the_read_cache_keeps_to_its_budget() {
    // Every group of 3,000 series is read; a 64 KiB budget holds a few of them at most.
    let dir = tempfile::tempdir().unwrap();
    let (db, groups) = three_flushes(dir.path(), 3000, 64 << 10);
    assert!(groups > 6, "{groups} groups");
    let all = select_all(&db, "load");
    assert!(all.iter().all(|s| s.samples.len() == 35));
    let held = db.read_cache.held();
    assert!(
        held.0 <= 64 << 10 && held.1 < groups,
        "{held:?} of {groups}"
    );
    assert!(held.1 > 0, "the newest groups stay");
    // A query over everything again still answers in full (some groups from the file).
    assert_eq!(select_all(&db, "load"), all);
}

#[test]
fn the_store_is_shareable_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Db>();
}

#[test]
fn a_directory_serves_one_store_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(small_chunks(dir.path())).unwrap();
    assert!(matches!(
        Db::open(small_chunks(dir.path())),
        Err(DbError::Locked(_))
    ));
    drop(db);
    assert!(Db::open(small_chunks(dir.path())).is_ok());
}

#[test]
fn invalid_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = Options {
        chunk_max_samples: 1,
        ..small_chunks(dir.path())
    };
    assert!(matches!(Db::open(bad), Err(DbError::InvalidOptions(_))));
    let bad = Options {
        segment_bytes: 0,
        ..small_chunks(dir.path())
    };
    assert!(matches!(Db::open(bad), Err(DbError::InvalidOptions(_))));
}

#[test]
fn concurrent_appends_queries_and_flushes_agree_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(small_chunks(dir.path())).unwrap());
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..300 {
                    let batch: Vec<(Labels, i64, f64)> = (0..20)
                        .map(|s| (metric("load", &format!("{w}-{s}")), T0 + i * 1000, i as f64))
                        .collect();
                    db.append_batch(&batch);
                }
            })
        })
        .collect();
    let flusher = {
        let db = db.clone();
        std::thread::spawn(move || (0..20).for_each(|_| db.flush().unwrap()))
    };
    let mut seen = 0;
    while writers.iter().any(|w| !w.is_finished()) {
        for series in select_all(&db, "load") {
            assert!(series.samples.windows(2).all(|w| w[0].0 < w[1].0));
            assert_eq!(
                series.samples[0],
                (T0, 0.0),
                "no chunk goes missing mid-flush"
            );
            seen += 1;
        }
    }
    writers.into_iter().for_each(|w| w.join().unwrap());
    flusher.join().unwrap();
    db.flush().unwrap();
    let all = select_all(&db, "load");
    assert_eq!(all.len(), 40);
    assert!(all.iter().all(|s| {
        s.samples
            == (0..300)
                .map(|i| (T0 + i * 1000, i as f64))
                .collect::<Vec<_>>()
    }));
    let stats = db.stats();
    assert_eq!(stats.samples_on_disk + stats.head_samples, 12_000);
    println!("concurrent reads saw {seen} series snapshots");
}

/// Bytes per sample on disk (segments, footers included) for 100 series of 1200 samples.
fn disk_figure(value: impl Fn(i64, i64) -> f64) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(Options {
        dir: dir.path().to_owned(),
        ..Options::default()
    })
    .unwrap();
    for i in 0..1200 {
        let batch: Vec<(Labels, i64, f64)> = (0..100)
            .map(|s| {
                (
                    metric("m", &format!("job-{s}")),
                    T0 + i * 10_000,
                    value(s, i),
                )
            })
            .collect();
        db.append_batch(&batch);
    }
    db.maintain(T0 + 100 * HOUR).unwrap();
    db.flush().unwrap();
    let stats = db.stats();
    assert_eq!((stats.samples_on_disk, stats.head_samples), (120_000, 0));
    (stats.bytes_on_disk - stats.checkpoint_bytes) as f64 / stats.samples_on_disk as f64
}

#[test]
fn disk_figures_for_constant_series_and_steady_counters() {
    let constant = disk_figure(|_, _| 1.0);
    let counter = disk_figure(|s, i| (i * (s % 7 + 1)) as f64);
    println!(
        "on disk, 10 s interval: constant {constant:.3}, steady counter {counter:.3} bytes/sample"
    );
    // Series scraped together share their timestamp column, and these values take a
    // few bytes a chunk.
    assert!(constant < 0.05, "{constant}");
    assert!(counter < 0.05, "{counter}");
}
