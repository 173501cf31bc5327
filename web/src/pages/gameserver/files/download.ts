// Downloads of API bytes (a server's files, a backup's archive). Small ones go through fetch
// with the bearer header into a Blob (the token never enters a URL); big ones would not fit in
// memory, so they are a plain link with `?access_token=` (the API accepts it on every path,
// apiserver/src/auth/tokens.rs `request_token`; the audit log drops query strings) and the
// browser streams them to disk.

import { currentSession, send, withQuery } from '../../../api/client';
import { BLOB_DOWNLOAD_MAX_BYTES } from '../../../lib/files';

function clickLink(href: string, name: string) {
  const a = document.createElement('a');
  a.href = href;
  a.download = name;
  a.rel = 'noopener';
  document.body.appendChild(a);
  a.click();
  a.remove();
}

/** Saves the bytes of `path` (+`query`) as `name`; `size` (when known) picks the way. */
export async function download(path: string, query: Record<string, string>, name: string, size?: number): Promise<void> {
  if (size !== undefined && size > BLOB_DOWNLOAD_MAX_BYTES) {
    const s = await currentSession();
    if (!s) throw new Error('signed out: sign in again to download');
    clickLink(withQuery(path, { ...query, access_token: s.accessToken }), name);
    return;
  }
  const r = await send(path, { query });
  const blob = await r.blob();
  const url = URL.createObjectURL(blob);
  try {
    clickLink(url, name);
  } finally {
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }
}
