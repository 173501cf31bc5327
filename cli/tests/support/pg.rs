//! A fresh database on the tests' PostgreSQL (`CATALYST_TEST_POSTGRES_URL`, set by scripts/test).

/// Drops and creates the database `name`; its URL.
pub fn fresh_database(name: &str) -> String {
    let admin = std::env::var("CATALYST_TEST_POSTGRES_URL")
        .expect("CATALYST_TEST_POSTGRES_URL (scripts/test sets it)");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        for sql in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::query(&sql).execute(&mut conn).await.unwrap();
        }
    });
    format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
}
