//! `convert egg FILE`: a Pterodactyl egg as a Template (YAML on stdout), with what the Template
//! cannot carry over as `warning:` lines on stderr. The conversion is [`crate::egg`]; `apply`,
//! `diff` and `delete -f` run it on eggs they are given ([`EggArgs`]).

use std::collections::BTreeMap;
use std::io::Read;

use catalyst_schemas::gameserver::image_reference;

use super::error::{CtlError, Outcome};
use super::out::Out;
use crate::egg;

/// Arguments of `convert`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConvertArgs {
    /// What to convert.
    #[command(subcommand)]
    pub what: ConvertCommand,
}

/// What `convert` converts.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ConvertCommand {
    /// A Pterodactyl egg (PTDL_v1 or PTDL_v2 JSON) into a Template.
    Egg(ConvertEggArgs),
}

/// Arguments of `convert egg`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConvertEggArgs {
    /// The egg's JSON file, or - for stdin.
    pub file: String,
    /// How images are rewritten.
    #[command(flatten)]
    pub eggs: EggArgs,
}

/// How eggs are converted; shared by `convert egg`, `apply` and `diff`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EggArgs {
    /// Rewrite an egg's image references: FROM is a whole reference or a prefix ending in `/`
    /// or `:`, TO its replacement (a mirror, or oci-archive:/PATH); repeatable: an exact FROM
    /// wins, else the longest prefix.
    #[arg(long = "image-map", value_name = "FROM=TO", value_parser = parse_image_map)]
    pub image_map: Vec<(String, String)>,
    /// Keep references as the egg has them and put the --image-map entries into the
    /// Template's imageMap instead (applied on the node, editable later).
    #[arg(long, requires = "image_map")]
    pub keep_image_map: bool,
}

impl EggArgs {
    /// The converter's options.
    pub fn options(&self) -> egg::Options {
        egg::Options {
            image_map: self.image_map.iter().cloned().collect::<BTreeMap<_, _>>(),
            keep_image_map: self.keep_image_map,
        }
    }

    /// Reads manifests (eggs converted with these options), their warnings to `out`.
    ///
    /// # Errors
    /// As [`read_manifests`](super::manifest::read_manifests).
    pub fn read(
        &self,
        files: &[String],
        recursive: bool,
        out: &mut Out,
    ) -> Result<Vec<super::manifest::Manifest>, super::error::CtlError> {
        super::manifest::read_manifests(files, recursive, &self.options(), &mut |w| {
            out.note(format_args!("warning: {w}"))
        })
    }
}

/// `FROM=TO` with a non-empty FROM; TO is an image reference, or for a prefix FROM (ending
/// in `/` or `:`) the start of one.
fn parse_image_map(s: &str) -> Result<(String, String), String> {
    let (from, to) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not FROM=TO"))?;
    if from.is_empty() {
        return Err("FROM must not be empty".into());
    }
    if from.ends_with(['/', ':']) {
        image_reference(&format!("{to}x"))
            .map_err(|_| format!("{to:?} is not the start of an image reference"))?;
    } else {
        image_reference(to)?;
    }
    Ok((from.to_owned(), to.to_owned()))
}

impl ConvertArgs {
    /// Prints the Template and its warnings.
    ///
    /// # Errors
    /// An unreadable file, input that is not an egg, a closed stdout.
    pub fn run(&self, out: &mut Out) -> Outcome {
        match &self.what {
            ConvertCommand::Egg(args) => args.run(out),
        }
    }
}

impl ConvertEggArgs {
    /// Prints the Template as YAML and each report as `warning: FIELD: MESSAGE` on stderr.
    ///
    /// # Errors
    /// An unreadable file, input that is not an egg, a closed stdout.
    pub fn run(&self, out: &mut Out) -> Outcome {
        let bytes = read(&self.file)?;
        let conversion =
            egg::convert(&bytes, &self.eggs.options()).map_err(|error| CtlError::Egg {
                file: self.file.clone(),
                error,
            })?;
        for r in &conversion.reports {
            out.note(format_args!("warning: {r}"));
        }
        out.print(&conversion.to_yaml())?;
        Ok(0)
    }
}

fn read(file: &str) -> Result<Vec<u8>, CtlError> {
    let mut bytes = Vec::new();
    if file == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|source| CtlError::Read {
                what: "stdin".into(),
                source,
            })?;
        return Ok(bytes);
    }
    std::fs::read(file).map_err(|source| CtlError::Read {
        what: file.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_maps_are_from_equals_an_image_reference() {
        assert_eq!(
            parse_image_map("ghcr.io/=mirror.local/ghcr/").unwrap(),
            ("ghcr.io/".to_owned(), "mirror.local/ghcr/".to_owned())
        );
        assert_eq!(
            parse_image_map("quay.io/x/y=mirror.local/").unwrap_err(),
            "\"mirror.local/\" is not an image reference"
        );
        assert_eq!(
            parse_image_map("ghcr.io/=bad ref/").unwrap_err(),
            "\"bad ref/\" is not the start of an image reference"
        );
        assert_eq!(
            parse_image_map("ghcr.io/pterodactyl/yolks:java_21=oci-archive:/srv/j21.tar").unwrap(),
            (
                "ghcr.io/pterodactyl/yolks:java_21".to_owned(),
                "oci-archive:/srv/j21.tar".to_owned()
            )
        );
        assert!(parse_image_map("=x").is_err());
        assert!(parse_image_map("no-equals").is_err());
    }
}
