//! `fastpick seed coupons`: N coupons of the original recipe and their keyword rows, in one
//! transaction (all or nothing), by COPY (default) or plain multi-row INSERTs (for comparison).

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::NaiveDateTime;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use crate::cli::{SeedCouponsArgs, SeedVia};
use crate::config::Settings;
use crate::domain::Clock;
use crate::seed::{NewCoupon, progress, recipe_coupon};

// Offset 0 is the newest coupon and gets the lowest id, as in the original recipe.

/// Rows sent per COPY message.
const COPY_CHUNK: usize = 10_000;
/// Coupons per INSERT statement (13 parameters each, under PostgreSQL's 65,535).
const INSERT_BATCH: usize = 1_000;

/// What one seeding run did.
#[derive(Debug, Clone, Copy)]
pub struct SeedReport {
    pub coupons: u64,
    pub keywords: u64,
    pub seconds: f64,
}

/// Runs `seed coupons` and prints what it did.
pub async fn run(settings: &Settings, args: SeedCouponsArgs) -> anyhow::Result<()> {
    let pool = crate::db::connect_postgres(&settings.database).await?;
    crate::db::run_migrations(&pool).await?;
    let mut conn = pool.acquire().await?;
    let clock = Clock::new(settings.app.timezone);
    let report = seed_coupons(&mut conn, &clock, &args).await?;
    println!(
        "seeded {} coupons and {} keyword rows via {:?} in {:.1} s ({:.0} coupons/s, {:.0} rows/s)",
        report.coupons,
        report.keywords,
        args.via,
        report.seconds,
        report.coupons as f64 / report.seconds,
        (report.coupons + report.keywords) as f64 / report.seconds
    );
    Ok(())
}

/// Seeds in one transaction: on any error nothing is left behind.
pub async fn seed_coupons(
    conn: &mut PgConnection,
    clock: &Clock,
    args: &SeedCouponsArgs,
) -> anyhow::Result<SeedReport> {
    let start = Instant::now();
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    // Nobody else writes coupons meanwhile, so the ids we hand out stay ours.
    sqlx::query("lock table tb_coupon, tb_coupon_keyword in exclusive mode")
        .execute(&mut *tx)
        .await?;
    let existing: i64 = sqlx::query_scalar("select count(*) from tb_coupon")
        .fetch_one(&mut *tx)
        .await?;
    if existing > 0 && args.reset {
        sqlx::query("truncate tb_issued_coupon, tb_coupon_keyword, tb_coupon restart identity")
            .execute(&mut *tx)
            .await?;
        eprintln!("reset: removed {existing} coupons, their keywords and issued coupons");
    } else if existing > 0 && !args.append {
        bail!(
            "tb_coupon already holds {existing} coupons: pass --append to add more, or --reset to replace them"
        );
    }
    let base_id: i64 = sqlx::query_scalar("select coalesce(max(id), 0) from tb_coupon")
        .fetch_one(&mut *tx)
        .await?;
    let now = clock.now();
    let keywords = match args.via {
        SeedVia::Copy => copy_coupons(&mut tx, base_id, args.count, now).await?,
        SeedVia::Insert => insert_coupons(&mut tx, base_id, args.count, now).await?,
    };
    sqlx::query("select setval(pg_get_serial_sequence('tb_coupon', 'id'), greatest((select max(id) from tb_coupon), 1))")
        .execute(&mut *tx)
        .await?;
    tx.commit()
        .await
        .context("failed to commit the seeded coupons")?;
    let seconds = start.elapsed().as_secs_f64();
    // Statistics at once, for every caller (the demo too): until autovacuum's next analyze,
    // up to a minute later, the planner guesses the keyword table's size and searches
    // without the cache ran about 3x slower (`fastpick lab search` against the demo).
    sqlx::query("analyze tb_coupon, tb_coupon_keyword")
        .execute(&mut *conn)
        .await?;
    Ok(SeedReport {
        coupons: u64::from(args.count),
        keywords,
        seconds,
    })
}

/// Formats a timestamp as COPY text.
fn ts(out: &mut String, t: NaiveDateTime) {
    let _ = write!(out, "{}", t.format("%Y-%m-%d %H:%M:%S%.6f"));
}

/// Appends one coupon row in COPY text format (the recipe's texts hold no tabs or backslashes).
fn coupon_line(out: &mut String, id: i64, c: &NewCoupon) {
    let _ = write!(out, "{id}\t");
    ts(out, c.created_at);
    out.push('\t');
    ts(out, c.created_at);
    let _ = write!(
        out,
        "\t{}\t{}\t29CM 혜택\t상세 설명\t{}\t0\t1\tf\t",
        c.brand, c.title, c.total_quantity
    );
    ts(out, c.start_at);
    out.push('\t');
    ts(out, c.end_at);
    out.push_str("\tAVAILABLE\n");
}

async fn copy_coupons(
    conn: &mut PgConnection,
    base_id: i64,
    count: u32,
    now: NaiveDateTime,
) -> anyhow::Result<u64> {
    let bar = progress(u64::from(count), "coupons");
    let mut rng = rand::rng();
    let mut keyword_text = String::new();
    let mut keyword_rows = 0u64;
    let mut copy = conn
        .copy_in_raw(
            "copy tb_coupon (id, created_at, updated_at, brand, title, summary, description, total_quantity, \
             issued_quantity, limit_per_user, is_sold_out, start_at, end_at, use_status) from stdin",
        )
        .await?;
    let mut chunk = String::with_capacity(COPY_CHUNK * 160);
    for i in 0..count {
        let id = base_id + i64::from(i) + 1;
        let coupon = recipe_coupon(i, now, &mut rng);
        coupon_line(&mut chunk, id, &coupon);
        for word in &coupon.keywords {
            ts(&mut keyword_text, coupon.created_at);
            let _ = writeln!(keyword_text, "\t{id}\t{word}");
            keyword_rows += 1;
        }
        if chunk.len() >= COPY_CHUNK * 150 {
            copy.send(std::mem::take(&mut chunk).into_bytes()).await?;
            bar.set_position(u64::from(i) + 1);
        }
    }
    if !chunk.is_empty() {
        copy.send(chunk.into_bytes()).await?;
    }
    copy.finish().await.context("COPY into tb_coupon failed")?;
    bar.finish_and_clear();
    let bar = progress(keyword_rows, "keywords");
    let mut copy = conn
        .copy_in_raw("copy tb_coupon_keyword (created_at, coupon_id, keyword) from stdin")
        .await?;
    let bytes = keyword_text.into_bytes();
    for part in bytes.chunks(4 << 20) {
        copy.send(part).await?;
        bar.inc((part.len() / 45) as u64);
    }
    copy.finish()
        .await
        .context("COPY into tb_coupon_keyword failed")?;
    bar.finish_and_clear();
    Ok(keyword_rows)
}

/// Plain batched INSERTs of the same rows, kept to measure COPY against.
async fn insert_coupons(
    conn: &mut PgConnection,
    base_id: i64,
    count: u32,
    now: NaiveDateTime,
) -> anyhow::Result<u64> {
    let bar = progress(u64::from(count), "coupons");
    let mut rng = rand::rng();
    let mut keyword_rows = 0u64;
    let mut done = 0u32;
    while done < count {
        let n = (count - done).min(INSERT_BATCH as u32);
        let batch: Vec<(i64, NewCoupon)> = (done..done + n)
            .map(|i| (base_id + i64::from(i) + 1, recipe_coupon(i, now, &mut rng)))
            .collect();
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
            "insert into tb_coupon (id, created_at, updated_at, brand, title, summary, description, total_quantity, \
             issued_quantity, limit_per_user, is_sold_out, start_at, end_at, use_status) ",
        );
        qb.push_values(&batch, |mut row, (id, c)| {
            row.push_bind(*id)
                .push_bind(c.created_at)
                .push_bind(c.created_at)
                .push_bind(c.brand);
            row.push_bind(c.title.as_str())
                .push_bind("29CM 혜택")
                .push_bind("상세 설명");
            row.push_bind(c.total_quantity)
                .push_bind(0)
                .push_bind(1)
                .push_bind(false);
            row.push_bind(c.start_at)
                .push_bind(c.end_at)
                .push_unseparated(", 'AVAILABLE'");
        });
        qb.build().execute(&mut *conn).await?;
        let words: Vec<(i64, NaiveDateTime, &str)> = batch
            .iter()
            .flat_map(|(id, c)| {
                c.keywords
                    .iter()
                    .map(move |w| (*id, c.created_at, w.as_str()))
            })
            .collect();
        let mut kq: QueryBuilder<Postgres> =
            QueryBuilder::new("insert into tb_coupon_keyword (coupon_id, created_at, keyword) ");
        kq.push_values(&words, |mut row, (id, created, word)| {
            row.push_bind(*id).push_bind(*created).push_bind(*word);
        });
        kq.build().execute(&mut *conn).await?;
        keyword_rows += words.len() as u64;
        done += n;
        bar.set_position(u64::from(done));
    }
    bar.finish_and_clear();
    Ok(keyword_rows)
}
