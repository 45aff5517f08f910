//! Sparkplug B topic names: `spBv1.0/<group>/<message type>/<edge node>[/<device>]`.

use std::fmt;

/// The namespace every Sparkplug B topic starts with.
pub const NAMESPACE: &str = "spBv1.0";

/// The kinds of Sparkplug B message on an edge node's topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    NBirth,
    NDeath,
    DBirth,
    DDeath,
    NData,
    DData,
    NCmd,
    DCmd,
}

impl MessageType {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "NBIRTH" => MessageType::NBirth,
            "NDEATH" => MessageType::NDeath,
            "DBIRTH" => MessageType::DBirth,
            "DDEATH" => MessageType::DDeath,
            "NDATA" => MessageType::NData,
            "DDATA" => MessageType::DData,
            "NCMD" => MessageType::NCmd,
            "DCMD" => MessageType::DCmd,
            _ => return None,
        })
    }

    /// Returns the topic element, e.g. `NBIRTH`.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::NBirth => "NBIRTH",
            MessageType::NDeath => "NDEATH",
            MessageType::DBirth => "DBIRTH",
            MessageType::DDeath => "DDEATH",
            MessageType::NData => "NDATA",
            MessageType::DData => "DDATA",
            MessageType::NCmd => "NCMD",
            MessageType::DCmd => "DCMD",
        }
    }

    /// Returns whether messages of this type are about a device rather than the node itself.
    pub fn is_device(self) -> bool {
        matches!(
            self,
            MessageType::DBirth | MessageType::DDeath | MessageType::DData | MessageType::DCmd
        )
    }
}

/// A parsed edge node or device topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub group: String,
    pub message_type: MessageType,
    pub edge_node: String,
    /// Set exactly for the device message types.
    pub device: Option<String>,
}

impl Topic {
    /// Parses an edge node or device topic. Returns `Ok(None)` for `STATE` topics of host
    /// applications, which carry no plant data, and an error for anything else that is not a
    /// Sparkplug B topic.
    pub fn parse(topic: &str) -> Result<Option<Topic>, String> {
        let parts: Vec<&str> = topic.split('/').collect();
        if parts.first() != Some(&NAMESPACE) {
            return Err(format!("`{topic}` is not in the {NAMESPACE} namespace"));
        }
        if parts.get(1) == Some(&"STATE") {
            return Ok(None);
        }
        let message_type = parts
            .get(2)
            .and_then(|text| MessageType::parse(text))
            .ok_or_else(|| format!("`{topic}` names no Sparkplug message type"))?;
        let expected_parts = if message_type.is_device() { 5 } else { 4 };
        if parts.len() != expected_parts || parts.iter().any(|part| part.is_empty()) {
            return Err(format!(
                "`{topic}` does not have the {expected_parts} elements of a {} topic",
                message_type.as_str()
            ));
        }
        Ok(Some(Topic {
            group: parts[1].to_owned(),
            message_type,
            edge_node: parts[3].to_owned(),
            device: parts.get(4).map(|device| (*device).to_owned()),
        }))
    }

    /// Returns the `NCMD` topic of this topic's edge node.
    pub fn node_command(&self) -> String {
        format!("{NAMESPACE}/{}/NCMD/{}", self.group, self.edge_node)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{NAMESPACE}/{}/{}/{}",
            self.group,
            self.message_type.as_str(),
            self.edge_node
        )?;
        if let Some(device) = &self.device {
            write!(f, "/{device}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_device_and_state_topics_parse_and_others_are_refused() {
        let node = Topic::parse("spBv1.0/Plant1/NDATA/line-a")
            .unwrap()
            .unwrap();
        assert_eq!(node.group, "Plant1");
        assert_eq!(node.message_type, MessageType::NData);
        assert_eq!(node.device, None);
        assert_eq!(node.node_command(), "spBv1.0/Plant1/NCMD/line-a");

        let device = Topic::parse("spBv1.0/Plant1/DBIRTH/line-a/press")
            .unwrap()
            .unwrap();
        assert_eq!(device.device.as_deref(), Some("press"));
        assert_eq!(device.to_string(), "spBv1.0/Plant1/DBIRTH/line-a/press");

        assert_eq!(Topic::parse("spBv1.0/STATE/scada").unwrap(), None);
        assert!(Topic::parse("spBv1.0/Plant1/DDATA/line-a").is_err());
        assert!(Topic::parse("spBv1.0/Plant1/NDATA/line-a/extra").is_err());
        assert!(Topic::parse("spBv1.0/Plant1/NOPE/line-a").is_err());
        assert!(Topic::parse("other/Plant1/NDATA/line-a").is_err());
    }
}
