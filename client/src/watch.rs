//! The watch stream decoder: newline-delimited JSON events, however the body is chunked, into
//! typed events; `ERROR` 410 becomes [`Watched::Gone`], any other `ERROR` an error item.

use catalyst_schemas::watch::WatchEvent;
use futures::{Stream, StreamExt};
use serde_json::Value;

use crate::error::{Error, Result};

/// What a watch yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Watched {
    /// An `ADDED`, `MODIFIED`, `DELETED` or `BOOKMARK` event (never `ERROR`: that is
    /// [`Watched::Gone`] or an error item).
    Event(WatchEvent<Value>),
    /// The watch cannot continue from its revision (history compacted, the watcher cut off
    /// for being too slow, the server's cache reset): list again. Holds the reason.
    Gone(String),
}

/// Decodes a watch body: chunks in, one item per event line out. Lines that are not events
/// (blank, not JSON, an unknown type) are skipped.
pub fn decode<S, B>(chunks: S) -> impl Stream<Item = Result<Watched>> + Send + 'static
where
    S: Stream<Item = Result<B>> + Send + 'static,
    B: AsRef<[u8]>,
{
    let chunks = Box::pin(chunks);
    futures::stream::unfold(
        (chunks, Vec::<u8>::new()),
        |(mut chunks, mut buf)| async move {
            loop {
                if let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    if let Some(item) = decode_line(&line) {
                        return Some((item, (chunks, buf)));
                    }
                    continue;
                }
                match chunks.next().await {
                    Some(Ok(chunk)) => buf.extend_from_slice(chunk.as_ref()),
                    Some(Err(e)) => return Some((Err(e), (chunks, buf))),
                    None => return None,
                }
            }
        },
    )
}

/// One line: an item, or `None` to skip it.
fn decode_line(line: &[u8]) -> Option<Result<Watched>> {
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() {
        return None;
    }
    match serde_json::from_slice::<WatchEvent<Value>>(trimmed) {
        Ok(WatchEvent::Error(status)) if status.code == 410 => {
            Some(Ok(Watched::Gone(status.message)))
        }
        Ok(WatchEvent::Error(status)) => Some(Err(Error::status(status))),
        Ok(event) => Some(Ok(Watched::Event(event))),
        Err(e) => {
            tracing::debug!(error = %e, "skipping a watch line that is not an event");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalyst_schemas::watch::Bookmark;
    use serde_json::json;

    fn run(chunks: &[&str]) -> Vec<Result<Watched>> {
        let chunks: Vec<Result<Vec<u8>>> =
            chunks.iter().map(|c| Ok(c.as_bytes().to_vec())).collect();
        futures::executor::block_on(decode(futures::stream::iter(chunks)).collect())
    }

    #[test]
    fn events_split_across_chunks_are_joined() {
        let items = run(&[
            r#"{"type":"ADDED","obj"#,
            r#"ect":{"a":1}}"#,
            "\n{\"object\":{\"a\":2},",
            "\"type\":\"DELETED\"}\n\n{\"type\":\"MOD",
            "IFIED\",\"object\":{\"a\":3}}\n",
        ]);
        let events: Vec<Watched> = items.into_iter().map(|i| i.unwrap()).collect();
        assert_eq!(
            events,
            vec![
                Watched::Event(WatchEvent::Added(json!({"a": 1}))),
                Watched::Event(WatchEvent::Deleted(json!({"a": 2}))),
                Watched::Event(WatchEvent::Modified(json!({"a": 3}))),
            ]
        );
    }

    #[test]
    fn bookmarks_are_events_and_junk_lines_are_skipped() {
        let items = run(&[
            "not json\n{\"type\":\"WHAT\",\"object\":{}}\n",
            r#"{"type":"BOOKMARK","object":{"apiVersion":"catalyst.dev/v1alpha1","metadata":{"resourceVersion":"12"}}}"#,
            "\n",
        ]);
        assert_eq!(items.len(), 1);
        assert_eq!(
            items[0].as_ref().unwrap(),
            &Watched::Event(WatchEvent::Bookmark(Bookmark::at(12)))
        );
    }

    #[test]
    fn error_410_is_gone_and_other_errors_carry_their_status() {
        let items = run(&[
            "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,\"reason\":\"Gone\",\"message\":\"too old\"}}\n",
            "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":500,\"reason\":\"InternalError\",\"message\":\"boom\"}}\n",
        ]);
        assert_eq!(items[0].as_ref().unwrap(), &Watched::Gone("too old".into()));
        let e = items[1].as_ref().unwrap_err();
        assert_eq!(e.code(), Some(500));
        assert_eq!(e.to_string(), "Error from server (InternalError): boom");
    }

    #[test]
    fn a_final_line_without_newline_is_not_an_event() {
        // the server ends every event with a newline; a cut-off line is a broken stream
        assert!(run(&[r#"{"type":"ADDED","object":{}}"#]).is_empty());
    }
}
