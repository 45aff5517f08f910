//! The compliance harness against the CAP test service, on SQLite and PostgreSQL.

millrace_compliance::compliance_tests!(millrace_sap::compliance::subject());
