//! The connector compliance harness (crates/compliance) against a real PostgreSQL MES
//! database, every check on Millrace's SQLite and PostgreSQL backends. The checks that inject
//! HTTP faults through the harness's proxy say they skipped: this source is not HTTP.

millrace_compliance::compliance_tests!(millrace_mes_sql::compliance::subject(
    millrace_mes_sql::Engine::Postgres
));
