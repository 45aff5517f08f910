//! The `Source` of one Sparkplug B connection: checks the login with a short-lived client, and
//! pages through the journal its subscriber fills.

use std::sync::Arc;

use async_trait::async_trait;
use millrace_connector::{
    ConnectorError, Credentials, IdPage, Page, PageRequest, RejectedRecord, Source,
};
use millrace_model::ObjectType;
use rumqttc::{AsyncClient, Event, Packet};

use crate::config::{BrokerConfig, CONNECT_TIMEOUT};
use crate::journal::JournalError;
use crate::subscriber::{describe, Hub};
use crate::{mapping, OBJECTS};

/// Ids listed per page for reconciliation.
const ID_PAGE: u32 = 5_000;

/// One connection's client.
pub struct SparkplugSource {
    hub: Arc<Hub>,
    config: BrokerConfig,
}

impl SparkplugSource {
    /// Reads the credentials; contacts nothing.
    pub fn open(hub: Arc<Hub>, credentials: &Credentials) -> Result<Self, ConnectorError> {
        Ok(SparkplugSource {
            hub,
            config: BrokerConfig::from_credentials(credentials)?,
        })
    }
}

fn journal_failed(err: JournalError) -> ConnectorError {
    ConnectorError::Unreachable(err.to_string())
}

fn supported(object: ObjectType) -> Result<(), ConnectorError> {
    if OBJECTS.contains(&object) {
        Ok(())
    } else {
        Err(ConnectorError::Unsupported(object.slug().to_owned()))
    }
}

#[async_trait]
impl Source for SparkplugSource {
    /// Logs in with a clean, short-lived session under its own client id, so that the check
    /// neither takes over nor discards the subscriber's persistent session.
    async fn check(&self) -> Result<(), ConnectorError> {
        let client_id = format!("{}-check", self.config.client_id);
        let options = self.config.mqtt_options(&client_id, true)?;
        let (client, mut eventloop) = AsyncClient::new(options, 8);
        let connack = tokio::time::timeout(CONNECT_TIMEOUT, async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(err) => return Err(err),
                }
            }
        })
        .await;
        match connack {
            Err(_) => Err(ConnectorError::Timeout(format!(
                "the broker at {}:{} did not accept a connection within {} s",
                self.config.host,
                self.config.port,
                CONNECT_TIMEOUT.as_secs()
            ))),
            Ok(Err(err)) => {
                let (refused, message) = describe(&self.config, &err);
                Err(if refused {
                    ConnectorError::CredentialsRejected(message)
                } else {
                    ConnectorError::Unreachable(message)
                })
            }
            Ok(Ok(())) => {
                // Say goodbye properly; the broker forgets a clean session at once.
                if client.try_disconnect().is_ok() {
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
                        while eventloop.poll().await.is_ok() {}
                    })
                    .await;
                }
                Ok(())
            }
        }
    }

    async fn read_page(&self, request: &PageRequest) -> Result<Page, ConnectorError> {
        supported(request.object)?;
        let subscriber = self.hub.subscriber(&self.config).await?;
        let after = match request.page.as_deref() {
            None => {
                subscriber.ready().await?;
                None
            }
            Some(token) => Some(token.parse::<i64>().map_err(|_| {
                ConnectorError::Malformed(format!("`{token}` is not a sparkplug page token"))
            })?),
        };
        let since_us = request
            .since
            .map_or(i64::MIN, |since| since.timestamp_micros());
        let page_size = request.page_size.max(1);
        let stored = subscriber
            .journal
            .read(request.object.slug(), since_us, after, page_size)
            .await
            .map_err(journal_failed)?;
        let last_stamp = stored.last().map(|record| record.changed_us);
        let next_page = match last_stamp {
            Some(last) if stored.len() as u32 == page_size => Some(last.to_string()),
            _ => None,
        };

        let mut page = Page {
            ordered_by_change: true,
            ..Page::default()
        };
        for record in stored {
            let remote_id = record.remote_id.clone();
            match mapping::to_source_record(&request.connection_id, record) {
                Ok(record) => page.records.push(record),
                Err(err) => page.rejected.push(RejectedRecord {
                    remote_id: Some(remote_id),
                    reason: err.to_string(),
                }),
            }
        }

        // Messages that could not be read are reported with the readings they would have
        // given, once per listing that covers the time they arrived.
        if request.object == ObjectType::MeterReadings {
            let from = since_us.max(after.map_or(i64::MIN, |after| after.saturating_add(1)));
            let until = if next_page.is_some() {
                last_stamp.unwrap_or(i64::MAX)
            } else {
                i64::MAX
            };
            let rejections = subscriber
                .journal
                .rejections(from, until)
                .await
                .map_err(journal_failed)?;
            page.rejected
                .extend(rejections.into_iter().map(|rejection| RejectedRecord {
                    remote_id: Some(rejection.subject),
                    reason: rejection.reason,
                }));
        }
        page.next_page = next_page;
        Ok(page)
    }

    async fn list_ids(
        &self,
        object: ObjectType,
        page: Option<&str>,
    ) -> Result<IdPage, ConnectorError> {
        supported(object)?;
        let subscriber = self.hub.subscriber(&self.config).await?;
        let remote_ids = subscriber
            .journal
            .remote_ids(object.slug(), page, ID_PAGE)
            .await
            .map_err(journal_failed)?;
        let next_page = (remote_ids.len() as u32 == ID_PAGE)
            .then(|| remote_ids.last().cloned())
            .flatten();
        Ok(IdPage {
            remote_ids,
            next_page,
        })
    }
}
