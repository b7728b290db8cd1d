//! Request and response types shared by every provider behind the router: chat messages and the
//! per-option probabilities of a structured reply's enum fields. No behaviour beyond lookups.

use serde::{Deserialize, Serialize};

/// Who said a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One chat message, as every wire format has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }
}

/// The model's probability of each option of one enum field of a structured reply, normalised
/// over the field's options (they sum to 1), in the schema's option order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceProbs {
    /// The schema property's name.
    pub field: String,
    /// `(option, probability)` for every option of the field's `enum`.
    pub options: Vec<(String, f32)>,
}

impl ChoiceProbs {
    /// The probability of `option`, when it is one of the field's options.
    pub fn prob(&self, option: &str) -> Option<f32> {
        self.options
            .iter()
            .find(|(o, _)| o == option)
            .map(|(_, p)| *p)
    }
}
