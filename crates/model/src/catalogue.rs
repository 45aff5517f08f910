//! The catalogue entry a connector declares for its system.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::connection::Deployment;
use crate::ObjectType;

/// What kind of product a system is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SystemCategory {
    Erp,
    Cmms,
    Eam,
    Mes,
    Qms,
    Wms,
    Historian,
}

/// A system of the catalogue, as `GET /v1/systems` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SystemInfo {
    /// The system id used in `POST /v1/connections`, e.g. `ibm_maximo`.
    pub id: String,
    pub name: String,
    pub vendor: String,
    pub category: SystemCategory,
    /// 1 for simple cloud CMMS, 2 for mid-size ERP, EAM and MES, 4 for complex suites.
    pub tier: u32,
    pub credits: CreditCost,
    pub credential_fields: Vec<CredentialField>,
    pub objects: Vec<ObjectSupport>,
    /// How this connector has been tested: against the real product, or against a sandbox.
    pub verification: String,
}

impl SystemInfo {
    /// Returns the credits a connection of this system costs in `deployment`.
    pub fn credit_cost(&self, deployment: Deployment) -> u32 {
        match deployment {
            Deployment::Cloud => self.credits.cloud,
            Deployment::OnPremise => self.credits.on_premise,
        }
    }

    /// Returns the object types this system can be read for.
    pub fn readable_objects(&self) -> impl Iterator<Item = ObjectType> + '_ {
        self.objects
            .iter()
            .filter(|support| support.read)
            .map(|support| support.object)
    }
}

/// Credits a connection costs per deployment model; on-premise doubles the tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreditCost {
    pub cloud: u32,
    pub on_premise: u32,
}

impl CreditCost {
    /// Returns the cost of a system of `tier`.
    pub fn for_tier(tier: u32) -> Self {
        CreditCost {
            cloud: tier,
            on_premise: tier * 2,
        }
    }
}

/// One field of a system's credential form.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CredentialField {
    pub name: String,
    pub label: String,
    /// Secret fields are masked in forms and never shown again.
    pub secret: bool,
    pub required: bool,
    pub description: String,
}

/// What a system supports for one object type.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct ObjectSupport {
    #[schema(value_type = String)]
    pub object: ObjectType,
    pub read: bool,
    /// Whether changes can be read since a watermark instead of the whole set.
    pub incremental: bool,
    /// Whether the source reports deletions itself (otherwise reconciliation finds them).
    pub deletes: bool,
    pub write: bool,
}
