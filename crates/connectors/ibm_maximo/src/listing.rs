//! The continuation of a change-ordered listing: keyset paging on the change time, with a
//! phase for records whose change time is null and one for a second shared by many records.
//!
//! The sync engine trusts `ordered_by_change = true` to mean: every record whose *current*
//! change time is below the newest change time delivered so far has been delivered (changes
//! committed late with older times aside, which its overlap window covers). It resumes a
//! crashed read at that newest time without a continuation, and makes it the watermark at the
//! end of a read. Maximo's `stablePaging` cannot keep that promise: the record handles are
//! fixed at the first page but their contents are current, so a record changed mid-listing
//! arrives early with a new change time and the newest time jumps past every record not yet
//! read. A fresh query per page keyed on the change time keeps it:
//!
//! 1. **Nulls** (full reads only): records whose change time is null have no time to key on;
//!    they are listed first, with stable paging, ordered by key. A record that gained a change
//!    time since the list was fixed is dropped from this phase: it is now in the keyset range
//!    read next. Being in no keyset range, null records are re-read by every read, full or
//!    incremental; content hashes absorb those that did not change.
//! 2. **Changed**: `attr>="S"` (or `attr="*"`, not null, when a full read starts), ordered by
//!    `+attr,+keys`, no page number. Each answer is the first page of the records at or after
//!    `S` *now*, so a record changed since an earlier page has moved behind the position and is
//!    read again later. The next page starts at the second of the newest record delivered: the
//!    records of that second already delivered are delivered again (content hashes absorb
//!    them), none is skipped.
//! 3. **Second**: when more than half of a page shares its newest second, restarting at that
//!    second could repeat (or nearly repeat) the same page forever. Instead every record of that
//!    second is listed with stable paging (`attr>="S" and attr<"S+1"`: a bounded set), dropping
//!    records that moved to a later time (the keyset phase reads them there), then keyset paging
//!    goes on at `S+1`.
//!
//! **Whole seconds.** Where literals are whole seconds with an explicit `+00:00` offset. Real
//! Maximo renders times to the second and may store fractions (Db2, SQL Server); the sandbox
//! stores and renders fractions. Positions are therefore whole seconds: a phase covers
//! `[S, S+1)` or `>= S` exactly, whatever fraction a record stores, and a record is placed in a
//! second by flooring the time it is rendered with (Maximo's formatter truncates). A strict
//! `attr>"S"` is never sent: against stored fractions it would skip `S.5` records rendered as
//! `S`.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use millrace_connector::ConnectorError;
use serde::{Deserialize, Serialize};

/// Where a change-ordered listing stands. Encoded as JSON in `Page::next_page`, e.g.
/// `{"phase":"changed","from":"2024-03-10T06:59:59Z"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Listing {
    /// Records with a null change time, by stable paging; `href` is the next page, `None`
    /// before the first. `nulls` is the size of the list, for the expected total.
    Nulls {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        href: Option<String>,
        #[serde(default)]
        nulls: u64,
        /// Where the keyset phase starts after the nulls (the read's `since`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<DateTime<Utc>>,
    },
    /// Records changed at or after the second `from` (every non-null one when `None`), one
    /// fresh query per page. `count_plus` asks for the collection count and reports it plus
    /// this many (the nulls already listed); only the first keyset page of a listing asks.
    Changed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<DateTime<Utc>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count_plus: Option<u64>,
    },
    /// Every record changed within the second starting at `second`, by stable paging.
    Second {
        second: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        href: Option<String>,
    },
}

/// Returns the whole second `time` falls in.
pub fn second_of(time: DateTime<Utc>) -> DateTime<Utc> {
    time.trunc_subsecs(0)
}

impl Listing {
    /// Where a listing continues: the decoded continuation, or the start of a listing of what
    /// changed since `since` (everything without one). Every listing starts with the records
    /// whose change time is null: no `since` can tell whether they changed, so each read
    /// delivers them again and content hashes absorb the ones that did not change.
    pub fn resume(
        page: Option<&str>,
        since: Option<DateTime<Utc>>,
    ) -> Result<Self, ConnectorError> {
        match (page, since) {
            (Some(page), _) => serde_json::from_str(page).map_err(|err| {
                ConnectorError::Malformed(format!(
                    "not a maximo listing continuation ({err}): {page}"
                ))
            }),
            (None, since) => Ok(Listing::Nulls {
                href: None,
                nulls: 0,
                since: since.map(second_of),
            }),
        }
    }

    /// Returns the continuation text.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Decides what follows a page of the keyset phase, from the change times it delivered (in
    /// listing order) and whether the server had more.
    pub fn after_changed(times: &[DateTime<Utc>], more: bool) -> Option<Listing> {
        let newest = times.iter().max()?;
        if !more {
            return None;
        }
        let second = second_of(*newest);
        let in_newest_second = times.iter().filter(|t| second_of(**t) == second).count();

        // Restarting at `second` re-reads `in_newest_second` records. Past half a page that
        // would crawl (or, for a whole page, loop), so the second is listed on its own. Below
        // half, `second` is later than the page's first record, so every page makes progress.
        let crowded = in_newest_second * 2 > times.len();
        Some(if crowded {
            Listing::Second { second, href: None }
        } else {
            Listing::Changed {
                from: Some(second),
                count_plus: None,
            }
        })
    }

    /// Decides what follows a page of the second phase.
    pub fn after_second(second: DateTime<Utc>, next_href: Option<String>) -> Listing {
        match next_href {
            Some(href) => Listing::Second {
                second,
                href: Some(href),
            },
            None => Listing::Changed {
                from: Some(second + Duration::seconds(1)),
                count_plus: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(second: u32, millis: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 10, 6, 0, second).unwrap() + Duration::milliseconds(millis)
    }

    #[test]
    fn continuations_round_trip() {
        for listing in [
            Listing::Nulls {
                href: None,
                nulls: 0,
                since: None,
            },
            Listing::Nulls {
                href: Some("http://h/maximo/oslc/os/mxapisr?pageno=2&_sp=1".into()),
                nulls: 7,
                since: Some(at(5, 0)),
            },
            Listing::Changed {
                from: None,
                count_plus: Some(7),
            },
            Listing::Changed {
                from: Some(at(5, 0)),
                count_plus: None,
            },
            Listing::Second {
                second: at(5, 0),
                href: Some("http://h/x?a=b c".into()),
            },
        ] {
            let text = listing.encode();
            assert_eq!(
                Listing::resume(Some(&text), None).unwrap(),
                listing,
                "{text}"
            );
        }
        assert_eq!(
            Listing::Changed {
                from: Some(at(5, 0)),
                count_plus: None
            }
            .encode(),
            r#"{"phase":"changed","from":"2024-03-10T06:00:05Z"}"#
        );
        assert!(Listing::resume(Some("http://h/maximo/oslc/os/mxapisr?pageno=2"), None).is_err());
    }

    #[test]
    fn every_listing_starts_with_the_nulls_then_goes_on_at_the_floored_second() {
        assert_eq!(
            Listing::resume(None, Some(at(5, 999))).unwrap(),
            Listing::Nulls {
                href: None,
                nulls: 0,
                since: Some(at(5, 0)),
            }
        );
        assert_eq!(
            Listing::resume(None, None).unwrap(),
            Listing::Nulls {
                href: None,
                nulls: 0,
                since: None,
            }
        );
    }

    #[test]
    fn the_next_keyset_page_starts_at_the_newest_second() {
        let times = [at(1, 0), at(2, 0), at(3, 100), at(3, 900)];
        assert_eq!(
            Listing::after_changed(&times, true),
            Some(Listing::Changed {
                from: Some(at(3, 0)),
                count_plus: None
            })
        );
        assert_eq!(Listing::after_changed(&times, false), None);
        assert_eq!(Listing::after_changed(&[], true), None);
    }

    #[test]
    fn a_crowded_second_is_listed_on_its_own_then_keyset_paging_goes_on_after_it() {
        let times = [at(1, 0), at(3, 0), at(3, 250), at(3, 500)];
        let next = Listing::after_changed(&times, true).unwrap();
        assert_eq!(
            next,
            Listing::Second {
                second: at(3, 0),
                href: None
            }
        );
        assert_eq!(
            Listing::after_second(at(3, 0), None),
            Listing::Changed {
                from: Some(at(4, 0)),
                count_plus: None
            }
        );
        let all_one_second = [at(3, 0); 100];
        assert!(matches!(
            Listing::after_changed(&all_one_second, true),
            Some(Listing::Second { .. })
        ));
    }
}
