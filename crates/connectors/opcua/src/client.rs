//! One OPC UA session: opening it with the connection's security and identity (and saying
//! clearly why it failed), browsing the address space, reading attributes and raw history.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use millrace_connector::ConnectorError;
use opcua::client::services::Read;
use opcua::client::{
    ClientBuilder, ClientEndpoint, HistoryReadAction, IdentityToken, Session, SessionConnectMode,
    SessionPollResult, UARequest,
};
use opcua::crypto::{SecurityPolicy, X509};
use opcua::types::{
    AttributeId, BrowseDescription, BrowseDirection, BrowseResultMask, DataValue,
    EndpointDescription, HistoryData, HistoryReadValueId, MessageSecurityMode, NodeClass,
    NodeClassMask, NodeId, QualifiedName, ReadRawModifiedDetails, ReadValueId, ReferenceTypeId,
    StatusCode, TimestampsToReturn, UAString, VariableId, Variant,
};
use tokio::task::JoinHandle;

use crate::config::{Config, Security};

/// How long one request may take before the session gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An open session and the task that drives it; dropping it closes the session.
pub struct Connection {
    pub session: Arc<Session>,
    driver: JoinHandle<()>,
    /// Set when the session was lost and a new one replaced it: the server forgot the old
    /// session's subscriptions, and servers need not transfer them.
    renewed: Arc<std::sync::atomic::AtomicBool>,
}

impl Connection {
    /// Returns whether this is still the session first opened: `false` once it ended for good
    /// (closed, or out of reconnection attempts) or was replaced by a new one after a loss.
    pub fn is_alive(&self) -> bool {
        !self.driver.is_finished() && !self.renewed.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Closing politely needs the driver still running, and a drop cannot wait: the server
        // ends the session when its timeout runs out.
        self.driver.abort();
    }
}

/// How hard a session tries to come back after losing the server.
#[derive(Debug, Clone, Copy)]
pub enum Persistence {
    /// A session for one sync run: a few quick retries, then the run fails.
    Run,
    /// A subscription's session: it reconnects for as long as it lives.
    Forever,
}

/// Opens a session to the configured endpoint and waits until it is activated.
///
/// A refused identity gives [`ConnectorError::CredentialsRejected`]; an endpoint that cannot be
/// reached gives [`ConnectorError::Unreachable`]; a server certificate that is not trusted, or
/// a security mode the server does not offer, gives [`ConnectorError::InvalidCredentials`].
pub async fn connect(
    config: &Config,
    pki_dir: &Path,
    persistence: Persistence,
) -> Result<Connection, ConnectorError> {
    let mut client = ClientBuilder::new()
        .application_name("Millrace")
        .application_uri("urn:millrace:opcua-client")
        .product_uri("urn:millrace")
        .create_sample_keypair(true)
        .pki_dir(pki_dir)
        // Trust is decided below, from the connection's pinned thumbprint or its explicit
        // choice to trust any certificate; the library then only checks key and signature.
        .trust_server_certs(true)
        .verify_server_certs(false)
        .session_retry_limit(match persistence {
            Persistence::Run => 2,
            Persistence::Forever => -1,
        })
        .session_retry_initial(Duration::from_millis(500))
        .session_retry_max(Duration::from_secs(10))
        .session_timeout(60_000)
        .request_timeout(REQUEST_TIMEOUT)
        // The session is built from the server's own endpoint description below; naming the
        // URL here only records in the client's configuration what it talks to.
        .endpoint("connection", ClientEndpoint::new(config.endpoint.as_str()))
        .client()
        .map_err(|errors| {
            ConnectorError::Unreachable(format!(
                "the OPC UA client could not be set up: {}",
                errors.join("; ")
            ))
        })?;

    let endpoints = client
        .get_server_endpoints_from_url(config.endpoint.as_str())
        .await
        .map_err(|err| unreachable(&config.endpoint, err.status()))?;
    let endpoint = choose_endpoint(config, &endpoints)?;
    if config.security != Security::None {
        trust_server(config, &endpoint)?;
    }

    let identity = match &config.user {
        Some((name, password)) => IdentityToken::new_user_name(name.as_str(), password.as_str()),
        None => IdentityToken::new_anonymous(),
    };
    let (session, event_loop) = client
        .connect_to_endpoint_directly(endpoint, identity)
        .map_err(|err| unreachable(&config.endpoint, err.status()))?;

    // The event loop reports the first connection attempt's outcome; after that it keeps the
    // session alive (and, for `Forever`, reconnects) until the connection is dropped.
    let (first, outcome) = tokio::sync::oneshot::channel();
    let endpoint_url = config.endpoint.clone();
    let renewed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let renewed_by_driver = renewed.clone();
    let driver = tokio::spawn(async move {
        let mut first = Some(first);
        let stream = event_loop.enter();
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(SessionPollResult::Reconnected(mode)) => match first.take() {
                    Some(first) => {
                        let _ = first.send(Ok(()));
                    }
                    None => {
                        if matches!(mode, SessionConnectMode::NewSession(_)) {
                            renewed_by_driver.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        tracing::debug!(endpoint = %endpoint_url, ?mode, "opc ua session back");
                    }
                },
                Ok(SessionPollResult::ReconnectFailed(status)) if first.is_some() => {
                    let _ = first.take().unwrap().send(Err(status));
                    return;
                }
                Ok(SessionPollResult::ConnectionLost(status)) => {
                    tracing::debug!(endpoint = %endpoint_url, %status, "opc ua connection lost");
                }
                Ok(_) => {}
                Err(status) => {
                    if let Some(first) = first.take() {
                        let _ = first.send(Err(status));
                    }
                    tracing::debug!(endpoint = %endpoint_url, %status, "opc ua session ended");
                    return;
                }
            }
        }
    });
    let connection = Connection {
        session,
        driver,
        renewed,
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, outcome).await {
        Ok(Ok(Ok(()))) => Ok(connection),
        Ok(Ok(Err(status))) => Err(session_refused(config, status)),
        Ok(Err(_)) => Err(ConnectorError::Unreachable(format!(
            "the session to {} ended before it was activated",
            config.endpoint
        ))),
        Err(_) => Err(ConnectorError::Timeout(format!(
            "{} did not activate a session within {}s",
            config.endpoint,
            REQUEST_TIMEOUT.as_secs()
        ))),
    }
}

fn choose_endpoint(
    config: &Config,
    endpoints: &[EndpointDescription],
) -> Result<EndpointDescription, ConnectorError> {
    let (policy, mode) = match config.security {
        Security::None => (SecurityPolicy::None, MessageSecurityMode::None),
        Security::Basic256Sha256 => (
            SecurityPolicy::Basic256Sha256,
            MessageSecurityMode::SignAndEncrypt,
        ),
    };
    let found = endpoints.iter().find(|endpoint| {
        endpoint.security_policy_uri.as_ref() == policy.to_uri() && endpoint.security_mode == mode
    });
    let Some(found) = found else {
        let offered: Vec<String> = endpoints
            .iter()
            .map(|endpoint| {
                let policy = endpoint.security_policy_uri.as_ref();
                let short = policy.rsplit('#').next().unwrap_or(policy);
                format!("{short}/{:?}", endpoint.security_mode)
            })
            .collect();
        return Err(ConnectorError::InvalidCredentials(format!(
            "{} offers no endpoint with security {:?}; it offers {}",
            config.endpoint,
            config.security,
            offered.join(", ")
        )));
    };
    // Servers often advertise a host name of their own; the connection's URL is the one that
    // reaches them from here.
    let mut chosen = found.clone();
    chosen.endpoint_url = UAString::from(config.endpoint.as_str());
    Ok(chosen)
}

/// Checks the server's certificate against the connection's pinned thumbprint, unless the
/// connection chose to trust any certificate.
fn trust_server(config: &Config, endpoint: &EndpointDescription) -> Result<(), ConnectorError> {
    let certificate = X509::from_byte_string(&endpoint.server_certificate).map_err(|err| {
        ConnectorError::InvalidCredentials(format!(
            "the secure channel to {} cannot be set up: the server sent no usable \
             certificate ({err})",
            config.endpoint
        ))
    })?;
    let thumbprint = certificate
        .thumbprint()
        .as_hex_string()
        .to_ascii_lowercase();
    match &config.server_thumbprint {
        Some(pinned) if *pinned == thumbprint => Ok(()),
        Some(pinned) => Err(ConnectorError::InvalidCredentials(format!(
            "the secure channel to {} is not trusted: the server's certificate has thumbprint \
             {thumbprint}, not the pinned {pinned}",
            config.endpoint
        ))),
        None if config.trust_server_certificate => Ok(()),
        None => Err(ConnectorError::InvalidCredentials(format!(
            "the secure channel to {} is not trusted: set `server_certificate_thumbprint` to \
             the server certificate's SHA-1 thumbprint ({thumbprint} is what the server \
             presents; compare it with the server's own display), or set \
             `trust_server_certificate` to true",
            config.endpoint
        ))),
    }
}

fn unreachable(endpoint: &str, status: StatusCode) -> ConnectorError {
    ConnectorError::Unreachable(format!("{endpoint} could not be reached ({status})"))
}

/// Says why activating a session failed, in terms an operator can act on.
fn session_refused(config: &Config, status: StatusCode) -> ConnectorError {
    let endpoint = &config.endpoint;
    if status == StatusCode::BadUserAccessDenied
        || status == StatusCode::BadIdentityTokenRejected
        || status == StatusCode::BadIdentityTokenInvalid
        || status == StatusCode::BadUserSignatureInvalid
    {
        let who = match &config.user {
            Some((name, _)) => format!("the user `{name}` with this password"),
            None => "an anonymous login".to_owned(),
        };
        return ConnectorError::CredentialsRejected(format!("{endpoint} refused {who} ({status})"));
    }
    if status == StatusCode::BadSecurityChecksFailed
        || status == StatusCode::BadCertificateUntrusted
        || status == StatusCode::BadCertificateInvalid
        || status == StatusCode::BadSecurityPolicyRejected
    {
        return ConnectorError::CredentialsRejected(format!(
            "the secure channel to {endpoint} failed ({status}): the server may not trust \
             Millrace's client certificate yet; trust it on the server and connect again"
        ));
    }
    unreachable(endpoint, status)
}

/// A node found by browsing.
#[derive(Debug, Clone)]
pub struct Found {
    pub node: NodeId,
    pub class: NodeClass,
    pub browse_name: String,
    pub display_name: String,
    pub type_definition: NodeId,
    /// The object it was found below, `None` for the browse root's children.
    pub parent: Option<NodeId>,
}

/// Nodes browsed per request.
const BROWSE_BATCH: usize = 50;
/// A bound on the objects a browse walks, against cycles and runaway address spaces.
const BROWSE_LIMIT: usize = 100_000;

impl Connection {
    /// Walks the hierarchical references below `root` (objects and variables), breadth first.
    ///
    /// Fails with [`ConnectorError::InvalidCredentials`] when `root` does not exist.
    pub async fn browse(&self, root: &NodeId) -> Result<Vec<Found>, ConnectorError> {
        self.check_exists(root).await?;
        let mut found = Vec::new();
        let mut seen = std::collections::HashSet::from([root.clone()]);
        let mut level: Vec<NodeId> = vec![root.clone()];
        while !level.is_empty() {
            let mut next = Vec::new();
            for batch in level.chunks(BROWSE_BATCH) {
                let descriptions: Vec<BrowseDescription> = batch
                    .iter()
                    .map(|node| BrowseDescription {
                        node_id: node.clone(),
                        browse_direction: BrowseDirection::Forward,
                        reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
                        include_subtypes: true,
                        node_class_mask: (NodeClassMask::OBJECT | NodeClassMask::VARIABLE).bits(),
                        result_mask: BrowseResultMask::All as u32,
                    })
                    .collect();
                let mut results = self
                    .session
                    .browse(&descriptions, 1000, None)
                    .await
                    .map_err(|err| failed("browsing", err.status()))?;
                for (index, node) in batch.iter().enumerate() {
                    let Some(result) = results.get_mut(index) else {
                        continue;
                    };
                    let mut references = result.references.take().unwrap_or_default();
                    let mut continuation = result.continuation_point.clone();
                    while !continuation.is_null() {
                        let more = self
                            .session
                            .browse_next(false, &[continuation.clone()])
                            .await
                            .map_err(|err| failed("browsing", err.status()))?;
                        let Some(mut more) = more.into_iter().next() else {
                            break;
                        };
                        references.extend(more.references.take().unwrap_or_default());
                        continuation = more.continuation_point;
                    }
                    // The browse root is where the walk starts, not a parent: its children
                    // have none.
                    let parent = (node != root).then(|| node.clone());
                    for reference in references {
                        if !reference.node_id.namespace_uri.is_null()
                            || reference.node_id.server_index != 0
                        {
                            continue;
                        }
                        let child = reference.node_id.node_id.clone();
                        if !seen.insert(child.clone()) {
                            continue;
                        }
                        if found.len() >= BROWSE_LIMIT {
                            return Err(ConnectorError::Malformed(format!(
                                "more than {BROWSE_LIMIT} nodes below the browse root: choose a \
                                 narrower `browse_root`"
                            )));
                        }
                        let item = Found {
                            node: child.clone(),
                            class: reference.node_class,
                            browse_name: reference.browse_name.name.as_ref().to_owned(),
                            display_name: reference.display_name.text.as_ref().to_owned(),
                            type_definition: reference.type_definition.node_id.clone(),
                            parent: parent.clone(),
                        };
                        if item.class == NodeClass::Object {
                            next.push(child);
                        }
                        found.push(item);
                    }
                }
            }
            level = next;
        }
        found.sort_by_key(|item| item.node.to_string());
        Ok(found)
    }

    async fn check_exists(&self, node: &NodeId) -> Result<(), ConnectorError> {
        let values = self.read(&[(node.clone(), AttributeId::NodeClass)]).await?;
        match values.first().and_then(|value| value.status) {
            Some(status) if status.is_bad() => Err(ConnectorError::InvalidCredentials(format!(
                "the browse root {node} does not exist on the server ({status})"
            ))),
            _ => Ok(()),
        }
    }

    /// Reads one attribute of each node, with source timestamps.
    pub async fn read(
        &self,
        nodes: &[(NodeId, AttributeId)],
    ) -> Result<Vec<DataValue>, ConnectorError> {
        let mut values = Vec::with_capacity(nodes.len());
        for batch in nodes.chunks(500) {
            let requests: Vec<ReadValueId> = batch
                .iter()
                .map(|(node, attribute)| ReadValueId {
                    node_id: node.clone(),
                    attribute_id: *attribute as u32,
                    index_range: Default::default(),
                    data_encoding: QualifiedName::null(),
                })
                .collect();
            let answer = self
                .session
                .read(&requests, TimestampsToReturn::Both, 0.0)
                .await
                .map_err(|err| failed("reading attributes", err.status()))?;
            values.extend(answer);
        }
        Ok(values)
    }

    /// Returns the server's clock: the later of its `ServerStatus.CurrentTime` variable and
    /// the time stamped on the answer (servers refresh the variable only every second or so).
    pub async fn server_time(&self) -> Result<DateTime<Utc>, ConnectorError> {
        let node: NodeId = VariableId::Server_ServerStatus_CurrentTime.into();
        let answer = Read::new(&self.session)
            .node(ReadValueId::from(node))
            .timestamps_to_return(TimestampsToReturn::Server)
            .send(self.session.channel())
            .await
            .map_err(|err| failed("reading the server's clock", err.status()))?;
        let stamped = Some(answer.response_header.timestamp)
            .filter(|time| !time.is_null())
            .map(|time| time.as_chrono());
        let current = answer
            .results
            .unwrap_or_default()
            .into_iter()
            .next()
            .and_then(|value| match value.value {
                Some(Variant::DateTime(time)) => Some(time.as_chrono()),
                _ => None,
            });
        stamped.max(current).ok_or_else(|| {
            ConnectorError::Malformed("the server did not tell its current time".to_owned())
        })
    }

    /// Reads up to `limit` raw historical values of `node` with source timestamps in
    /// `[start, end]`, in the server's order (oldest first when `start < end`, newest first
    /// when `start > end`).
    pub async fn history(
        &self,
        node: &NodeId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DataValue>, ConnectorError> {
        let details = ReadRawModifiedDetails {
            is_read_modified: false,
            start_time: start.into(),
            end_time: end.into(),
            num_values_per_node: limit,
            return_bounds: false,
        };
        let request = HistoryReadValueId {
            node_id: node.clone(),
            index_range: Default::default(),
            data_encoding: QualifiedName::null(),
            continuation_point: Default::default(),
        };
        let results = self
            .session
            .history_read(
                HistoryReadAction::ReadRawModifiedDetails(details),
                TimestampsToReturn::Source,
                // A page asks for at most `limit` values and continues from the last one's
                // time, so no continuation point has to outlive the request.
                true,
                &[request],
            )
            .await
            .map_err(|err| failed("reading history", err.status()))?;
        let Some(result) = results.into_iter().next() else {
            return Ok(Vec::new());
        };
        if result.status_code.is_bad() && result.status_code != StatusCode::BadNoData {
            return Err(failed(
                &format!("reading the history of {node}"),
                result.status_code,
            ));
        }
        if result.history_data.is_null() {
            return Ok(Vec::new());
        }
        let data = result
            .history_data
            .into_inner_as::<HistoryData>()
            .ok_or_else(|| {
                ConnectorError::Malformed(format!("the history of {node} is not HistoryData"))
            })?;
        Ok(data.data_values.unwrap_or_default())
    }
}

fn failed(what: &str, status: StatusCode) -> ConnectorError {
    if status == StatusCode::BadTimeout || status == StatusCode::BadRequestTimeout {
        return ConnectorError::Timeout(format!("{what} timed out ({status})"));
    }
    if status == StatusCode::BadNotConnected
        || status == StatusCode::BadConnectionClosed
        || status == StatusCode::BadCommunicationError
        || status == StatusCode::BadSessionClosed
        || status == StatusCode::BadSessionIdInvalid
    {
        return ConnectorError::Unreachable(format!("{what} failed: {status}"));
    }
    ConnectorError::Status {
        status: 502,
        detail: format!("{what} failed: {status}"),
    }
}

/// Parses a node id from its text form, as remote ids hold it.
pub fn parse_node(text: &str) -> Result<NodeId, ConnectorError> {
    NodeId::from_str(text)
        .map_err(|_| ConnectorError::Malformed(format!("`{text}` is not a node id")))
}
