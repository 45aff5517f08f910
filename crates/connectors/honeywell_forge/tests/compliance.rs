//! The connector compliance harness (crates/compliance) against the Forge gateway sandbox,
//! every check on SQLite and on PostgreSQL.

millrace_compliance::compliance_tests!(millrace_honeywell_forge::compliance::subject());
