//! `audit`: the API server's audit log (writes and refused requests), newest last, as a table
//! or JSON.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::error::Outcome;
use super::out::Out;
use crate::client::{query, Client};

/// Where the server answers with the audit log.
pub const AUDIT_PATH: &str = "/auth/v1/audit";

/// How `audit` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditFormat {
    /// The record list as the server answers it.
    Json,
}

/// Arguments of `audit`.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// Only the records of this caller name (a user, a node, an API key).
    #[arg(long)]
    pub user: Option<String>,
    /// Only records since this time: a duration back from now (1h, 30m, 2d) or RFC 3339.
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many records, the newest (server default 500, at most 5000).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Output format (default: a table).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<AuditFormat>,
}

impl AuditArgs {
    /// Prints the records that match.
    ///
    /// # Errors
    /// A failed request (403 for callers who may not read the audit log), a closed stdout.
    pub async fn run(&self, client: &Client, out: &mut Out) -> Outcome {
        let q = query(&[
            ("user", self.user.clone().unwrap_or_default()),
            ("since", self.since.clone().unwrap_or_default()),
            (
                "limit",
                self.limit.map(|l| l.to_string()).unwrap_or_default(),
            ),
        ]);
        let list = client.get(&format!("{AUDIT_PATH}{q}")).await?;
        match self.output {
            Some(AuditFormat::Json) => {
                let text = serde_json::to_string_pretty(&list).unwrap_or_default();
                out.line(text)?;
            }
            None => {
                let items = list
                    .get("items")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                if items.is_empty() {
                    out.note("No audit records found.");
                } else {
                    out.print(&table(items))?;
                }
            }
        }
        Ok(0)
    }
}

fn s<'a>(record: &'a Value, pointer: &str) -> &'a str {
    record
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn or_dash(s: String) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

/// One table row: TIME CALLER SOURCE VERB RESOURCE NAMESPACE/NAME CODE RV.
fn row(r: &Value) -> [String; 8] {
    let time = DateTime::parse_from_rfc3339(s(r, "/time")).map_or_else(
        |_| s(r, "/time").to_owned(),
        |t| {
            t.with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        },
    );
    let caller = match (s(r, "/caller/kind"), s(r, "/caller/name")) {
        (kind, "") => kind.to_owned(),
        (kind, name) => format!("{kind}:{name}"),
    };
    let resource = match (s(r, "/resource"), s(r, "/subresource")) {
        ("", _) => s(r, "/path").to_owned(),
        (res, "") => res.to_owned(),
        (res, sub) => format!("{res}/{sub}"),
    };
    let object = match (s(r, "/namespace"), s(r, "/name")) {
        (_, "") => String::new(),
        ("", name) => name.to_owned(),
        (ns, name) => format!("{ns}/{name}"),
    };
    let mut verb = s(r, "/verb").to_owned();
    if r.get("dryRun").and_then(Value::as_bool) == Some(true) {
        verb.push_str(" (dry run)");
    }
    [
        time,
        or_dash(caller),
        or_dash(s(r, "/sourceIp").to_owned()),
        or_dash(verb),
        or_dash(resource),
        or_dash(object),
        r.get("code").map(Value::to_string).unwrap_or_default(),
        or_dash(s(r, "/resourceVersion").to_owned()),
    ]
}

/// The records as a table with a header, columns padded to their widest cell.
pub fn table(records: &[Value]) -> String {
    const HEADER: [&str; 8] = [
        "TIME",
        "CALLER",
        "SOURCE",
        "VERB",
        "RESOURCE",
        "NAMESPACE/NAME",
        "CODE",
        "RV",
    ];
    let rows: Vec<[String; 8]> = records.iter().map(row).collect();
    let mut widths = HEADER.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 8]| {
        for (i, c) in cells.iter().enumerate() {
            if i == cells.len() - 1 {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        out.push('\n');
    };
    line(HEADER);
    for r in &rows {
        line(r.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_table_has_a_row_per_record_in_the_documented_columns() {
        let records = [
            json!({"time": "2025-01-02T03:04:05.123456789Z", "caller": {"kind": "admin", "name": "admin"},
                   "sourceIp": "127.0.0.1", "method": "PATCH", "path": "/apis/catalyst.dev/v1alpha1/namespaces/default/gameservers/mc",
                   "verb": "patch", "resource": "gameservers", "namespace": "default", "name": "mc",
                   "code": 200, "resourceVersion": "17", "dryRun": false}),
            json!({"time": "2025-01-02T03:04:06Z", "caller": {"kind": "anonymous", "name": ""},
                   "method": "POST", "path": "/auth/v1/join", "verb": "create", "resource": "",
                   "code": 401, "dryRun": false}),
        ];
        let text = table(&records);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let cells = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            cells(lines[0]),
            [
                "TIME",
                "CALLER",
                "SOURCE",
                "VERB",
                "RESOURCE",
                "NAMESPACE/NAME",
                "CODE",
                "RV"
            ]
        );
        assert_eq!(
            cells(lines[1]),
            [
                "2025-01-02T03:04:05Z",
                "admin:admin",
                "127.0.0.1",
                "patch",
                "gameservers",
                "default/mc",
                "200",
                "17"
            ]
        );
        assert_eq!(
            cells(lines[2]),
            [
                "2025-01-02T03:04:06Z",
                "anonymous",
                "-",
                "create",
                "/auth/v1/join",
                "-",
                "401",
                "-"
            ]
        );
        // columns line up
        assert_eq!(lines[0].find("CODE"), lines[1].find("200"));
    }
}
