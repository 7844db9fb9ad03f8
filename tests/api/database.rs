//! The app's PostgreSQL pool against a real server whose connections end under it.

use std::time::Duration;

use sqlx::{Connection, PgConnection};

use crate::helpers::spawn_app;

/// PostgreSQL ends every connection of the app (an admin, a failover, a firewall) while the
/// pool holds them idle. Once they have been idle for the pool's ping window (500 ms, as
/// HikariCP), each is pinged before use, found dead and replaced: no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_ended_while_idle_are_replaced_before_a_request_gets_one() {
    let app = spawn_app().await;
    let id = app.coupon(Default::default()).await;
    let path = format!("/api/v1/coupons/{id}");
    // Several at once, so the pool holds several connections.
    let burst = || futures_util::future::join_all((0..8).map(|_| app.get(&path, None)));
    let statuses: Vec<u16> = burst().await.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200; 8]);

    let url = format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        app.db_port, app.db_name
    );
    let mut admin = PgConnection::connect(&url).await.expect("admin connection");
    let ended: i64 = sqlx::query_scalar(
        "select count(*) filter (where pg_terminate_backend(pid)) from pg_stat_activity
         where datname = current_database() and application_name = 'fastpick'
           and pid <> pg_backend_pid()",
    )
    .fetch_one(&mut admin)
    .await
    .expect("terminate");
    admin.close().await.ok();
    assert!(ended >= 2, "ended {ended} of the app's connections");

    // Idle past the window: the condition itself, not a wait for readiness.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let statuses: Vec<u16> = burst().await.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200; 8], "after {ended} connections ended");
    for _ in 0..8 {
        assert_eq!(app.get(&path, None).await.status, 200);
    }
}
