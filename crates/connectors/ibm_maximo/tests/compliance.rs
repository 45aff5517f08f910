//! The connector compliance harness (crates/compliance) against the Maximo sandbox, every
//! check on SQLite and on PostgreSQL.

millrace_compliance::compliance_tests!(millrace_ibm_maximo::compliance::subject());
