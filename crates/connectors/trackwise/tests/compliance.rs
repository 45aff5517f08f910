//! The connector compliance harness (crates/compliance) against the TrackWise Digital sandbox,
//! every check on SQLite and on PostgreSQL.

millrace_compliance::compliance_tests!(millrace_trackwise::compliance::subject());
