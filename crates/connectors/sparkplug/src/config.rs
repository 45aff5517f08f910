//! A connection's broker settings, read from its credentials: address, login, TLS, filters.

use std::sync::Arc;
use std::time::Duration;

use millrace_connector::{ConnectorError, Credentials};
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use crate::topic::NAMESPACE;

/// How long a connection attempt may take before it counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The broker settings of one connection.
#[derive(Clone)]
pub struct BrokerConfig {
    pub host: String,
    pub port: u16,
    pub tls: Option<TlsSettings>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The MQTT client id of the persistent session; the broker keeps the session by it.
    pub client_id: String,
    /// Sparkplug group ids to subscribe to; empty means every group.
    pub groups: Vec<String>,
    /// Edge node ids to subscribe to; empty means every node.
    pub edge_nodes: Vec<String>,
    /// A digest of the credential fields but the secrets: one subscriber and one journal per
    /// distinct value.
    pub fingerprint: String,
}

/// TLS settings: which server certificates to trust and what client certificate to show.
#[derive(Clone)]
pub struct TlsSettings {
    /// PEM certificates to trust instead of the public web roots.
    pub ca_pem: Option<String>,
    /// PEM client certificate chain and private key, for brokers that ask for one.
    pub client_auth: Option<(String, String)>,
    /// Accepts any server certificate. Off unless the credentials turn it on explicitly.
    pub insecure_skip_verify: bool,
}

impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .field("username", &self.username)
            .field("client_id", &self.client_id)
            .field("groups", &self.groups)
            .field("edge_nodes", &self.edge_nodes)
            .finish_non_exhaustive()
    }
}

impl BrokerConfig {
    /// Reads the settings from a connection's credentials, without contacting the broker.
    pub fn from_credentials(credentials: &Credentials) -> Result<Self, ConnectorError> {
        let invalid = |message: String| ConnectorError::InvalidCredentials(message);
        let raw_url = credentials.require("broker_url")?;
        let url = url::Url::parse(raw_url)
            .map_err(|err| invalid(format!("`broker_url` is not a URL: {err}")))?;
        let secure = match url.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" | "tls" => true,
            other => {
                return Err(invalid(format!(
                    "`broker_url` has the scheme `{other}`; use mqtt:// or mqtts://"
                )))
            }
        };
        let host = url
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| invalid("`broker_url` names no host".to_owned()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url.port().unwrap_or(if secure { 8883 } else { 1883 });

        let flag = |name: &str| -> Result<bool, ConnectorError> {
            match credentials.fields().get(name) {
                None | Some(serde_json::Value::Null) => Ok(false),
                Some(serde_json::Value::Bool(value)) => Ok(*value),
                Some(serde_json::Value::String(text)) => match text.trim() {
                    "" | "false" | "0" | "no" => Ok(false),
                    "true" | "1" | "yes" => Ok(true),
                    other => Err(invalid(format!(
                        "`{name}` must be true or false, not `{other}`"
                    ))),
                },
                Some(other) => Err(invalid(format!(
                    "`{name}` must be true or false, not {other}"
                ))),
            }
        };
        let insecure_skip_verify = flag("tls_insecure_skip_verify")?;
        let ca_pem = credentials.get("ca_pem").map(str::to_owned);
        let client_cert = credentials.get("client_cert_pem");
        let client_key = credentials.get("client_key_pem");
        let client_auth = match (client_cert, client_key) {
            (Some(cert), Some(key)) => Some((cert.to_owned(), key.to_owned())),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "`client_cert_pem` and `client_key_pem` go together".to_owned(),
                ))
            }
        };
        let tls_asked = ca_pem.is_some() || client_auth.is_some() || insecure_skip_verify;
        if tls_asked && !secure {
            return Err(invalid(
                "TLS settings were given for a plain mqtt:// broker; use mqtts://".to_owned(),
            ));
        }
        let tls = secure.then_some(TlsSettings {
            ca_pem,
            client_auth,
            insecure_skip_verify,
        });

        let list = |name: &str| -> Result<Vec<String>, ConnectorError> {
            let items: Vec<String> = credentials
                .get(name)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect();
            if let Some(bad) = items.iter().find(|item| item.contains(['/', '+', '#'])) {
                return Err(invalid(format!(
                    "`{name}` holds `{bad}`: ids may not contain '/', '+' or '#'"
                )));
            }
            Ok(items)
        };
        let groups = list("group_ids")?;
        let edge_nodes = list("edge_node_ids")?;

        // The secrets stay out of the digest: it names the session on the broker and the
        // journal file, and a new password must resume the same session.
        let fingerprint = {
            let mut identity = credentials.fields().clone();
            identity.remove("password");
            identity.remove("client_key_pem");
            let canonical = serde_json::to_vec(&identity).unwrap_or_default();
            hex::encode(Sha256::digest(&canonical))
        };
        let client_id = match credentials.get("client_id") {
            Some(id) => id.to_owned(),
            None => format!("millrace-{}", &fingerprint[..14]),
        };
        let tls_config = tls.clone();
        let config = BrokerConfig {
            host,
            port,
            tls: tls_config,
            username: credentials.get("username").map(str::to_owned),
            password: credentials.get("password").map(str::to_owned),
            client_id,
            groups,
            edge_nodes,
            fingerprint,
        };
        // Reading the PEM text now turns a pasted wrong certificate into a connect-time error.
        config.transport()?;
        Ok(config)
    }

    /// Returns the topic filters to subscribe to, from the group and edge node filters.
    pub fn topic_filters(&self) -> Vec<String> {
        let groups = if self.groups.is_empty() {
            vec!["+".to_owned()]
        } else {
            self.groups.clone()
        };
        let mut filters = Vec::new();
        for group in &groups {
            if self.edge_nodes.is_empty() {
                filters.push(format!("{NAMESPACE}/{group}/#"));
            } else {
                for node in &self.edge_nodes {
                    filters.push(format!("{NAMESPACE}/{group}/+/{node}/#"));
                }
            }
        }
        filters
    }

    /// Returns whether a message of `group` and `edge_node` passes the filters (a broker may
    /// deliver more than asked when an old session's subscriptions linger).
    pub fn accepts(&self, group: &str, edge_node: &str) -> bool {
        let group_ok = self.groups.is_empty() || self.groups.iter().any(|g| g == group);
        let node_ok = self.edge_nodes.is_empty() || self.edge_nodes.iter().any(|n| n == edge_node);
        group_ok && node_ok
    }

    /// Builds the MQTT options for a client id and session kind.
    pub fn mqtt_options(
        &self,
        client_id: &str,
        clean_session: bool,
    ) -> Result<MqttOptions, ConnectorError> {
        let mut options = MqttOptions::new(client_id, &self.host, self.port);
        options
            .set_clean_session(clean_session)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(16 * 1024 * 1024, 1024 * 1024)
            .set_transport(self.transport()?);
        if let Some(username) = &self.username {
            options.set_credentials(username, self.password.clone().unwrap_or_default());
        }
        Ok(options)
    }

    fn transport(&self) -> Result<Transport, ConnectorError> {
        let Some(tls) = &self.tls else {
            return Ok(Transport::Tcp);
        };
        let config = tls.client_config(&self.host)?;
        Ok(Transport::Tls(TlsConfiguration::Rustls(Arc::new(config))))
    }
}

impl TlsSettings {
    fn client_config(&self, host: &str) -> Result<rustls::ClientConfig, ConnectorError> {
        let invalid = |message: String| ConnectorError::InvalidCredentials(message);
        if ServerName::try_from(host.to_owned()).is_err() {
            return Err(invalid(format!("`{host}` is not a name TLS can verify")));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|err| invalid(format!("TLS setup failed: {err}")))?;

        let builder = if self.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
        } else {
            let mut roots = rustls::RootCertStore::empty();
            match &self.ca_pem {
                Some(pem) => {
                    let certificates = read_certificates(pem, "ca_pem")?;
                    for certificate in certificates {
                        roots.add(certificate).map_err(|err| {
                            invalid(format!("`ca_pem` holds an unusable certificate: {err}"))
                        })?;
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            builder.with_root_certificates(roots)
        };

        match &self.client_auth {
            None => Ok(builder.with_no_client_auth()),
            Some((cert_pem, key_pem)) => {
                let chain = read_certificates(cert_pem, "client_cert_pem")?;
                let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|err| {
                    invalid(format!("`client_key_pem` holds no PEM private key: {err}"))
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|err| invalid(format!("the client certificate is unusable: {err}")))
            }
        }
    }
}

fn read_certificates(
    pem: &str,
    field: &str,
) -> Result<Vec<CertificateDer<'static>>, ConnectorError> {
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|err| {
            ConnectorError::InvalidCredentials(format!("`{field}` is not PEM: {err}"))
        })?;
    if certificates.is_empty() {
        return Err(ConnectorError::InvalidCredentials(format!(
            "`{field}` holds no PEM certificate"
        )));
    }
    Ok(certificates)
}

/// Accepts every server certificate: what `tls_insecure_skip_verify` asks for, for brokers
/// with self-signed certificates on a trusted network. Signatures are still checked.
#[derive(Debug)]
struct AcceptAnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(value: serde_json::Value) -> Credentials {
        Credentials::new(value.as_object().unwrap().clone())
    }

    #[test]
    fn filters_become_topic_filters_and_the_client_id_is_stable() {
        let creds = credentials(serde_json::json!({
            "broker_url": "mqtt://broker.local",
            "group_ids": "Plant1, Plant2",
            "edge_node_ids": "line-a",
        }));
        let config = BrokerConfig::from_credentials(&creds).unwrap();
        assert_eq!(config.port, 1883);
        assert!(config.tls.is_none());
        assert_eq!(
            config.topic_filters(),
            vec!["spBv1.0/Plant1/+/line-a/#", "spBv1.0/Plant2/+/line-a/#"]
        );
        assert!(config.accepts("Plant2", "line-a"));
        assert!(!config.accepts("Plant3", "line-a"));
        assert!(!config.accepts("Plant1", "line-b"));
        let again = BrokerConfig::from_credentials(&creds).unwrap();
        assert_eq!(config.client_id, again.client_id);
        let mut rotated = creds.fields().clone();
        rotated.insert("password".into(), "new secret".into());
        let rotated = BrokerConfig::from_credentials(&Credentials::new(rotated)).unwrap();
        assert_eq!(
            rotated.client_id, config.client_id,
            "a new password resumes the session"
        );
        assert!(config.client_id.len() <= 23, "{}", config.client_id);
    }

    #[test]
    fn bad_settings_are_refused_before_any_connection() {
        let refused =
            |value: serde_json::Value| match BrokerConfig::from_credentials(&credentials(value)) {
                Err(ConnectorError::InvalidCredentials(message)) => message,
                other => panic!("expected invalid credentials, got {other:?}"),
            };
        assert!(refused(serde_json::json!({})).contains("broker_url"));
        assert!(refused(serde_json::json!({"broker_url": "http://x"})).contains("scheme"));
        assert!(
            refused(serde_json::json!({"broker_url": "mqtt://x", "ca_pem": "x"}))
                .contains("mqtts://")
        );
        assert!(
            refused(serde_json::json!({"broker_url": "mqtts://x", "ca_pem": "junk"}))
                .contains("ca_pem")
        );
        assert!(
            refused(serde_json::json!({"broker_url": "mqtt://x", "group_ids": "a/b"}))
                .contains("group_ids")
        );
        assert!(refused(serde_json::json!({
            "broker_url": "mqtts://x", "tls_insecure_skip_verify": "maybe"
        }))
        .contains("true or false"));
        let secure = BrokerConfig::from_credentials(&credentials(serde_json::json!({
            "broker_url": "mqtts://broker.local"
        })))
        .unwrap();
        assert_eq!(secure.port, 8883);
        assert!(!secure.tls.unwrap().insecure_skip_verify);
    }
}
