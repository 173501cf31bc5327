//! `explain KIND[.field…]`: documentation from the JSON Schema built into this binary. The
//! schema walk is [`catalyst_schemas::explain`]; [`render`] lays it out like kubectl.

use std::fmt::Write as _;

use catalyst_schemas::explain::{explain, Explanation};
use catalyst_schemas::API_VERSION;

use super::error::Outcome;
use super::out::Out;

/// Arguments of `explain`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// KIND or KIND.field.subfield.
    pub path: String,
}

impl ExplainArgs {
    /// Prints [`render`] of the path.
    ///
    /// # Errors
    /// An unknown kind or field, a closed stdout.
    pub fn run(&self, out: &mut Out) -> Outcome {
        out.print(&render(&explain(&self.path)?))?;
        Ok(0)
    }
}

/// The text of `explain`: kind and version, the field path, the description, then each field
/// with its type, whether it is required, and the first line of its description.
pub fn render(e: &Explanation) -> String {
    let mut t = format!("KIND:     {}\nVERSION:  {API_VERSION}\n\n", e.kind);
    if !e.field_path.is_empty() {
        let _ = writeln!(t, "FIELD:    {}\n", e.field_path.join("."));
    }
    if let Some(d) = &e.description {
        let _ = writeln!(t, "DESCRIPTION:\n    {}\n", d.replace('\n', "\n    "));
    }
    if e.fields.is_empty() {
        return t;
    }
    t.push_str("FIELDS:\n");
    for f in &e.fields {
        let required = if f.required { " -required-" } else { "" };
        let _ = writeln!(t, "    {}\t<{}>{required}", f.name, f.type_name);
        if let Some(d) = &f.description {
            let _ = writeln!(t, "      {}", d.lines().next().unwrap_or(""));
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use catalyst_schemas::explain::{ExplainError, FieldDoc};

    use super::*;

    #[test]
    fn a_field_renders_with_its_path_description_and_typed_fields() {
        let e = Explanation {
            kind: "GameServer",
            field_path: vec!["spec".into(), "ports".into()],
            description: Some("Ports; the first is the primary.\nMore detail.".into()),
            fields: vec![
                FieldDoc {
                    name: "containerPort".into(),
                    type_name: "integer".into(),
                    required: true,
                    description: Some("The port inside the container.\nSecond line.".into()),
                },
                FieldDoc {
                    name: "name".into(),
                    type_name: "string".into(),
                    required: false,
                    description: None,
                },
            ],
        };
        assert_eq!(
            render(&e),
            "KIND:     GameServer
VERSION:  catalyst.dev/v1alpha1

FIELD:    spec.ports

DESCRIPTION:
    Ports; the first is the primary.
    More detail.

FIELDS:
    containerPort\t<integer> -required-
      The port inside the container.
    name\t<string>
"
        );
    }

    #[test]
    fn the_real_gameserver_schema_renders() {
        let text = render(&explain("gameserver").unwrap());
        assert!(
            text.starts_with(
                "KIND:     GameServer\nVERSION:  catalyst.dev/v1alpha1\n\nDESCRIPTION:\n"
            ),
            "{text}"
        );
        assert!(!text.contains("FIELD: "), "{text}");
        assert!(text.contains("\nFIELDS:\n"), "{text}");
        assert!(text.contains("\n    spec\t<object>"), "{text}");

        let text = render(&explain("gs.spec.resources").unwrap());
        assert!(
            text.contains(
                "FIELD:    spec.resources\n\nDESCRIPTION:\n    Limits: cpu, memory, disk, pids.\n"
            ),
            "{text}"
        );
        assert!(text.contains("\n    memory\t<"), "{text}");

        let text = render(&explain("gs.spec").unwrap());
        assert!(
            text.contains("\n    ports\t<[]object>\n      Ports; the first is the primary"),
            "{text}"
        );
    }

    #[test]
    fn a_leaf_field_has_no_fields_section_and_unknown_fields_are_errors() {
        let text = render(&explain("node.spec.unschedulable").unwrap());
        assert!(text.contains("FIELD:    spec.unschedulable\n"), "{text}");
        assert!(!text.contains("FIELDS:"), "{text}");
        assert!(matches!(
            explain("gs.spec.nope"),
            Err(ExplainError::NoSuchField { .. })
        ));
    }
}
