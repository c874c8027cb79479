//! A routing decision and the reasons for it.

use serde::{Deserialize, Serialize};

/// How the category was found. Named as the protocol names it (`given`,
/// `inferred`, `fallback`) in `route --json` too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CategorySource {
    /// The operator named it.
    Given,
    /// Keywords in the text matched it.
    Inferred,
    /// Nothing matched: the general grid category.
    Fallback,
}

impl CategorySource {
    pub fn as_str(self) -> &'static str {
        match self {
            CategorySource::Given => "given",
            CategorySource::Inferred => "inferred",
            CategorySource::Fallback => "fallback",
        }
    }
}

/// Where a case goes and why. `worker == None` means the command centre.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub category: String,
    pub category_source: CategorySource,
    /// The keywords of the text that chose the category.
    pub keywords: Vec<String>,
    pub grid: Option<String>,
    pub township: Option<String>,
    pub department: Option<String>,
    pub worker: Option<String>,
    /// The rule that matched, e.g. `point/department`, `address/grid/community`
    /// or `command-centre` (see gridline-routing for the grammar).
    pub rule: String,
    /// The explanation chain, one step per entry, in order.
    pub steps: Vec<String>,
}

impl Decision {
    pub fn is_dispatch(&self) -> bool {
        self.worker.is_some()
    }

    /// The steps as one readable sentence.
    pub fn explanation(&self) -> String {
        self.steps.join("; ")
    }
}
