//! Template admission of a GameServer: its variables must be ones its Template declares and
//! pass their rules, and a user may change only those the Template makes `userEditable`
//! (whoever may update Templates may set any). Checked on every write of a GameServer's spec,
//! dry runs too. A GameServer whose Template does not exist yet is let through when an operator
//! writes it (the nodelet reports it when it would start), so a GitOps tree may be applied in
//! any order; a user's write is refused (`spec.template`), since it cannot be checked.

use catalyst_schemas::gameserver::GameServerSpec;
use catalyst_schemas::template::{check_server_variables, Editor, TemplateSpec};
use catalyst_schemas::validation::Causes;
use catalyst_schemas::{lookup_kind, ValidationError};
use serde_json::Value;

use super::object::meta_str;
use super::types::{Registry, Scope};
use crate::error::{ApiError, ApiResult};

fn spec_of<T: serde::de::DeserializeOwned>(obj: &Value) -> Option<T> {
    serde_json::from_value(obj.get("spec")?.clone()).ok()
}

/// Who the caller in flight is for `userEditable`: the API server installs the answer.
pub type EditorCheck = std::sync::Arc<dyn Fn() -> Editor + Send + Sync>;

impl Registry {
    /// Installs how the caller in flight is told apart (once; without it every writer is an
    /// operator, as in-process writers are).
    pub fn set_editor_check(&self, check: EditorCheck) {
        let _ = self.editor_check.set(check);
    }

    fn editor(&self) -> Editor {
        self.editor_check.get().map_or(Editor::Operator, |f| f())
    }

    /// Refuses a GameServer write (`next`, replacing `previous`) whose variables break its
    /// Template.
    ///
    /// # Errors
    /// 422 naming `spec.variables[NAME]` for each variable at fault.
    pub(in crate::registry) async fn check_template_variables(
        &self,
        previous: Option<&Value>,
        next: &Value,
    ) -> ApiResult<()> {
        if previous.is_some_and(|p| p.get("spec") == next.get("spec")) {
            return Ok(());
        }
        let Some(server) = spec_of::<GameServerSpec>(next) else {
            return Ok(()); // admission has refused it already
        };
        let Some(name) = server.template.clone() else {
            return Ok(());
        };
        let kind = lookup_kind("templates").expect("a known kind");
        let scope = Scope {
            kind,
            namespace: None,
        };
        let editor = self.editor();
        let template = match self.get(scope, &name).await {
            Ok(t) => t,
            // an operator's GitOps tree may name a Template applied after it; a user's write
            // cannot be checked against a Template that is not there
            Err(ApiError::NotFound { .. }) if editor == Editor::Operator => return Ok(()),
            Err(ApiError::NotFound { .. }) => {
                return Err(ApiError::Invalid {
                    kind: "GameServer".into(),
                    name: meta_str(next, "name").unwrap_or_default().to_owned(),
                    source: ValidationError::single(
                        "spec.template",
                        format!("no Template named {name:?}"),
                    ),
                })
            }
            Err(e) => return Err(e),
        };
        let Some(t) = spec_of::<TemplateSpec>(&template) else {
            return Ok(());
        };
        // a previous spec on another template: every value is new
        let before = previous
            .and_then(spec_of::<GameServerSpec>)
            .filter(|p| p.template.as_deref() == Some(name.as_str()));
        let mut causes = Causes::default();
        check_server_variables(
            &name,
            &t,
            &server,
            before.as_ref(),
            self.editor(),
            &mut causes,
        );
        causes
            .into_result()
            .map_err(|source: ValidationError| ApiError::Invalid {
                kind: "GameServer".into(),
                name: meta_str(next, "name").unwrap_or_default().to_owned(),
                source,
            })
    }
}
