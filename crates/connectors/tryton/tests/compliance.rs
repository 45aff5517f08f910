//! The connector compliance harness (crates/compliance) against a real Tryton server, every
//! check on SQLite and on PostgreSQL.

millrace_compliance::compliance_tests!(millrace_tryton::compliance::subject());
