//! A Template's `fileDenylist`: gitignore patterns (Pterodactyl's `file_denylist`) matched
//! against `/` + the cleaned path. A denied path (or one inside a denied directory) cannot be
//! read, written, renamed, copied, removed or have its mode or times changed through the file
//! manager or SFTP; it is still listed, as Wings does.

use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// Compiled denylist patterns.
#[derive(Debug, Clone)]
pub struct Denylist {
    set: Gitignore,
}

impl Denylist {
    /// Compiles `patterns`; None when there are none. A pattern that does not compile is
    /// skipped (logged): the rest still apply.
    pub fn new(patterns: &[String]) -> Option<Denylist> {
        if patterns.is_empty() {
            return None;
        }
        let mut b = GitignoreBuilder::new("/");
        for p in patterns {
            if let Err(e) = b.add_line(None, p) {
                tracing::warn!(pattern = p, error = %e, "a fileDenylist pattern does not compile");
            }
        }
        match b.build() {
            Ok(set) if !set.is_empty() => Some(Denylist { set }),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "the fileDenylist does not compile");
                None
            }
        }
    }

    /// Whether a cleaned path (`world/level.dat`, `""` for the root) is denied.
    pub fn denies(&self, clean: &str) -> bool {
        if clean.is_empty() {
            return false;
        }
        let full = format!("/{clean}");
        // a pattern naming a directory (`logs/`) covers what is inside it
        self.set
            .matched_path_or_any_parents(&full, false)
            .is_ignore()
            || self.set.matched(&full, true).is_ignore()
    }
}

#[cfg(test)]
mod tests {
    use super::Denylist;

    #[test]
    fn gitignore_patterns_from_the_root() {
        let d = Denylist::new(&[
            "*.jar".into(),
            "/eula.txt".into(),
            "secrets/".into(),
            "!allowed.jar".into(),
        ])
        .expect("patterns");
        for (path, denied) in [
            ("server.jar", true),
            ("plugins/x.jar", true),
            ("allowed.jar", false),
            ("eula.txt", true),
            ("sub/eula.txt", false),
            ("secrets", true),
            ("secrets/key.pem", true),
            ("config/secrets.yml", false),
            ("server.properties", false),
            ("", false),
        ] {
            assert_eq!(d.denies(path), denied, "{path}");
        }
        assert!(Denylist::new(&[]).is_none());
    }
}
